"""Safe, exact resumption: atomic checkpoint files, RNG states in the checkpoint, a model-mismatch check.

* :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the target folder and
  ``os.replace``-s it over the target, so a crash or a full disk never leaves a truncated ``last.ckpt``.
* :class:`RNGState` stores the torch / numpy / python random states (and the training augmentation's
  albumentations streams) of every rank in the checkpoint and restores them when a run resumes. The
  training data itself does not depend on them (each draw is seeded from ``(seed, epoch, index)``, see
  ``deblur.data.samplers``); they cover any other use of the global generators.
* :func:`check_checkpoint_model` refuses ``ckpt_path`` from a different network, naming both.
* :class:`FiniteCheckpoint` (the ``ModelCheckpoint`` of ``conf/callbacks/default.yaml``) never writes a
  diverged state: a save is skipped while a weight, ``train/loss`` or ``val/psnr`` is not finite, and
  nothing is written when training stops on a non-finite loss, so ``last.ckpt`` keeps the last finite
  state and ``ckpt_path=last`` never resumes from NaN weights.
* :func:`checkpoint_info`: a checkpoint's step, epoch and training time, for resume messages.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from deblur.checkpoints import architecture_differences, check_finite_state, describe_model
from deblur.utils.files import NoSpaceLeft, atomic_write

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that never leaves a partial file at the checkpoint's path."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):  # remote filesystems: fsspec's own semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(
            path,
            lambda tmp: TorchCheckpointIO.save_checkpoint(self, checkpoint, tmp, storage_options),
            suffix=".tmp",
        )


def _augment_composes(trainer: L.Trainer) -> list[Any]:
    """The albumentations Composes of the training set's paired augmentation (empty when none)."""
    datamodule = getattr(trainer, "datamodule", None)
    dataset = getattr(datamodule, "train_set", None)
    transform = getattr(dataset, "transform", None)
    return [c for c in (getattr(transform, "scene", None), getattr(transform, "capture", None)) if c]


def _collectives_safe(trainer: L.Trainer) -> bool:
    """True when every rank is saving together: a checkpoint written because one rank raised an error
    (``save_on_exception``) must not wait for the others in a collective."""
    from lightning.pytorch.trainer.states import TrainerStatus

    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    return initialized and trainer.state.status == TrainerStatus.RUNNING


class RNGState(L.Callback):
    """Checkpoint keys ``rng_state`` (this rank's, rank 0's in the file) and, under DDP,
    ``rng_state_per_rank`` (every rank's, gathered when the checkpoint is written; a run resumed on the
    same number of ranks gives each its own). Plain types only, so checkpoints load with ``weights_only``.
    """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = self._local_state(trainer)
        checkpoint["rng_state"] = state
        if trainer.world_size > 1 and _collectives_safe(trainer):
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, state)
            checkpoint["rng_state_per_rank"] = gathered

    def _local_state(self, trainer: L.Trainer) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "augment": [
                {"numpy": c.random_generator.bit_generator.state, "python": list(c.py_random.getstate()[1])}
                for c in _augment_composes(trainer)
            ],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
        per_rank = checkpoint.get("rng_state_per_rank")
        if per_rank and len(per_rank) == trainer.world_size:
            state = per_rank[trainer.global_rank]  # each rank continues its own streams
        if not state:
            return
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate((state["python_version"], tuple(state["python"]), None))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        self._pending_augment = state.get("augment") or []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the datamodule's training set exists only after setup, i.e. after the checkpoint is read
        pending = getattr(self, "_pending_augment", None)
        if not pending:
            return
        for compose, saved in zip(_augment_composes(trainer), pending, strict=False):
            generator = np.random.default_rng()
            generator.bit_generator.state = saved["numpy"]
            py_random = random.Random()
            py_random.setstate((3, tuple(saved["python"]), None))
            compose.set_random_state(generator, py_random)
        self._pending_augment = []


