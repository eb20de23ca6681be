"""Every run that trains ends with a validation inside ``fit``: checkpoints and figures hold its last step.

Lightning validates every ``val_check_interval`` steps (or at epoch ends); a run whose last step is not
one of them (``trainer.max_steps=10`` with validation every 200 steps, the last epoch of a
``val_check_interval`` run) would end ``fit`` without a validation, so ``last.ckpt``, the validation
images, ``val_psnr.png`` and ``before_after.png`` (all written from a validation) would be missing or
stale. :class:`ValidateAtEnd` sets ``trainer.should_stop`` at the last training step; Lightning then runs
the validation loop before it stops, as it does for early stopping, and the checkpoint callbacks and
figures see the final state. (A run stopped by ``trainer.max_time`` is validated the same way:
Lightning's ``Timer`` stops through ``should_stop``.)
"""

from __future__ import annotations

from typing import Any

import lightning as L


def is_last_step(trainer: L.Trainer) -> bool:
    """True after the optimizer step that ends training: ``max_steps`` reached, or the last batch of the
    last epoch of ``max_epochs``."""
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return True
    if trainer.max_epochs in (None, -1) or trainer.current_epoch + 1 < trainer.max_epochs:
        return False
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class ValidateAtEnd(L.Callback):
    """Sets ``trainer.should_stop`` after the last training step, so Lightning validates before ``fit``
    ends (at most one validation per step: a step that validates anyway is validated once)."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if not trainer.sanity_checking and is_last_step(trainer):
            trainer.should_stop = True
