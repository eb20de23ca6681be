"""Per-preset cost: size, multiply-accumulates, forward and training speed, memory.

A *preset* is a model config option (``msfs``, ``msfs_small``, ``fddn``, ``fddn_small``) optionally with an
ablation: ``msfs+no_fsm`` = ``model=msfs ablation=msfs/no_fsm`` (``+`` because ``.`` and ``/`` would break
the ``models.<preset>.forward.fraction_of_peak`` key paths of ``bench.json``). Presets are composed from
``conf/train.yaml`` exactly as ``deblur-train`` would compose them.

Networks are randomly initialised (seeded): speed does not depend on the weights. Multiply-accumulates
(MACs) come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no computation;
convolutions, matrix products and the like; element-wise work is not counted) and are per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deblur.bench.timing import PeakMemory, time_call
from deblur.models.registry import build_model
from deblur.speedups import (
    InferenceOptions,
    default_options,
    inference_context,
    output_psnr,
    prepare_for_inference,
    to_input,
)

#: name -> options of the forward-pass comparison (``compile`` is added when asked for)
FORWARD_OPTIONS: dict[str, InferenceOptions] = {
    "fp32": InferenceOptions(),
    "channels_last": InferenceOptions(channels_last=True),
    "bf16": InferenceOptions(precision="bf16"),
    "bf16_channels_last": InferenceOptions(channels_last=True, precision="bf16"),
    "fold_batchnorm": InferenceOptions(fold_batchnorm=True),
}

#: published figures shown next to ours (bench.md): fp32 size in MB, parameters, MACs at 256x256
PAPER_FIGURES: dict[str, dict[str, float]] = {
    "msfs": {"params_m": 21.59, "gmacs_256x256": 306.0},  # public code / paper
    "fddn": {"size_mb": 8.08},  # FDDN Table 5, full model (0.019 s per GoPro image on a GPU)
    "fddn+no_distillation": {"size_mb": 9.05},
    "fddn+no_fsb": {"size_mb": 7.96},
    "fddn+no_fdb": {"size_mb": 7.89},
}


def preset_overrides(preset: str) -> list[str]:
    """``"msfs+no_fsm"`` -> ``["model=msfs", "ablation=msfs/no_fsm"]``;
    ``"fddn_small"`` -> ``["model=fddn_small"]``."""
    model, _, ablation = preset.partition("+")
    family = "fddn" if model.startswith("fddn") else "msfs"
    return [f"model={model}"] + ([f"ablation={family}/{ablation}"] if ablation else [])


def preset_configs(preset: str, compose: Callable[[list[str]], Any]) -> tuple[dict, dict]:
    """``(model config, loss config)`` of ``preset``; ``compose(overrides)`` returns the train config."""
    cfg = compose(preset_overrides(preset))
    model = OmegaConf.to_container(cfg.model, resolve=True)
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    if "pretrained" in loss:
        loss["pretrained"] = False  # same architecture and cost; ImageNet weights are not needed to time it
    return model, loss


def size_key(height: int, width: int) -> str:
    """``"1280x720"``: width x height, as image sizes are usually written."""
    return f"{width}x{height}"


def count(model_cfg: dict, sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Parameters, fp32 size (MiB, the papers' "MB") and ``gmacs_<W>x<H>`` per image for each (H, W)."""
    with torch.device("meta"):
        net = build_model(model_cfg).eval()
    params = sum(p.numel() for p in net.parameters())
    out: dict[str, Any] = {"params": params, "params_m": params / 1e6, "size_mb": params * 4 / 2**20}
    for h, w in sizes:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.empty(1, 3, h, w, device="meta"))
        out[f"gmacs_{size_key(h, w)}"] = counter.get_total_flops() / 2 / 1e9
    return out


