"""Safe, exact resumption: atomic checkpoint files, RNG states in the checkpoint, a model-mismatch check.

* :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the target folder and
  ``os.replace``-s it over the target, so a crash or a full disk never leaves a truncated ``last.ckpt``.
* :class:`RNGState` stores the torch / numpy / python random states (and the training augmentation's
  albumentations streams) in the checkpoint and restores them when a run resumes, so that a run stopped
  after N steps and resumed to 2N draws the same crops and flips as an uninterrupted 2N-step run.
* :func:`check_checkpoint_model` refuses ``ckpt_path`` from a different network, naming both.
"""

from __future__ import annotations

import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from deblur.utils.io import atomic_write

#: model keys compared between the checkpoint and the config (besides ``name``)
_MODEL_KEYS = ("width", "variant", "use_fsm", "use_csffm", "num_fdb", "encoder_blocks", "decoder_blocks")


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


class RNGState(L.Callback):
    """Checkpoint key ``rng_state``: plain types only, so checkpoints still load with ``weights_only``."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
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
        checkpoint["rng_state"] = state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
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


def _model_summary(model: dict[str, Any]) -> str:
    keys = [k for k in _MODEL_KEYS if k in model]
    return f"{model.get('name')!r} (" + ", ".join(f"{k}={model[k]!r}" for k in keys) + ")"


def check_checkpoint_model(ckpt_path: str | os.PathLike, model_cfg: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming both networks when ``ckpt_path`` holds a different model than
    ``model_cfg`` (name, and the architecture keys in ``_MODEL_KEYS`` present in both)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    saved = (checkpoint.get("hyper_parameters") or {}).get("model")
    if not isinstance(saved, dict):
        return  # not one of our checkpoints: Lightning's own loading will complain if it does not fit
    keys = [k for k in ("name", *_MODEL_KEYS) if k in saved and k in model_cfg]
    differs = [k for k in keys if saved[k] != model_cfg[k]]
    if differs:
        raise ValueError(
            f"ckpt_path={ckpt_path} holds model {_model_summary(saved)}, but this run's config asks for "
            f"model {_model_summary(model_cfg)} (differs in {', '.join(differs)}). Choose the matching "
            f"model= / ablation= options or another checkpoint."
        )
