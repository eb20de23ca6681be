"""The machine's peak convolution rate: the yardstick every model's achieved GFLOP/s is divided by.

A 3x3, stride-1 convolution (the bulk of both networks' work) is timed at a few channel widths for each
configuration the device offers: fp32 NCHW, fp32 channels_last, bf16 channels_last (and bf16 NCHW); on
CUDA also fp16 channels_last and TF32. FLOPs = 2 x multiply-accumulates = 2 * N * C_out * H * W * C_in * 9.
The best width of each configuration is its peak; the best configuration is the machine's peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deblur.speed.timing import time_call


@dataclass(frozen=True)
class ConvConfig:
    name: str
    dtype: torch.dtype
    channels_last: bool
    tf32: bool = False


def conv_configs(device: torch.device) -> list[ConvConfig]:
    """The precision / memory-format configurations measured on ``device``."""
    configs = [
        ConvConfig("fp32_nchw", torch.float32, False),
        ConvConfig("fp32_channels_last", torch.float32, True),
        ConvConfig("bf16_nchw", torch.bfloat16, False),
        ConvConfig("bf16_channels_last", torch.bfloat16, True),
    ]
    if device.type == "cuda":
        configs += [
            ConvConfig("tf32_channels_last", torch.float32, True, tf32=True),
            ConvConfig("fp16_channels_last", torch.float16, True),
        ]
    return configs


def conv_gflops(
    config: ConvConfig, device: torch.device, channels: int, size: int, batch: int, repeats: int
) -> float:
    """Achieved GFLOP/s of one (batch, channels, size, size) 3x3 convolution, channels -> channels."""
    x = torch.randn(batch, channels, size, size, device=device, dtype=config.dtype)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=config.dtype)
    if config.channels_last:
        x, w = (
            x.contiguous(memory_format=torch.channels_last),
            w.contiguous(memory_format=torch.channels_last),
        )
    flops = 2.0 * batch * channels * size * size * channels * 9
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = config.tf32
    try:
        with torch.inference_mode():
            timing = time_call(lambda: F.conv2d(x, w, padding=1), device, warmup=2, repeats=repeats)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
    return flops / timing.seconds / 1e9


def measure_peaks(
    device: torch.device, widths: list[int], size: int, batch: int, repeats: int
) -> dict[str, dict[str, float]]:
    """``{config: {"gflops": best, "by_width": {width: gflops}}}`` plus ``"best": {"name", "gflops"}``."""
    result: dict[str, dict] = {}
    for config in conv_configs(device):
        try:
            by_width = {str(c): conv_gflops(config, device, c, size, batch, repeats) for c in widths}
        except RuntimeError as err:  # a dtype the device cannot run
            result[config.name] = {"gflops": None, "error": str(err).splitlines()[0]}
            continue
        result[config.name] = {"gflops": max(by_width.values()), "by_width": by_width}
    usable = {k: v["gflops"] for k, v in result.items() if v.get("gflops")}
    best = max(usable, key=usable.get)
    result["best"] = {"name": best, "gflops": usable[best]}
    return result
