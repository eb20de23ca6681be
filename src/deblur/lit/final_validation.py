"""Every run that trains ends with a validation inside ``fit``: checkpoints and figures hold its last step.

Lightning validates every ``val_check_interval`` steps (or at epoch ends); a run whose last step is not
one of them (``trainer.max_steps=10`` with validation every 200 steps, the last epoch of a
``val_check_interval`` run) would end ``fit`` without a validation, so ``last.ckpt``, the validation
images, ``val_psnr.png`` and ``before_after.png`` (all written from a validation) would be missing or
stale. :class:`ValidateAtEnd` sets ``trainer.should_stop`` at the last training step; Lightning then runs
the validation loop before it stops, as it does for early stopping, and the checkpoint callbacks and
figures see the final state. (A run stopped by ``trainer.max_time`` is validated the same way:
Lightning's ``Timer`` stops through ``should_stop``.) Lightning validates only in the epochs of
``trainer.check_val_every_n_epoch``; the epoch that ends the run validates whatever that value is.
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
    ends (at most one validation per step: a step that validates anyway is validated once). In an epoch
    that ``trainer.check_val_every_n_epoch`` leaves without validation, that value is set to 1 until the
    epoch ends (Lightning checks it before validating, even when stopping)."""

    def __init__(self) -> None:
        self._every_n_epochs: int | None = None  # the configured value while it is overridden

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.sanity_checking or not is_last_step(trainer):
            return
        trainer.should_stop = True
        every = trainer.check_val_every_n_epoch
        if every is not None and (trainer.current_epoch + 1) % every != 0:
            self._every_n_epochs = every
            trainer.check_val_every_n_epoch = 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._every_n_epochs is not None:
            trainer.check_val_every_n_epoch, self._every_n_epochs = self._every_n_epochs, None
