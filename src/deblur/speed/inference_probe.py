"""Choose the inference speed options by measuring them on the machine that runs them, and remember the
choice (:func:`resolve_speed`; :func:`resolve_options` returns its ``options``).

Which layout and precision is fastest differs between machines of the same kind (CPUs with the same
instruction-set flags differ in how fast their bf16 units are), so the defaults are not read from flags:
they are timed.

* Every option given (not None) is used as given and never probed.
* ``mode="fixed"`` (the ``speed=fixed`` key), no network or no example input, or an input of fewer than
  :data:`~deblur.speed.trial.MIN_PROBE_PIXELS` pixels (N x H x W; a fast call anyway): the fixed rule
  :func:`deblur.speed.options.default_options` fills in the rest. Nothing is timed.
* ``mode="probe"`` (default): the example is centre-cropped to at most
  :data:`~deblur.speed.trial.MAX_PROBE_SIDE` pixels a side (rounded down to the network's ``multiple``),
  then candidates are timed in stages, starting from the fixed rule: (1) ``precision`` x ``channels_last``
  (bf16 only where the device runs it natively, :func:`deblur.speed.options.bf16_available`), (2)
  ``fold_batchnorm`` on and off for the winner (only for networks with BatchNorm; elsewhere it is a no-op
  and keeps the fixed value), (3) ``compile`` on and off (only with ``probe_compile=True``; else compile
  stays off).
* Each stage is a :func:`deblur.speed.trial.interleaved_probe` of :class:`ForwardTimer` calls: a
  candidate's warm-up output is checked against the first (most exact) candidate's output, and a candidate
  below its stated tolerance (:data:`deblur.speed.options.TOLERANCES`) is rejected.
* The choice (:func:`deblur.speed.rule.decide`, on the per-round ratios): an option within its tolerance
  (channels_last, fold_batchnorm, compile) is taken for a median gain of
  :data:`~deblur.speed.trial.TIE_MARGIN` over the most exact candidate; bf16 (which changes results) only
  when it was at least :data:`deblur.speed.rule.EXACT_MARGIN` faster than the best fp32 candidate in every
  round (with 5 or more rounds, all but one in four); a gain inside the noise keeps fp32.
* The choice and its times are logged and cached (:mod:`deblur.speed.cache`).

No figures here: what the probe chose on which machine is in ``docs/benchmarks/``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from deblur.speed.cache import (
    cache_key,
    cache_path,
    cached_entry,
    checks_after,
    network_identity,
    new_entry,
    store_entry,
    trusted_entry,
)
from deblur.speed.options import (
    InferenceOptions,
    bf16_available,
    check_speed_mode,
    default_options,
    describe_options,
    explicit_options,
)
from deblur.speed.rule import describe_decisions
from deblur.speed.timers import ForwardTimer
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
class ProbeResult:
    """The options chosen and why.

    ``source``: ``probe`` (timed now), ``cache`` (timed before, see ``times_ms``), ``fixed`` (the fixed rule:
    ``speed=fixed``), ``explicit`` (every option given), ``no input`` (no network or example to time),
    ``tiny input`` (fewer than :data:`MIN_PROBE_PIXELS` pixels). ``times_ms``: per candidate (its
    :func:`~deblur.speed.options.describe_options` label) ``min_ms``, ``median_ms``, ``runs``, ``warmup_ms``;
    ``rejected``: candidates left out and why; ``key``: the cache key; ``seconds``: the probe's wall time;
    ``decisions``: per timed stage :meth:`deblur.speed.rule.Decision.as_dict` (the margin and spread of
    the choice); ``checks``: how many probes the choice rests on (a marginal one is probed again).
    """

    options: InferenceOptions
    source: str
    times_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    seconds: float = 0.0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    checks: int = 0

    def describe(self) -> str:
        """One line for the log: the choice, where it came from and the measured times."""
        label = describe_options(self.options.as_dict())
        times = ", ".join(f"{k} {v['min_ms']:.1f} ms" for k, v in self.times_ms.items())
        out = f"{label} ({self.source}"
        out += f"; min per call: {times})" if times else ")"
        if self.rejected:
            out += f"; left out: {self.rejected}"
        return out + describe_decisions(self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.as_dict(), "source": self.source, "times_ms": self.times_ms,
            "rejected": self.rejected, "key": self.key, "seconds": self.seconds,
            "decisions": self.decisions, "checks": self.checks,
        }  # fmt: skip


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def probe_example(example: torch.Tensor, multiple: int = 1, max_side: int = MAX_PROBE_SIDE) -> torch.Tensor:
    """The centre crop of (N, C, H, W) ``example`` the probe times: each side at most ``max_side``, rounded
    down to ``multiple`` (sides smaller than ``multiple`` are kept)."""
    if example.ndim != 4:
        raise ValueError(f"the speed probe needs an (N, C, H, W) example, got shape {tuple(example.shape)}")
    h, w = example.shape[-2:]
    multiple = max(int(multiple), 1)

    def side(n: int) -> int:
        n = min(n, max_side)
        return n // multiple * multiple if n >= multiple else n

    ch, cw = side(h), side(w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return example[..., top : top + ch, left : left + cw]


def _exactness(options: InferenceOptions) -> tuple[float, int]:
    return (-options.tolerance(), len(options.enabled()))


def _stages(
    device: torch.device, net: nn.Module, free: set[str], probe_compile: bool
) -> list[dict[str, list[Any]]]:
    first: dict[str, list[Any]] = {}
    if "precision" in free:
        first["precision"] = ["fp32", "bf16"] if bf16_available(device) else ["fp32"]
    if "channels_last" in free:
        first["channels_last"] = [False, True]
    stages = [first] if first else []
    if "fold_batchnorm" in free and has_batchnorm(net):
        stages.append({"fold_batchnorm": [False, True]})
    if "compile" in free and probe_compile:
        stages.append({"compile": [False, True]})
    return stages


def resolve_speed(
    device: torch.device,
    *,
    net: nn.Module | None = None,
    example: torch.Tensor | None = None,
    mode: str = "probe",
    cache: Any = None,
    timer: Callable[[InferenceOptions], float] | None = None,
    network_id: str | None = None,
    probe_compile: bool = False,
    budget_s: float = BUDGET_S,
    min_pixels: int = MIN_PROBE_PIXELS,
    max_side: int = MAX_PROBE_SIDE,
    channels_last: bool | None = None,
    precision: str | None = None,
    fold_batchnorm: bool | None = None,
    compile: bool | None = None,
) -> ProbeResult:
    """The inference options for ``net`` on ``device`` and how they were chosen (module docstring).

    Args:
        device: where the network will run.
        net: the network (eval-mode forward ``(N, 3, H, W) -> (N, 3, H, W)``); None: nothing to time.
        example: a representative input (N, 3, H, W) or (3, H, W) in [0, 1], e.g. the first image or a
            tile (centre-cropped to at most ``max_side`` a side before timing).
        mode: ``"probe"`` (time the options left None) or ``"fixed"`` (the fixed rule, no timing).
        cache: the cache file (None / True = :func:`deblur.speed.cache.default_cache_path`,
            False = none).
        timer: ``timer(options) -> seconds of one call``; default :class:`ForwardTimer` on ``net`` and the
            cropped ``example``.
        network_id: the network's identity in the cache key (e.g.
            :func:`deblur.speed.cache.config_identity` of its model config); default
            :func:`deblur.speed.cache.network_identity` of ``net``.
        probe_compile: also time ``compile=True`` when ``compile`` is None (minutes of compiling).
        budget_s, min_pixels, max_side: see :mod:`deblur.speed.trial` (:data:`BUDGET_S`,
            :data:`MIN_PROBE_PIXELS`, :data:`MAX_PROBE_SIDE`).
        channels_last, precision, fold_batchnorm, compile: given options (None = choose).

    Returns:
        :class:`ProbeResult`; its ``options`` carry every given option unchanged.

    Raises ValueError naming the key for a bad option value or ``speed`` mode.
    """
    device = torch.device(device)
    check_speed_mode(mode)
    pinned = explicit_options(channels_last, precision, fold_batchnorm, compile)
    start_options = replace(default_options(device), **pinned)
    free = {f.name for f in fields(InferenceOptions)} - set(pinned)
    if "compile" in free and not probe_compile:
        free.discard("compile")
    if not free:
        return ProbeResult(start_options, "explicit")
    if mode == "fixed":
        return ProbeResult(start_options, "fixed")
    if net is None or example is None:
        return ProbeResult(start_options, "no input")
    if example.ndim == 3:
        example = example[None]
    if example.ndim != 4:
        raise ValueError(f"the speed probe needs an (N, C, H, W) example, got shape {tuple(example.shape)}")
    if example.shape[0] * example.shape[-2] * example.shape[-1] < min_pixels:
        return ProbeResult(start_options, "tiny input")
    example = probe_example(example, int(getattr(net, "multiple", 1) or 1), max_side)
    stages = _stages(device, net, free, probe_compile)
    if not stages:
        return ProbeResult(start_options, "fixed")
    path = cache_path(cache)
    network = network_id or network_identity(net)
    key = cache_key("inference", device_name(device), network, example.shape, pinned)
    entry = cached_entry(path, key)
    if entry is not None and trusted_entry(entry):
        try:
            result = ProbeResult(
                InferenceOptions(**{**entry["options"], **pinned}), "cache",
                entry.get("times_ms", {}), entry.get("rejected", {}), key,
                decisions=entry["decisions"], checks=int(entry.get("checks", 1)),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            log.warning("speed cache entry %r is malformed; probing again", key)
        else:
            log.info("speed options from the cache %s: %s", path, result.describe())
            return result
    elif entry is not None:
        log.info("speed cache entry %r was marginal or of an older rule: probing again", key)

    own_timer = timer is None
    time_once = ForwardTimer(net, example, device) if own_timer else timer
    started = time.perf_counter()
    chosen = start_options
    times_ms: dict[str, dict[str, float]] = {}
    rejected: dict[str, str] = {}
    decisions: list[dict[str, Any]] = []
    try:
        for stage in stages:
            keys = list(stage)
            candidates = list(
                dict.fromkeys(
                    replace(chosen, **dict(zip(keys, v, strict=True)))
                    for v in itertools.product(*stage.values())
                )  # fmt: skip
            )
            candidates.sort(key=_exactness)
            if len(candidates) == 1:
                chosen = candidates[0]
                continue
            left = max(budget_s - (time.perf_counter() - started), 0.0)
            trial = interleaved_probe(
                candidates, time_once, budget_s=left, changes_results=precision_changes(candidates[0])
            )
            chosen = trial.best
            if trial.decision is not None:
                decisions.append(trial.decision.as_dict(_label))
            for c in trial.runs:
                times_ms[_label(c)] = trial.figures(c)
            rejected.update({_label(c): why for c, why in trial.rejected.items()})
    finally:
        if own_timer:
            time_once.close()
    if not times_ms:  # every stage had a single candidate: nothing was timed
        return ProbeResult(chosen, "fixed")
    seconds = time.perf_counter() - started
    result = ProbeResult(chosen, "probe", times_ms, rejected, key, seconds, decisions, checks_after(entry))
    log.info("speed probe on %s, input %s: chose %s", device, tuple(example.shape), result.describe())
    store_entry(path, key, new_entry(
        "inference", device_name(device), network, example.shape, given=pinned, options=chosen.as_dict(),
        times_ms=times_ms, rejected=rejected, probe_seconds=result.seconds, decisions=decisions,
        checks=result.checks,
    ))  # fmt: skip
    return result


def _label(options: InferenceOptions) -> str:
    return describe_options(options.as_dict())


def resolve_options(
    device: torch.device,
    *,
    net: nn.Module | None = None,
    example: torch.Tensor | None = None,
    mode: str = "probe",
    cache: Any = None,
    channels_last: bool | None = None,
    precision: str | None = None,
    fold_batchnorm: bool | None = None,
    compile: bool | None = None,
    **probe_kwargs: Any,
) -> InferenceOptions:
    """The options to run ``net`` with on ``device``: every option that is not None as given; the others
    chosen by :func:`resolve_speed` (a timed probe of ``net`` on ``example`` when ``mode="probe"`` and both
    are given, else the fixed rule :func:`deblur.speed.options.default_options`).

    ``resolve_options(device)`` alone (no network) is the fixed rule with nothing probed. Bad values raise
    ValueError naming the key and what it takes (e.g. ``precision=fp16x``, ``speed=fast``).
    """
    return resolve_speed(
        device, net=net, example=example, mode=mode, cache=cache, channels_last=channels_last,
        precision=precision, fold_batchnorm=fold_batchnorm, compile=compile, **probe_kwargs,
    ).options  # fmt: skip
