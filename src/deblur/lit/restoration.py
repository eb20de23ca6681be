"""The one LightningModule: wraps any restoration network with its loss, metrics, optimiser and logging.

Hyperparameters are plain dicts (``model``, ``loss``, ``optim``), so checkpoints load with
``weights_only=True`` and ``RestorationModule.load_from_checkpoint(path)`` rebuilds the network.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from deblur.lit.optim import build_optimizer, lr_factor_fn
from deblur.losses.build import build_loss
from deblur.models.build import build_model


def _psnr() -> PeakSignalNoiseRatio:
    # dim=(1, 2, 3): PSNR per image, then the mean over images, as papers report (not the pooled MSE)
    return PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))


class SamplePicker:
    """Keeps ``n`` validation samples for the image callbacks: the first sample of each source photo (a
    batch's ``source`` list, else its ``name``), topped up with the first samples seen when the set has
    fewer than ``n`` photos."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reset()

    def reset(self) -> None:
        self._distinct: list[tuple[str, tuple[torch.Tensor, ...]]] = []
        self._first: list[tuple[str, tuple[torch.Tensor, ...]]] = []
        self._sources: set[str] = set()

    def offer(self, batch: dict[str, Any], *images: torch.Tensor) -> None:
        """``images``: (N, 3, H, W) tensors of one batch (blurry, deblurred, sharp)."""
        count = images[0].shape[0]
        names = [str(v) for v in batch.get("name", range(count))]
        sources = [str(v) for v in batch.get("source", names)]
        for i in range(min(count, len(names), len(sources))):
            fresh = sources[i] not in self._sources and len(self._distinct) < self.n
            if not fresh and len(self._first) >= self.n:
                continue
            item = (names[i], tuple(t[i].detach().cpu() for t in images))
            if fresh:
                self._sources.add(sources[i])
                self._distinct.append(item)
            if len(self._first) < self.n:
                self._first.append(item)

    def samples(self) -> tuple[tuple[torch.Tensor, ...], list[str]] | None:
        """``((blurry, deblurred, sharp) stacked, names)`` or None when nothing was offered."""
        chosen = list(self._distinct)
        names = {name for name, _ in chosen}
        chosen += [item for item in self._first if item[0] not in names][: self.n - len(chosen)]
        if not chosen:
            return None
        # whole validation images differ in size: centre crops to the smallest height and width
        h = min(images[0].shape[-2] for _, images in chosen)
        w = min(images[0].shape[-1] for _, images in chosen)

        def crop(t: torch.Tensor) -> torch.Tensor:
            top, left = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
            return t[..., top : top + h, left : left + w]

        stacked = tuple(torch.stack([crop(images[k]) for _, images in chosen]) for k in range(3))
        return stacked, [name for name, _ in chosen]


class RestorationModule(L.LightningModule):
    """blurry (N, 3, H, W) -> deblurred (N, 3, H, W); trains with the configured loss.

    Logs ``train/loss`` and every part the loss returns as ``train/<part>`` (MSFS-Net: ``train/l1``,
    ``train/clm`` with its per-scale ratios ``train/clm_full`` / ``train/clm_half`` / ``train/clm_quarter``,
    ``train/consistency``; docs/models.md, "Reading train/clm"), and per validation
    ``val/psnr``, ``val/ssim`` (network), ``val/psnr_input``, ``val/ssim_input`` (the blurry input
    scored against the sharp image: the identity baseline) and ``val/psnr_gain`` (``val/psnr`` minus
    ``val/psnr_input``).

    ``last_val_samples`` holds ``num_log_images`` validation samples for the image callbacks, one of every
    source photo before a second of any (``last_val_names``: their names). Before training, the first
    training sample's size becomes ``example_input_array`` (one image), so Lightning's model summary
    reports the FLOPs of one forward pass at the training crop.
    """

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any],
        optim: dict[str, Any],
        num_log_images: int = 4,
        channels_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(model)
        #: NHWC weights and batches (training and validation): same results up to float rounding, and
        #: faster convolutions on CPUs (oneDNN) and tensor-core GPUs (see README, Performance)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.criterion = build_loss(loss)
        self.model_name = model.get("name")
        self.num_log_images = num_log_images
        self.val_psnr, self.val_psnr_input = _psnr(), _psnr()
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.val_ssim_input = StructuralSimilarityIndexMeasure(data_range=1.0)
        self._picked = SamplePicker(num_log_images)
        #: the global step of the latest validation during fit (None before the first)
        self.last_validation_step: int | None = None

    @property
    def last_val_samples(self) -> tuple[torch.Tensor, ...] | None:
        """(blurry, deblurred, sharp), each (n, 3, H, W), of the validation so far (callbacks read it in
        ``on_validation_epoch_end``, which Lightning calls before the module's): distinct photos first."""
        picked = self._picked.samples()
        return None if picked is None else picked[0]

    @property
    def last_val_names(self) -> list[str]:
        """The names of :attr:`last_val_samples`."""
        picked = self._picked.samples()
        return [] if picked is None else picked[1]

    def setup(self, stage: str) -> None:
        """Before fit: one training sample's shape as ``example_input_array`` (model summary FLOPs)."""
        if stage != "fit" or self.example_input_array is not None:
            return
        dataset = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
        if dataset is not None and len(dataset) > 0:
            with torch.random.fork_rng(devices=[]):  # the crop's draw leaves torch's RNG as it was
                shape = dataset[0]["blurry"].shape
            self.example_input_array = torch.zeros(1, *shape)

    def forward(self, blurry: torch.Tensor) -> torch.Tensor:
        return self.net(blurry)

    def to_layout(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch's 4-D ``blurry`` / ``sharp`` in the network's memory format (channels_last or as is).
        (Not ``on_after_batch_transfer``: Lightning warns when a module overrides it next to a
        DataModule.)"""
        if self.channels_last and isinstance(batch, dict):
            for key in ("blurry", "sharp"):
                if isinstance(batch.get(key), torch.Tensor) and batch[key].ndim == 4:
                    batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
        return batch

    def compute_loss(
        self, blurry: torch.Tensor, sharp: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The configured loss of one batch: ``(prediction, total loss, {part name: value})``.

        Shapes: blurry, sharp (N, 3, H, W) -> prediction (N, 3, H, W), total () (the training objective).
        """
        if getattr(self.criterion, "needs_features", False):
            pred, features = self.net(blurry, return_features=True)
            total, parts = self.criterion(pred, sharp, features=features, encode=self.net.encode_frequencies)
        else:
            pred = self.net(blurry)
            total, parts = self.criterion(pred, sharp)
        return pred, total, parts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        batch = self.to_layout(batch)
        _, total, parts = self.compute_loss(batch["blurry"], batch["sharp"])
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"training loss is {total.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); parts: "
                f"{ {k: float(v.detach()) for k, v in parts.items()} }. "
                f"Lower optim.lr or set trainer.gradient_clip_val."
            )
        batch_size = batch["blurry"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        for key, value in parts.items():
            self.log(f"train/{key}", value, batch_size=batch_size)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        batch = self.to_layout(batch)
        blurry, sharp = batch["blurry"], batch["sharp"]
        pred = self.net(blurry).float().clamp(0.0, 1.0)
        # unpaired data (data=folder) has no ground truth: show images, score nothing
        if bool(torch.as_tensor(batch.get("has_ground_truth", True)).all()):
            # scores in fp32 whatever the training precision: under bf16 autocast SSIM's Gaussian
            # filtering would run in bf16 and report wrong numbers
            with torch.autocast(blurry.device.type, enabled=False):
                blurry, sharp = blurry.float(), sharp.float()
                self.val_psnr.update(pred, sharp)
                self.val_ssim.update(pred, sharp)
                self.val_psnr_input.update(blurry, sharp)
                self.val_ssim_input.update(blurry, sharp)
        self._picked.offer(batch, blurry, pred, sharp)
        return {"pred": pred}  # for callbacks (e.g. FrequencyGap) that score the predictions

    def on_validation_epoch_start(self) -> None:
        self._picked.reset()

    def on_validation_epoch_end(self) -> None:
        values = {}
        for key, metric in (
            ("val/psnr", self.val_psnr),
            ("val/ssim", self.val_ssim),
            ("val/psnr_input", self.val_psnr_input),
            ("val/ssim_input", self.val_ssim_input),
        ):
            if metric.update_called:
                values[key] = metric.compute()
                self.log(key, values[key], prog_bar=key == "val/psnr")
            metric.reset()
        if "val/psnr" in values and "val/psnr_input" in values:
            self.log("val/psnr_gain", values["val/psnr"] - values["val/psnr_input"])
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.last_validation_step = self.global_step

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.hparams.optim
        optimizer = build_optimizer(self.net.parameters(), cfg)

        def total_steps() -> int:
            steps = self.trainer.estimated_stepping_batches
            return int(steps) if math.isfinite(steps) else 1

        def steps_per_epoch() -> int:
            batches = self.trainer.num_training_batches
            if not math.isfinite(batches):
                return 1
            return max(1, int(batches) // self.trainer.accumulate_grad_batches)

        factor, interval = lr_factor_fn(cfg.get("scheduler", {}), cfg["lr"], total_steps, steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
