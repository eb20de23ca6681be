"""``FrequencyGap``: the frequency gap of MSFS-Net Fig. 7 as a validation metric.

After each validation it logs, per band and scale, the Jensen-Shannon divergence between the entropy
distributions of the deblurred and the sharp validation images (:mod:`deblur.analysis.frequency`):
``val/js_high_1``, ``val/js_high_1_2``, ``val/js_high_1_4``, ``val/js_low_1``, ... (lower is better; 0
means the network's outputs are, band by band, as complex as the sharp images). With ``log_input``
it also logs the blurry input's gap, ``val/js_input_high_1``, ... (the baseline, like
``val/psnr_input``). Values go through ``pl_module.log``: to every logger that is on, to
``trainer.callback_metrics`` and to the results of ``trainer.validate``, next to ``val/psnr``.

Cost: the deblurred images are taken from the validation step's output when it returns
``{"pred": ...}``; otherwise the callback runs the network once more on each validation batch (under
no_grad), i.e. one extra forward pass per validation batch. The
entropies themselves cost a few milliseconds per image. Under DDP the entropies of all ranks are
gathered before the divergences are computed, so every rank logs the same numbers.

Same definition as ``deblur-analyze``: the same :class:`~deblur.analysis.frequency.FrequencyConfig`
defaults, :class:`~deblur.analysis.frequency.EntropyCollector` and
:func:`~deblur.analysis.frequency.compare_entropies`; ``val/js_input_*`` equals ``deblur-analyze
split=val``'s ``sharp_vs_blurry`` on the same data. The numbers differ from ``deblur-analyze``'s default
run only because the images differ (validation crops of few photos vs whole training images; see
docs/training.md, "val/js_* and deblur-analyze"). When the validation set holds fewer than
:data:`~deblur.analysis.sample_size.MIN_DISTINCT_IMAGES` distinct photos, a warning says so once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from deblur.analysis.frequency import (
    BANDS,
    EntropyCollector,
    FrequencyConfig,
    compare_entropies,
    scale_tag,
)
from deblur.analysis.sample_size import sample_size_warning
from deblur.data.base import dataset_sources


def metric_name(band: str, scale: str, prefix: str = "val/js_") -> str:
    """``("low", "1/2") -> "val/js_low_1_2"``."""
    return f"{prefix}{band}_{scale_tag(scale)}"


class FrequencyGap(L.Callback):
    """Log ``val/js_<band>_<scale>`` (deblurred vs sharp) after each validation; see the module docstring.

    Arguments are those of :class:`~deblur.analysis.frequency.FrequencyConfig` (the same defaults as
    ``deblur-analyze``), plus ``log_input`` (also log the blurry input's gap as ``val/js_input_...``)
    and ``every_n_validations`` (compute on every n-th validation only; the others skip the work).
    """

    def __init__(
        self,
        sigma: float = 2.0,
        bins: int = 256,
        high_range: float = 0.5,
        num_scales: int = 3,
        downsample: str = "area",
        luminance: bool = True,
        density: str = "kde",
        dist_bins: int = 100,
        log_input: bool = True,
        every_n_validations: int = 1,
    ) -> None:
        self.config = FrequencyConfig(
            sigma=sigma, bins=bins, high_range=high_range, num_scales=num_scales, downsample=downsample,
            luminance=luminance, density=density, dist_bins=dist_bins,
        )
        self.log_input = log_input
        self.every = max(1, int(every_n_validations))
        self.collector = EntropyCollector(self.config)
        self._validations = 0
        self._active = False
        self._warned = False
        #: the last logged values, ``{metric name: value}``
        self.last: dict[str, float] = {}

    # ---------------------------------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.collector.reset()
        self._active = False
        if trainer.sanity_checking:
            return
        if not self._warned:
            self._warned = True
            self._warn_few_images(trainer)
        self._validations += 1
        self._active = (self._validations - 1) % self.every == 0

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active:
            return
        blurry, sharp = batch["blurry"], batch["sharp"]
        pred = outputs.get("pred") if isinstance(outputs, Mapping) else None
        if pred is None:
            with torch.no_grad():
                pred = pl_module(blurry)
        if not bool(torch.isfinite(pred).all()):  # diverged weights: no divergence of NaNs (the run fails)
            self._active = False
            self.collector.reset()
            return
        self.collector.add("deblurred", pred.detach().float().clamp(0.0, 1.0))
        self.collector.add("sharp", sharp.float())
        if self.log_input:
            self.collector.add("blurry", blurry.float())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active or (self.collector.count("sharp") == 0 and trainer.world_size == 1):
            return
        values = {kind: self._gathered(pl_module, kind) for kind in self.collector.kinds}
        self.last = {}
        pairs = [("deblurred", "val/js_")] + ([("blurry", "val/js_input_")] if "blurry" in values else [])
        for kind, prefix in pairs:
            comparison = compare_entropies(values["sharp"], values[kind], self.config)
            for band in BANDS:
                for scale, dist in comparison[band].items():
                    self.last[metric_name(band, scale, prefix)] = dist.js
        for name, value in self.last.items():
            pl_module.log(name, value, sync_dist=False, rank_zero_only=False)
        self.collector.reset()

    # ---------------------------------------------------------------------------------------- helpers
    @staticmethod
    def _warn_few_images(trainer: L.Trainer) -> None:
        """Warn (once, rank 0) when the datamodule's validation set has too few distinct photos."""
        dataset = getattr(getattr(trainer, "datamodule", None), "val_set", None)
        if dataset is None:
            return
        warning = sample_size_warning(len(set(dataset_sources(dataset))))
        if warning:
            rank_zero_warn(f"FrequencyGap (val/js_*): the validation set has {warning}")

    def _gathered(self, pl_module: L.LightningModule, kind: str) -> dict[str, dict[str, torch.Tensor]]:
        local = self.collector.values(kind) if kind in self.collector.kinds else None
        if pl_module.trainer.world_size <= 1:
            return local
        return {
            band: {scale: _all_gather_1d(pl_module, local[band][scale]) for scale in self.config.scales}
            for band in BANDS
        }


def _all_gather_1d(pl_module: L.LightningModule, values: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor of possibly different lengths from all ranks (NaN-padded gather)."""
    values = values.to(pl_module.device, torch.float64)
    count = torch.tensor([values.numel()], device=pl_module.device)
    longest = int(pl_module.all_gather(count).max())
    padded = torch.full((longest,), float("nan"), dtype=torch.float64, device=pl_module.device)
    padded[: values.numel()] = values
    gathered = pl_module.all_gather(padded).reshape(-1)
    return gathered[~torch.isnan(gathered)].cpu()
