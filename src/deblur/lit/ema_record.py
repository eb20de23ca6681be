"""What a checkpoint's weights are, for the files results are written to: the EMA of the training weights
(``ema.decay``, :mod:`deblur.lit.ema`) or the raw ones. No Lightning import: predict and eval read it."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["checkpoint_ema_decay", "file_weights_record", "weights_record"]


def checkpoint_ema_decay(checkpoint: Mapping[str, Any]) -> float | None:
    """The decay a checkpoint's averaged weights were made with; None for a checkpoint without EMA state.
    (NaN for an EMA checkpoint of Lightning's callback that did not record it.)"""
    if "current_model_state" not in checkpoint:
        return None
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, Mapping) and "latest_update_step" in state:
            return float(state.get("decay", math.nan))
    return math.nan


def weights_record(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """``{"ema_weights": bool, "ema_decay": float | None}`` for a results file: whether the checkpoint's
    ``state_dict`` (what predict / eval read) holds EMA-averaged weights, and their decay (None when not
    averaged or not recorded)."""
    decay = checkpoint_ema_decay(checkpoint)
    known = decay is not None and not math.isnan(decay)
    return {"ema_weights": decay is not None, "ema_decay": decay if known else None}


def file_weights_record(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`weights_record` of the checkpoint file ``path`` (read again, weights only)."""
    from deblur.checkpoints import read_checkpoint

    return weights_record(read_checkpoint(path))