def check_checkpoint_model(ckpt_path: str | os.PathLike, model_cfg: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` when ``ckpt_path`` holds a NaN or infinite tensor, and ``ValueError``
    naming both networks when it holds a different model than ``model_cfg`` (name, and the architecture
    keys of :func:`deblur.checkpoints.architecture_differences`)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    check_finite_state(checkpoint.get("state_dict") or {}, f"ckpt_path={ckpt_path}")  # never resume from NaN
    saved = (checkpoint.get("hyper_parameters") or {}).get("model")
    if not isinstance(saved, dict):
        return  # not one of our checkpoints: Lightning's own loading will complain if it does not fit
    differs = architecture_differences(saved, model_cfg)
    if differs:
        raise ValueError(
            f"ckpt_path={ckpt_path} holds model {describe_model(saved)}, but this run's config asks for "
            f"model {describe_model(model_cfg)} (differs in {', '.join(differs)}). Choose the matching "
            f"model= / ablation= options or another checkpoint."
        )


def checkpoint_info(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """``{"step", "epoch", "train_seconds"}`` of a Lightning checkpoint (``train_seconds``: the training time
    Lightning's ``Timer`` had counted, which ``trainer.max_time`` limits; None without a timer)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    timer = (checkpoint.get("callbacks") or {}).get("Timer") or {}
    seconds = (timer.get("time_elapsed") or {}).get("train")
    return {
        "step": int(checkpoint.get("global_step", 0)),
        "epoch": int(checkpoint.get("epoch", 0)),
        "train_seconds": None if seconds is None else float(seconds),
    }


def nonfinite_state(trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
    """What is not finite in the training state (a weight or buffer, ``train/loss``, ``val/psnr``), or None.

    Under DDP every rank checks and the ranks agree (a rank-local NaN loss counts for all) when the ranks
    are saving together."""
    problem = None
    state = {k: t for k, t in pl_module.state_dict().items() if t.is_floating_point()}
    finite = [torch.isfinite(t).all() for t in state.values()]
    if finite and not bool(torch.stack(finite).all()):  # one device sync for the whole state
        name = next(k for k, ok in zip(state, finite, strict=True) if not bool(ok))
        problem = f"weight {name} is not finite"
    if problem is None:
        for key in ("train/loss", "val/psnr"):
            value = trainer.callback_metrics.get(key)
            if value is not None and not bool(torch.isfinite(torch.as_tensor(value)).all()):
                problem = f"{key} is {float(value)}"
                break
    if trainer.world_size > 1 and _collectives_safe(trainer):
        finite_everywhere = trainer.strategy.reduce_boolean_decision(problem is None, all=True)
        if problem is None and not finite_everywhere:
            problem = "the state of another rank is not finite"
    return problem


class FiniteCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps the last *finite* state.

    * A save is skipped (with a warning naming the step and the file kept) while :func:`nonfinite_state`
      finds a non-finite weight, ``train/loss`` or ``val/psnr``; the file written before stays, and no
      older checkpoint is removed on account of the skipped one.
    * ``save_on_exception`` writes nothing when the exception is a ``FloatingPointError`` (the
      non-finite loss of :meth:`deblur.lit.restoration.RestorationModule.training_step`): the weights
      that produced it have diverged. A save on an exception that fails for a full disk
      (:class:`~deblur.utils.files.NoSpaceLeft`) is a warning: the exception handled is the one reported.

    * A save made by a validation after the last batch of an epoch that ends the run (``trainer.max_epochs``
      reached, or ``trainer.should_stop``: :class:`~deblur.lit.final_validation.ValidateAtEnd`, early
      stopping) is made again at that epoch's end. The first file records a loop still inside the epoch;
      Lightning recognises that state on a resume only when its own schedule validates at that batch, and
      otherwise trains the last batch a second time (a 1-epoch run of 8 steps resumed with
      ``trainer.max_epochs=2`` ended at step 17). The second file records the closed epoch, which resumes
      exactly.

    :attr:`skipped_steps` lists the steps whose save was skipped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_steps: list[int] = []
        self._skipped_last = False
        self._validation_save: tuple[int, str] | None = None  # (step, file) of a save made by a validation

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so that checkpoints written before (and after) restore this state
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        problem = nonfinite_state(trainer, trainer.lightning_module)
        self._skipped_last = problem is not None
        if problem is not None:
            self.skipped_steps.append(trainer.global_step)
            kept = f"; {filepath} keeps its earlier state" if os.path.exists(filepath) else ""
            if trainer.is_global_zero:
                log.warning("not writing %s at step %d: %s%s", filepath, trainer.global_step, problem, kept)
            return
        super()._save_checkpoint(trainer, filepath)
        self._validation_save = (trainer.global_step, filepath) if trainer.validating else None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        saved = self._validation_save
        if saved is None or saved[0] != trainer.global_step or trainer.sanity_checking:
            return
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # stopped inside the epoch (max_time, a callback): the file must say so to resume there
        max_epochs = trainer.max_epochs
        last_epoch = max_epochs not in (None, -1) and trainer.current_epoch + 1 >= max_epochs
        if last_epoch or trainer.should_stop:
            self._save_checkpoint(trainer, saved[1])  # the same weights, the epoch now closed

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if self._skipped_last:  # the replacement was not written: keep the file it would replace
            return
        super()._remove_checkpoint(trainer, filepath)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, FloatingPointError):
            if self.save_on_exception and trainer.is_global_zero:
                step = trainer.global_step
                log.warning("training diverged at step %d: no checkpoint written on the error", step)
            return
        try:
            super().on_exception(trainer, pl_module, exception)
        except NoSpaceLeft as err:  # the disk is full: the error being handled is what the run reports
            if trainer.is_global_zero:
                log.warning("%s on the error; the checkpoints written before stay", err)