def count_train_step(model_cfg: dict, loss_cfg: dict, size: int, batch: int) -> float:
    """GMACs per sample of one training step at (batch, 3, size, size): forward with the loss's feature
    passes (MSFS-Net re-encodes the output and the target; FDDN runs VGG16), loss, backward. Meta device."""
    from deblur.lit.restoration import RestorationModule

    with torch.device("meta"):
        module = RestorationModule(model=model_cfg, loss=loss_cfg, optim={"name": "adam", "lr": 1e-4})
    blurry = torch.empty(batch, 3, size, size, device="meta")
    sharp = torch.empty(batch, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        _, total, _ = module.compute_loss(blurry, sharp)
        total.backward()
    return counter.get_total_flops() / 2 / 1e9 / batch


def sample_batch(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(batch, 3, H, W) in [0, 1]: crops of scikit-image's astronaut photo (real image statistics)."""
    from skimage import data
    from skimage.transform import resize

    photo = data.astronaut().astype(np.float32) / 255.0
    photo = resize(photo, (max(height, 512), max(width, 512)), anti_aliasing=True, preserve_range=True)
    crops = []
    for i in range(batch):
        top = (i * 37) % (photo.shape[0] - height + 1)
        left = (i * 53) % (photo.shape[1] - width + 1)
        crops.append(torch.from_numpy(np.ascontiguousarray(photo[top : top + height, left : left + width])))
    return torch.stack(crops).permute(0, 3, 1, 2).contiguous().to(device)


def _has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def time_forward(
    net: nn.Module,
    x: torch.Tensor,
    options: InferenceOptions,
    device: torch.device,
    timing: dict[str, Any],
) -> tuple[dict[str, Any], torch.Tensor]:
    """Prepare ``net`` with ``options`` and time ``net(x)``; returns (figures, fp32 output)."""
    fast = prepare_for_inference(net, options, device)
    xin = to_input(x, options)

    def call() -> torch.Tensor:
        with inference_context(options, device):
            return fast(xin)

    with PeakMemory(device) as peak:
        measured = time_call(call, device, **timing)
    output = measured.result.float()
    figures = {
        "ms": measured.seconds * 1e3,
        "images_per_s": x.shape[0] / measured.seconds,
        "runs": measured.runs,
        "peak_memory_mib": peak.mib,
        "memory_kind": peak.kind,
    }
    return figures, output


def _efficiency(figures: dict[str, Any], gmacs_per_image: float, batch: int, peak_gflops: float) -> None:
    gflops = 2 * gmacs_per_image * batch / (figures["ms"] / 1e3)
    figures["gflops"] = gflops
    figures["fraction_of_peak"] = gflops / peak_gflops


def bench_forward(
    model_cfg: dict,
    counts: dict[str, Any],
    device: torch.device,
    peak_gflops: float,
    batch: int,
    size: int,
    hd: tuple[int, int] | None,
    timing: dict[str, Any],
    compile_option: bool,
) -> dict[str, Any]:
    """Forward figures: every option at (batch, 3, size, size); the default options also at ``hd``."""
    torch.manual_seed(0)
    net = build_model(model_cfg).eval().to(device)
    x = sample_batch(batch, size, size, device)
    options = dict(FORWARD_OPTIONS)
    if not _has_batchnorm(net):
        options.pop("fold_batchnorm")  # nothing to fold: the same network as fp32
    if compile_option:
        options["compile"] = InferenceOptions(compile=True)
    per_option: dict[str, Any] = {}
    reference = None
    for name, opts in options.items():
        figures, output = time_forward(net, x, opts, device, timing)
        if reference is None:
            reference = output
        figures["psnr_vs_fp32"] = output_psnr(reference, output)
        _efficiency(figures, counts[f"gmacs_{size_key(size, size)}"], batch, peak_gflops)
        per_option[name] = figures
    chosen = default_options(device)
    # without BatchNorm, folding is a no-op: the default may equal an option measured above
    effective = replace(chosen, fold_batchnorm=chosen.fold_batchnorm and _has_batchnorm(net))
    same = next((name for name, opts in options.items() if opts == effective), None)
    if same is not None:
        figures = dict(per_option[same])
    else:
        figures, output = time_forward(net, x, chosen, device, timing)
        figures["psnr_vs_fp32"] = output_psnr(reference, output)
        _efficiency(figures, counts[f"gmacs_{size_key(size, size)}"], batch, peak_gflops)
    figures["options"] = chosen.as_dict()
    result: dict[str, Any] = {"forward": figures, "forward_options": per_option}
    if hd is not None:
        hd_figures, _ = time_forward(net, sample_batch(1, hd[0], hd[1], device), chosen, device, timing)
        _efficiency(hd_figures, counts[f"gmacs_{size_key(*hd)}"], 1, peak_gflops)
        result["forward_hd"] = hd_figures
    if getattr(net, "use_fsm", False) and hasattr(net, "encode_frequencies"):
        result["re_encode"] = _bench_re_encode(net, x, device, timing, per_option["fp32"]["ms"])
    return result


def _bench_re_encode(
    net: nn.Module, x: torch.Tensor, device: torch.device, timing: dict[str, Any], plain_ms: float
) -> dict[str, float]:
    """What inference saves by not re-running the encoder on the output (it only feeds the losses)."""

    def with_features() -> None:
        with torch.inference_mode():
            pred, _ = net(x, return_features=True)
            net.encode_frequencies(pred)

    measured = time_call(with_features, device, **timing)
    return {
        "with_re_encode_ms": measured.seconds * 1e3,
        "inference_ms": plain_ms,
        "speedup": measured.seconds * 1e3 / plain_ms,
    }


def bench_train_step(
    model_cfg: dict,
    loss_cfg: dict,
    device: torch.device,
    batch: int,
    size: int,
    timing: dict[str, Any],
    precisions: list[str],
    channels_last: bool = True,
) -> dict[str, Any]:
    """Training-step samples/s (forward with features, loss, backward, Adam step) per precision:
    ``fp32`` and ``bf16-mixed`` (``torch.autocast`` bf16, as Lightning's ``precision=bf16-mixed``), in
    the memory format ``deblur-train`` uses (``channels_last``, the train.yaml default) or NCHW."""
    from deblur.lit.restoration import RestorationModule

    torch.manual_seed(0)
    optim = {"name": "adam", "lr": 1e-4}
    module = RestorationModule(model=model_cfg, loss=loss_cfg, optim=optim, channels_last=channels_last)
    module = module.to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    batch_in = {"blurry": sample_batch(batch, size, size, device)}
    batch_in["sharp"] = batch_in["blurry"].flip(-1)
    batch_in = module.to_layout(batch_in)
    blurry, sharp = batch_in["blurry"], batch_in["sharp"]
    out: dict[str, Any] = {}
    for precision in precisions:
        autocast = precision == "bf16-mixed"

        def step(autocast: bool = autocast) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                _, total, _ = module.compute_loss(blurry, sharp)
            total.backward()
            optimizer.step()

        with PeakMemory(device) as peak:
            measured = time_call(step, device, **timing)
        out[precision] = {
            "ms": measured.seconds * 1e3,
            "samples_per_s": batch / measured.seconds,
            "runs": measured.runs,
            "peak_memory_mib": peak.mib,
        }
    return out
