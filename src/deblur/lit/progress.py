"""The training progress bar: Lightning's (rich when installed, else tqdm) with an honest description.

Lightning's rich bar describes a training epoch as ``Epoch <e>/<max_epochs - 1>``, which reads
``Epoch 1/-2`` when the run is bounded by steps (``max_epochs`` null becomes -1). Here the description is
``Epoch <e>`` for such runs (``Epoch <e>/<last>`` when epochs bound it), and the bar's metrics show the
optimizer step: ``step 120/1200`` (``step 120`` without ``max_steps``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE


def epoch_description(trainer: L.Trainer, current_epoch: int) -> str:
    """``Epoch 3`` (no epoch limit) or ``Epoch 3/9`` (``max_epochs`` 10)."""
    max_epochs = trainer.max_epochs
    if max_epochs is None or max_epochs < 1:
        return f"Epoch {current_epoch}"
    return f"Epoch {current_epoch}/{max_epochs - 1}"


def step_metric(trainer: L.Trainer) -> str:
    """``120/1200`` (``max_steps`` set) or ``120``."""
    max_steps = trainer.max_steps
    return f"{trainer.global_step}/{max_steps}" if max_steps and max_steps > 0 else str(trainer.global_step)


class _StepMetric:
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return {"step": step_metric(trainer), **super().get_metrics(trainer, pl_module)}


class RichStepProgressBar(_StepMetric, RichProgressBar):
    """Lightning's rich bar without the negative epoch count."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = epoch_description(self.trainer, current_epoch)
        return f"{description:{len(self.validation_description)}}"  # pad as Lightning does (no flicker)


class TQDMStepProgressBar(_StepMetric, TQDMProgressBar):
    """Lightning's tqdm bar with the same description."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(epoch_description(trainer, trainer.current_epoch))


def progress_bar() -> ProgressBar:
    """The bar ``deblur-train`` uses: rich when ``rich`` is installed (as Lightning picks), else tqdm."""
    return RichStepProgressBar() if _RICH_AVAILABLE else TQDMStepProgressBar()
