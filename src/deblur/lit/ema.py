"""EMA of the weights (``ema.decay``): Lightning's ``EMAWeightAveraging``, checked and checkpointed.

``ema.decay: null`` (the default) adds nothing. A decay in (0, 1), e.g. 0.999 (BasicSR's ``ema_decay``),
adds :class:`WeightEMA`, Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging`, which after
every optimizer step updates ``avg = decay * avg + (1 - decay) * weights`` (torch's ``AveragedModel``; the
first update copies the weights). What it gives, through Lightning's own hooks:

* every validation (and the final one) runs on the averaged weights, swapped in for the epoch and out
  again before training goes on, so the raw weights train on exactly as without EMA;
* a checkpoint written during ``fit`` (``last.ckpt``, ``best-*.ckpt``: best by the averaged ``val/psnr``)
  holds the averaged weights under ``state_dict``, the raw ones under ``current_model_state`` and the
  average's update count under ``averaging_state``; :func:`deblur.checkpoints.load_model` reads
  ``state_dict``, so predict, eval, analyze and ``init_from=`` use the averaged weights;
* a resume (``ckpt_path=`` / ``resume=true``) restores both: the raw weights from
  ``current_model_state``, the average from ``state_dict`` + ``averaging_state``, and the step of its last
  update from the callback state: the run continues bitwise as if it had not stopped;
* after ``fit`` the module holds the averaged weights.

Buffers (BatchNorm's running mean and variance, MSFS-Net's ``norm: batch``) are averaged with the same
decay (``use_buffers=True``, Lightning's default): the statistics then come from the same stretch of
training as the averaged weights. With ``use_buffers=False`` torch's ``AveragedModel`` would copy the raw
network's latest statistics, which describe the raw weights' activations, not the average's.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import EMAWeightAveraging
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import checkpoint_ema_decay
from deblur.errors import UserError

log = logging.getLogger(__name__)

#: the keys of the ``ema`` node
EMA_KEYS = ("decay",)
_EXPECTED = "a number between 0 and 1 (exclusive), e.g. 0.999, or null (no EMA)"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def ema_problems(cfg: Any) -> list[str]:
    """``key=value: expectation`` lines for a bad ``ema`` node of a ``deblur-train`` config (empty when it is
    fine or absent): an unknown key, a decay that is no number in (0, 1), EMA with a sharded strategy
    (FSDP: Lightning's weight averaging keeps a whole copy of the module and does not support sharding)."""
    node = _plain(cfg.get("ema"))
    if node is None:
        return []
    if not isinstance(node, Mapping):
        return [f"ema={node!r}: a mapping with the key decay (ema.decay=0.999)"]
    problems = [f"ema.{k}: not a key of ema (keys: {', '.join(EMA_KEYS)})" for k in node if k not in EMA_KEYS]
    decay = node.get("decay")
    if decay is None:
        return problems
    number = isinstance(decay, int | float) and not isinstance(decay, bool) and math.isfinite(decay)
    if not number or not 0 < decay < 1:
        shown = repr(decay) if isinstance(decay, str) else decay
        problems.append(f"ema.decay={shown}: {_EXPECTED}")
    elif _sharded(_plain(cfg.get("strategy"))):
        problems.append(
            f"ema.decay={decay}: Lightning's EMA weight averaging does not support sharded models "
            "(strategy=fsdp); use strategy=ddp, or ema.decay=null"
        )
    return problems


def _sharded(strategy: Any) -> bool:
    if isinstance(strategy, Mapping):
        strategy = strategy.get("_target_") or strategy.get("name")
    return isinstance(strategy, str) and "fsdp" in strategy.lower()


def ema_decay(cfg: Any) -> float | None:
    """The run's ``ema.decay`` (None: off, also for configs without an ``ema`` node)."""
    node = _plain(cfg.get("ema")) if cfg is not None else None
    decay = node.get("decay") if isinstance(node, Mapping) else None
    return None if decay is None else float(decay)


class WeightEMA(EMAWeightAveraging):
    """Lightning's ``EMAWeightAveraging`` (every step, from the first) whose checkpoint state also records
    ``decay``, so a resume can say which decay made the averaged weights it continues."""

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)
        self.decay = float(decay)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "decay": self.decay}


def ema_callbacks(cfg: Any) -> list[WeightEMA]:
    """``[WeightEMA(decay)]`` when ``ema.decay`` is set, else ``[]``."""
    decay = ema_decay(cfg)
    if decay is None:
        return []
    log.info("ema.decay=%s: validation and checkpoints use the EMA of the weights", decay)
    return [WeightEMA(decay)]


def check_ema_resume(ckpt_path: str | os.PathLike, cfg: Any) -> None:
    """Refuse resuming an EMA checkpoint with ``ema.decay: null``: Lightning would load its averaged
    ``state_dict`` as the raw weights and drop the average. A different decay is said in the log.

    Raises:
        UserError: naming ``ckpt_path`` and the ``ema.decay`` to resume with.
    """
    import torch

    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    saved, asked = checkpoint_ema_decay(checkpoint), ema_decay(cfg)
    if saved is None:
        if asked is not None:
            log.info("ema.decay=%s: %s holds no EMA state; the average starts from its weights",
                     asked, ckpt_path)  # fmt: skip
        return
    if asked is None:
        value = "=<the decay it was trained with>" if math.isnan(saved) else f"={saved}"
        raise UserError(
            f"ckpt_path={ckpt_path} holds EMA-averaged weights next to the raw ones, but ema.decay is null: "
            f"resume with ema.decay{value} to continue both, or start a new run from its averaged weights "
            f"with init_from={ckpt_path}"
        )
    if not math.isnan(saved) and saved != asked:
        log.warning("ema.decay=%s: the averaged weights of %s were made with ema.decay=%s",
                    asked, ckpt_path, saved)  # fmt: skip
