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
from deblur.losses.registry import build_loss
from deblur.models.registry import build_model


def _psnr() -> PeakSignalNoiseRatio:
    # dim=(1, 2, 3): PSNR per image, then the mean over images, as papers report (not the pooled MSE)
    return PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))


class RestorationModule(L.LightningModule):
    """blurry (N, 3, H, W) -> deblurred (N, 3, H, W); trains with the configured loss.

    Logs ``train/loss`` and every part the loss returns as ``train/<part>`` (MSFS-Net: ``train/l1``,
    ``train/clm`` with its per-scale ratios ``train/clm_full`` / ``train/clm_half`` / ``train/clm_quarter``,
    ``train/consistency``; docs/models.md, "Reading train/clm"), and per validation
    ``val/psnr``, ``val/ssim`` (network) and ``val/psnr_input``, ``val/ssim_input`` (the blurry input
    scored against the sharp image: the identity baseline).
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
        #: (blurry, deblurred, sharp) of the first validation batch, for image callbacks
        self.last_val_samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

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
        if batch_idx == 0:
            n = self.num_log_images
            self.last_val_samples = (blurry[:n].cpu(), pred[:n].cpu(), sharp[:n].cpu())
        return {"pred": pred}  # for callbacks (e.g. FrequencyGap) that score the predictions

    def on_validation_epoch_end(self) -> None:
        for key, metric in (
            ("val/psnr", self.val_psnr),
            ("val/ssim", self.val_ssim),
            ("val/psnr_input", self.val_psnr_input),
            ("val/ssim_input", self.val_ssim_input),
        ):
            if metric.update_called:
                self.log(key, metric.compute(), prog_bar=key == "val/psnr")
            metric.reset()

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
