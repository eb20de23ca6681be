"""Choose how to train (``channels_last`` and the Lightning precision, ``trainer.precision=auto``:
``32-true`` or ``bf16-mixed``) by timing whole training steps on the machine that trains
(:func:`choose_training_speed`), and remember the choice.

The same as the inference probe (:mod:`deblur.speed.inference_probe`: given options are kept, ``speed=fixed``
and tiny inputs use the fixed rule, the candidates go through :func:`deblur.speed.trial.interleaved_probe`
and :func:`deblur.speed.rule.decide`, the choice is cached by :mod:`deblur.speed.cache`), timing training
steps (forward with the loss's feature passes, loss, backward, Adam step) of the configured network and
loss on a small random batch: at most 2 samples of the training crop, itself at most
:data:`~deblur.speed.trial.MAX_PROBE_SIDE` a side. The fixed rule here: channels_last on CPU and CUDA,
``32-true``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from deblur.speed.cache import (
    cache_key,
    cache_path,
    cached_entry,
    checks_after,
    config_identity,
    new_entry,
    store_entry,
    trusted_entry,
)
from deblur.speed.options import (
    TRAIN_PRECISIONS,
    TrainingOptions,
    bf16_available,
    check_speed_mode,
    fixed_training_options,
)
from deblur.speed.rule import describe_decisions
from deblur.speed.timers import TrainStepTimer
from deblur.speed.trial import (
    BUDGET_S,
    MAX_PROBE_SIDE,
    MIN_PROBE_PIXELS,
    interleaved_probe,
    precision_changes,
)
from deblur.utils.device import device_name

log = logging.getLogger(__name__)


@dataclass
class TrainingSpeed:
    """The training options chosen (``channels_last``, ``precision``) and why (as
    :class:`deblur.speed.inference_probe.ProbeResult`)."""

    options: TrainingOptions
    source: str
    times_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    seconds: float = 0.0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    checks: int = 0

    @property
    def channels_last(self) -> bool:
        return self.options.channels_last

    @property
    def precision(self) -> str:
        return self.options.precision

    def describe(self) -> str:
        times = ", ".join(f"{k} {v['min_ms']:.1f} ms" for k, v in self.times_ms.items())
        out = f"{self.options.label()} ({self.source}" + (f"; min per step: {times})" if times else ")")
        return out + describe_decisions(self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.as_dict(), "source": self.source, "times_ms": self.times_ms,
            "rejected": self.rejected, "key": self.key, "seconds": self.seconds,
            "decisions": self.decisions, "checks": self.checks,
        }  # fmt: skip


@contextlib.contextmanager
def _own_random_state(device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def choose_training_speed(
    model_cfg: Mapping[str, Any],
    loss_cfg: Mapping[str, Any],
    device: torch.device,
    *,
    batch: int,
    size: int,
    channels_last: bool | None = None,
    precision: str | None = None,
    mode: str = "probe",
    cache: Any = None,
    timer: Callable[[TrainingOptions], float] | None = None,
    network_id: str | None = None,
    budget_s: float = BUDGET_S,
    min_pixels: int = MIN_PROBE_PIXELS,
    probe_batch: int = 2,
    probe_size: int = MAX_PROBE_SIDE,
) -> TrainingSpeed:
    """``channels_last`` and ``trainer.precision`` for training ``model_cfg`` with ``loss_cfg`` on ``device``.

    Args:
        model_cfg, loss_cfg: the train config's ``model`` and ``loss`` (plain dicts).
        device: where training runs.
        batch, size: the training batch size and crop (``data.batch_size``, ``data.crop_size``); the probe
            times steps of at most ``probe_batch`` samples of the training crop (at most ``probe_size``
            a side): a small batch, but the crop size itself, since which layout and precision wins can
            change with the image size.
        channels_last: given (True / False) or None to choose.
        precision: a Lightning precision (given, e.g. ``"32-true"``) or None / ``"auto"`` to choose between
            :data:`TRAIN_PRECISIONS` (bf16-mixed only where the device runs bf16 natively).
        mode, cache, budget_s, min_pixels: as in :func:`deblur.speed.inference_probe.resolve_speed`.
        timer: ``timer(TrainingOptions) -> seconds of one step``; default :class:`TrainStepTimer`.
        network_id: identity in the cache key; default :func:`config_identity` of the two configs.

    Returns:
        :class:`TrainingSpeed` (``.channels_last``, ``.precision``, the times).

    The probe changes no global state: the random number generators are restored afterwards.
    """
    device = torch.device(device)
    check_speed_mode(mode)
    if channels_last is not None and not isinstance(channels_last, bool):
        raise ValueError(
            f"channels_last must be true or false (or null to choose by measuring), got {channels_last!r}"
        )
    if precision is not None and not isinstance(precision, str):
        raise ValueError(f"trainer.precision must be a Lightning precision string or auto, got {precision!r}")
    pinned: dict[str, Any] = {}
    if channels_last is not None:
        pinned["channels_last"] = channels_last
    if precision not in (None, "auto"):
        pinned["precision"] = precision
    start_options = replace(fixed_training_options(device), **pinned)
    if len(pinned) == 2:
        return TrainingSpeed(start_options, "explicit")
    if mode == "fixed":
        return TrainingSpeed(start_options, "fixed")
    n, side = min(int(batch), probe_batch), min(int(size), probe_size)
    if n * side * side < min_pixels:
        return TrainingSpeed(start_options, "tiny input")
    precisions = [pinned["precision"]] if "precision" in pinned else (
        list(TRAIN_PRECISIONS) if bf16_available(device) else ["32-true"]
    )  # fmt: skip
    layouts = [pinned["channels_last"]] if "channels_last" in pinned else [False, True]
    candidates = [TrainingOptions(cl, p) for p in precisions for cl in layouts]
    if len(candidates) == 1:
        return TrainingSpeed(candidates[0], "fixed")
    path = cache_path(cache)
    identity = network_id or config_identity(model_cfg, loss_cfg)
    shape = (n, 3, side, side)
    key = cache_key("training", device_name(device), identity, shape, pinned)
    entry = cached_entry(path, key)
    if entry is not None and trusted_entry(entry):
        try:
            result = TrainingSpeed(
                TrainingOptions(**{**entry["options"], **pinned}), "cache", entry.get("times_ms", {}),
                entry.get("rejected", {}), key, decisions=entry["decisions"],
                checks=int(entry.get("checks", 1)),
            )  # fmt: skip
        except (KeyError, TypeError):
            log.warning("speed cache entry %r is malformed; probing again", key)
        else:
            log.info("training speed from the cache %s: %s", path, result.describe())
            return result
    elif entry is not None:
        log.info("speed cache entry %r was marginal or of an older rule: probing again", key)
    own_timer = timer is None
    started = time.perf_counter()
    with _own_random_state(device):
        time_once = TrainStepTimer(model_cfg, loss_cfg, device, n, side) if own_timer else timer
        try:
            trial = interleaved_probe(
                candidates, time_once, budget_s=budget_s, changes_results=precision_changes(candidates[0])
            )
        finally:
            if own_timer:
                time_once.close()
    times_ms = {c.label(): trial.figures(c) for c in trial.runs}
    rejected = {c.label(): why for c, why in trial.rejected.items()}
    decisions = [trial.decision.as_dict(TrainingOptions.label)] if trial.decision is not None else []
    seconds = time.perf_counter() - started
    checks = checks_after(entry)
    result = TrainingSpeed(trial.best, "probe", times_ms, rejected, key, seconds, decisions, checks)
    log.info("training speed probe on %s, batch %s: chose %s", device, shape, result.describe())
    store_entry(path, key, new_entry(
        "training", device_name(device), identity, shape, given=pinned, options=trial.best.as_dict(),
        times_ms=times_ms, rejected=rejected, probe_seconds=result.seconds, decisions=decisions,
        checks=result.checks,
    ))  # fmt: skip
    return result
