"""The probes' timing functions: ``timer(candidate) -> seconds of one call`` for
:func:`deblur.speed.trial.interleaved_probe`, each synchronised on CUDA.

* :class:`ForwardTimer`: one forward call of a network prepared with some
  :class:`~deblur.speed.options.InferenceOptions` (the inference probe's default); it checks each
  candidate's first output against the most exact candidate's, within the candidate's tolerance.
* :class:`TrainStepTimer`: one training step under some :class:`~deblur.speed.options.TrainingOptions`
  (the training probe's default).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from deblur.metrics.agreement import output_psnr
from deblur.speed.options import InferenceOptions, TrainingOptions, describe_options
from deblur.speed.timing import synchronize
from deblur.speed.transforms import inference_context, prepare_for_inference, to_input


class ForwardTimer:
    """``timer(options)``: seconds of one forward call of ``net`` prepared with ``options`` on ``example``
    (synchronised on CUDA), the default timing function of
    :func:`deblur.speed.inference_probe.resolve_speed`.

    The first call of each candidate prepares it (kept until :meth:`close`) and checks its output against
    the output of the first candidate called (the most exact one), when that one runs in fp32: a PSNR
    below the candidate's tolerance raises ValueError, and the probe leaves the candidate out.
    """

    def __init__(self, net: nn.Module, example: torch.Tensor, device: torch.device) -> None:
        self.net, self.device = net, torch.device(device)
        self.example = example.to(self.device)
        self._prepared: dict[InferenceOptions, tuple[nn.Module, torch.Tensor]] = {}
        self._reference: tuple[InferenceOptions, torch.Tensor] | None = None

    def __call__(self, options: InferenceOptions) -> float:
        first = options not in self._prepared
        if first:
            fast = prepare_for_inference(self.net, options, self.device)
            self._prepared[options] = (fast, to_input(self.example, options))
        fast, x = self._prepared[options]
        start = time.perf_counter()
        with inference_context(options, self.device):
            out = fast(x)
        synchronize(self.device)
        elapsed = time.perf_counter() - start
        if first:
            self._check(options, out.float())
        return elapsed

    def _check(self, options: InferenceOptions, out: torch.Tensor) -> None:
        if self._reference is None:
            self._reference = (options, out)
            return
        ref_options, reference = self._reference
        if ref_options.precision != "fp32":
            return
        psnr = output_psnr(reference, out)
        if psnr < options.tolerance():
            label = describe_options(ref_options.as_dict())
            raise ValueError(
                f"output {psnr:.1f} dB from {label}, below its tolerance {options.tolerance()} dB"
            )

    def close(self) -> None:
        self._prepared.clear()
        self._reference = None


def _autocast_dtype(precision: str) -> torch.dtype | None:
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


class TrainStepTimer:
    """``timer(options)``: seconds of one training step (forward with the loss's feature passes, loss,
    backward, Adam step; synchronised on CUDA) of a fresh :class:`~deblur.lit.restoration.RestorationModule`
    on a random (batch, 3, size, size) pair, under ``torch.autocast`` for mixed precisions. One module per
    memory format, built on first use (seeded; the caller's random state is restored by
    :func:`deblur.speed.training_probe.choose_training_speed`)."""

    def __init__(
        self, model_cfg: Mapping[str, Any], loss_cfg: Mapping[str, Any], device: torch.device, batch: int,
        size: int,
    ) -> None:  # fmt: skip
        self.model_cfg, self.device = dict(model_cfg), torch.device(device)
        self.loss_cfg = dict(loss_cfg)
        if "pretrained" in self.loss_cfg:
            self.loss_cfg["pretrained"] = False  # same cost; no weights to fetch for a timing
        self.batch, self.size = int(batch), int(size)
        self._modules: dict[bool, tuple[Any, torch.optim.Optimizer, torch.Tensor, torch.Tensor]] = {}

    def _module(self, channels_last: bool) -> tuple[Any, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
        if channels_last not in self._modules:
            from deblur.lit.restoration import RestorationModule

            torch.manual_seed(0)
            module = RestorationModule(
                model=self.model_cfg, loss=self.loss_cfg, optim={"name": "adam", "lr": 1e-4},
                channels_last=channels_last,
            ).to(self.device).train()  # fmt: skip
            optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
            blurry = torch.rand(self.batch, 3, self.size, self.size, device=self.device)
            batch = module.to_layout({"blurry": blurry, "sharp": blurry.flip(-1)})
            self._modules[channels_last] = (module, optimizer, batch["blurry"], batch["sharp"])
        return self._modules[channels_last]

    def __call__(self, options: TrainingOptions) -> float:
        module, optimizer, blurry, sharp = self._module(options.channels_last)
        dtype = _autocast_dtype(options.precision)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            _, total, _ = module.compute_loss(blurry, sharp)
        total.backward()
        optimizer.step()
        synchronize(self.device)
        return time.perf_counter() - start

    def close(self) -> None:
        self._modules.clear()
