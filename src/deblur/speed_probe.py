"""Choose the speed options by measuring them on the machine that runs them, and remember the choice.

Which layout and precision is fastest differs between machines of the same kind (CPUs with the same
instruction-set flags differ in how fast their bf16 units are), so the defaults are not read from flags:
they are timed.

Inference (:func:`resolve_speed`; :func:`deblur.speedups.resolve_options` returns its ``options``):

* Every option given (not None) is used as given and never probed.
* ``mode="fixed"`` (the ``speed=fixed`` key), no network or no example input, or an input of fewer than
  :data:`MIN_PROBE_PIXELS` pixels (N x H x W; a fast call anyway): the fixed rule
  :func:`deblur.speedups.default_options` fills in the rest. Nothing is timed.
* ``mode="probe"`` (default): the example is centre-cropped to at most :data:`MAX_PROBE_SIDE` pixels a side
  (rounded down to the network's ``multiple``), then candidates are timed in stages, starting from the
  fixed rule: (1) ``precision`` x ``channels_last`` (bf16 only where the device runs it natively,
  :func:`deblur.speedups.bf16_available`), (2) ``fold_batchnorm`` on and off for the winner (only for
  networks with BatchNorm; elsewhere it is a no-op and keeps the fixed value), (3) ``compile`` on and off
  (only with ``probe_compile=True``; else compile stays off).
* Timing (:func:`interleaved_probe`): each candidate is prepared once and called once as a warm-up; the
  warm-up output is checked against the first (most exact) candidate's output, and a candidate below its
  stated tolerance (:data:`deblur.speedups.TOLERANCES`) is rejected. Then up to :data:`ROUNDS` rounds,
  each calling every candidate once (interleaved, rotating the order, so that a noisy neighbour slows all
  of them alike; a candidate more than :data:`DROP_FACTOR` x slower than the fastest of its group in the
  first round is not timed further, but the fastest fp32 one always stays as the base for bf16; warm-ups
  are not used for this, their one-time costs differ between candidates), stopping after the round that
  passes ``budget_s`` (at least :data:`MIN_ROUNDS` rounds, or one when the warm-ups alone took
  :data:`LONG_WARMUP` budgets and no bf16 candidate is left); while the decision is still marginal
  (below), rounds go on up to :data:`ROUNDS`, for at most as long again as the first ones took.
* The choice (:func:`deblur.speed_rule.decide`, on the per-round ratios): an option within its tolerance
  (channels_last, fold_batchnorm, compile) is taken for a median gain of :data:`TIE_MARGIN` over the
  most exact candidate; bf16 (which changes results) only when it was at least
  :data:`deblur.speed_rule.EXACT_MARGIN` faster than the best fp32 candidate in every round (with 5 or
  more rounds, all but one in four); a gain inside the noise keeps fp32.
* The choice and its times are logged and cached (:func:`default_cache_path`, a JSON file written
  atomically) under a key of (device name with the CPU thread count, torch version, network identity,
  input size class = the rounded log2 of N x H x W of the probed input, the options given), with each
  stage's margin and spread (``decisions``) and the number of probes it rests on (``checks``). A cached
  entry is used without timing anything, except one whose decision was marginal (``|gain|`` within 2
  spreads), which is probed again until it rests on :data:`CHECKS` probes, and one without recorded
  decisions (written by an older rule); entries written by another torch version are ignored.

Training (:func:`choose_training_speed`): the same for ``channels_last`` and the Lightning precision
(``trainer.precision=auto``: ``32-true`` or ``bf16-mixed``), timing whole training steps (forward with
the loss's feature passes, loss, backward, Adam step) of the configured network and loss on a small random
batch: at most 2 samples of the training crop, itself at most :data:`MAX_PROBE_SIDE` a side. The fixed rule
there: channels_last on CPU and CUDA, ``32-true``.

The timing functions are arguments (``timer``), so that tests can inject times. No figures here: what
the probe chose on which machine is in ``docs/benchmarks/``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from deblur.speed_rule import EXACT_MARGIN, TOLERANCE_MARGIN, Decision, decide
from deblur.speedups import (
    InferenceOptions,
    bf16_available,
    default_options,
    describe_options,
    explicit_options,
    inference_context,
    output_psnr,
    prepare_for_inference,
    to_input,
)
from deblur.utils.device import device_name
from deblur.utils.files import atomic_write_json

log = logging.getLogger(__name__)

#: values of the ``speed`` key
MODES = ("probe", "fixed")
#: inputs with fewer pixels (N x H x W) are not probed: the fixed rule is used
MIN_PROBE_PIXELS = 128 * 128
#: the probe's example input is centre-cropped to at most this many pixels a side
MAX_PROBE_SIDE = 256
#: seconds of timed rounds after which the probe stops (it always times at least one round)
BUDGET_S = 3.0
#: the most timed rounds per stage, and the fewest (whatever the budget) when there are several candidates
#: (at least 3, so that the spread of the per-round ratios is measured: :mod:`deblur.speed_rule`); past
#: the budget, rounds go on (up to ROUNDS) only while the decision is marginal
ROUNDS = 7
MIN_ROUNDS = 3
#: when the warm-up calls alone took more than this many budgets, one timed round is the fewest
LONG_WARMUP = 5.0
#: a candidate more than this many times slower than the fastest in the first timed round is not timed further
DROP_FACTOR = 2.0
#: the least gain for an option within its tolerance (channels_last, fold_batchnorm); smaller gains are
#: ties, settled for the most exact candidate (:data:`deblur.speed_rule.TOLERANCE_MARGIN`)
TIE_MARGIN = TOLERANCE_MARGIN
#: a cached choice whose decision was marginal is probed again until it has been probed this many times
CHECKS = 2
#: environment variable naming the cache file (overrides the XDG / home default)
CACHE_ENV = "DEBLUR_SPEED_CACHE"
CACHE_VERSION = 1
#: Lightning precisions the training probe chooses between (``trainer.precision=auto``)
TRAIN_PRECISIONS = ("32-true", "bf16-mixed")

C = TypeVar("C", bound=Hashable)


# ---------------------------------------------------------------- the timed comparison
@dataclass
class Trial(Generic[C]):
    """What :func:`interleaved_probe` measured: the winner, each candidate's timed runs and warm-up (s),
    and the candidates left out with the reason."""

    best: C
    runs: dict[C, list[float]]
    warmup: dict[C, float]
    rejected: dict[C, str]
    rounds: list[dict[C, float]] = field(default_factory=list)
    decision: Decision[C] | None = None


def interleaved_probe(
    candidates: Sequence[C],
    time_once: Callable[[C], float],
    *,
    rounds: int = ROUNDS,
    budget_s: float = BUDGET_S,
    drop_factor: float = DROP_FACTOR,
    tie_margin: float = TIE_MARGIN,
    changes_results: Callable[[C], bool] | None = None,
    exact_margin: float = EXACT_MARGIN,
) -> Trial[C]:
    """Time ``candidates`` (most exact first) with ``time_once(candidate) -> seconds of one call``.

    One warm-up call each (an exception rejects the candidate, with its message), then up to ``rounds``
    rounds calling every remaining candidate once, the order rotated each round. Candidates more than
    ``drop_factor`` times slower than the fastest of their group in the first round are not timed further
    (:func:`_keep_timing`). Stops after the round in which ``budget_s`` seconds (counted from the first
    warm-up) have passed and the decision is not marginal, but not before :data:`MIN_ROUNDS` rounds (one
    when a single candidate is left, or when the warm-ups alone took :data:`LONG_WARMUP` budgets and no
    result-changing candidate is left: calls of seconds each, where one round costs enough). The winner is
    :func:`deblur.speed_rule.decide` of the timed rounds: per-round ratios against the most exact
    candidate; ``tie_margin`` is the least gain for candidates within their tolerance, ``exact_margin``
    (and the spread of the ratios) for those where ``changes_results(candidate)`` is true (default: none).
    Raises RuntimeError when every candidate was rejected.
    """
    if not candidates:
        raise ValueError("interleaved_probe needs at least one candidate")
    start = time.perf_counter()
    warmup: dict[C, float] = {}
    rejected: dict[C, str] = {}
    for candidate in candidates:
        try:
            warmup[candidate] = float(time_once(candidate))
        except Exception as err:  # noqa: BLE001 - an option that does not work here is not a choice
            rejected[candidate] = _reason(err)
    alive = [c for c in candidates if c in warmup]
    if not alive:
        raise RuntimeError(f"every speed candidate failed: {rejected}")
    runs: dict[C, list[float]] = {c: [] for c in alive}
    table: list[dict[C, float]] = []
    timing = list(alive)
    changes = changes_results or (lambda c: False)
    # calls of seconds each (warm-ups past LONG_WARMUP x the budget): one timed round may be all there is,
    # unless an option that changes results is still in play (its gain must be measured against the noise)
    long = time.perf_counter() - start > LONG_WARMUP * budget_s
    fewest = min(MIN_ROUNDS, rounds)
    first_rounds_s = math.inf  # timed seconds of the first `fewest` rounds; extra rounds: as much again
    for r in range(max(int(rounds), 1) if len(alive) > 1 else 1):
        order = timing[r % len(timing) :] + timing[: r % len(timing)]
        table.append({})
        for c in order:
            try:
                table[-1][c] = float(time_once(c))
            except Exception as err:  # noqa: BLE001
                rejected[c] = _reason(err)
            else:
                runs[c].append(table[-1][c])
        timing = [c for c in timing if c not in rejected]
        if not timing:
            break
        if r == 0:  # far slower in a timed run (after the warm-up's one-time costs): not timed further
            timing = _keep_timing(timing, {c: runs[c][0] for c in timing}, changes, drop_factor)
            fewest = 1 if long and not any(changes(c) for c in timing) else fewest
        timed_s = sum(sum(row.values()) for row in table)
        first_rounds_s = timed_s if r + 1 == fewest else first_rounds_s
        if len(timing) < 2 or (r + 1 >= fewest and time.perf_counter() - start > budget_s and (
            fewest == 1 or timed_s > 2 * first_rounds_s or _settled(timing, table, changes, tie_margin,
                                                                   exact_margin)
        )):  # fmt: skip
            break
    timed = [c for c in alive if c not in rejected and runs[c]]
    if not timed:
        raise RuntimeError(f"every speed candidate failed: {rejected}")
    table = [{c: t for c, t in r.items() if c in timed} for r in table]
    decision = decide(
        timed, table, changes_results or (lambda c: False), tolerance_margin=tie_margin,
        exact_margin=exact_margin,
    )  # fmt: skip
    return Trial(
        best=decision.choice, runs={c: runs[c] for c in timed}, warmup=warmup, rejected=rejected,
        rounds=table, decision=decision,
    )  # fmt: skip


def _settled(
    timing: list[C], table: list[dict[C, float]], changes: Callable[[C], bool], tie_margin: float,
    exact_margin: float,
) -> bool:  # fmt: skip
    """Whether the decision on the candidates still timed is clear of the noise (not marginal)."""
    rounds = [{c: t for c, t in r.items() if c in timing} for r in table]
    decision = decide(timing, rounds, changes, tolerance_margin=tie_margin, exact_margin=exact_margin)
    return not decision.marginal


def _keep_timing(
    timing: list[C], first: Mapping[C, float], changes: Callable[[C], bool], drop_factor: float
) -> list[C]:
    """The candidates timed after the first round: not those more than ``drop_factor`` x slower than the
    fastest of their group (within tolerance of the exact one / changing results). Each group's fastest
    stays, whatever one (possibly disturbed) round says: the fastest exact one as the base that a
    result-changing candidate's per-round gain is measured against."""
    exact = [c for c in timing if not changes(c)]
    others = [c for c in timing if changes(c)]
    keep = set()
    for group in (exact, others):
        if group:
            quickest = min(first[c] for c in group)
            keep |= {c for c in group if first[c] <= drop_factor * quickest}
    return [c for c in timing if c in keep]


def _reason(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def _figures(runs: list[float], warmup: float | None) -> dict[str, float]:
    return {
        "min_ms": min(runs) * 1e3,
        "median_ms": statistics.median(runs) * 1e3,
        "runs": len(runs),
        "warmup_ms": None if warmup is None else warmup * 1e3,
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- identities and the cache
def _torch_version() -> str:
    return torch.__version__


def network_identity(net: nn.Module) -> str:
    """A 16-hex-digit hash of ``net``'s architecture: its module tree (``repr``) and the names, shapes and
    dtypes of its parameters and buffers (not their values: speed does not depend on the weights)."""
    digest = hashlib.sha256(repr(net).encode())
    for name, tensor in itertools.chain(net.named_parameters(), net.named_buffers()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    return digest.hexdigest()[:16]


def config_identity(*configs: Mapping[str, Any] | None) -> str:
    """A 16-hex-digit hash of plain config dicts (e.g. the model and loss configs)."""
    text = json.dumps([dict(c) if c is not None else None for c in configs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def size_class(shape: Sequence[int]) -> str:
    """``"2^16"``: the rounded log2 of N x H x W of an (N, C, H, W) shape (a 256x256 image is 2^16)."""
    n, _, h, w = (int(v) for v in shape)
    return f"2^{round(math.log2(max(n * h * w, 1)))}"


def default_cache_path() -> Path:
    """``$DEBLUR_SPEED_CACHE``, else ``$XDG_CACHE_HOME/deblur/speed.json``, else
    ``~/.cache/deblur/speed.json``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "deblur" / "speed.json"


def cache_path(cache: Any) -> Path | None:
    """``cache``: None or True = :func:`default_cache_path`; False = no cache; a path = that file."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return default_cache_path()
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser()
    raise ValueError(f"speed cache must be a file path, true/null (the default file) or false, got {cache!r}")


def _cache_key(kind: str, device: str, version: str, network: str, size: str, pinned: Mapping) -> str:
    given = ",".join(f"{k}={v}" for k, v in sorted(pinned.items())) or "-"
    return f"{kind} | {device} | torch {version} | net {network} | {size} | given {given}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("speed cache %s is unreadable (%s); probing again", path, err)
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("entries"), dict)
    ):
        return {}
    return data["entries"]


def cached_entry(path: Path | None, key: str) -> dict[str, Any] | None:
    """The cache entry of ``key``, or None (no cache, no entry, or one written by another torch)."""
    if path is None:
        return None
    entry = _read_cache(path).get(key)
    if not isinstance(entry, dict) or entry.get("torch") != _torch_version():
        return None
    return entry


def store_entry(path: Path | None, key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` under ``key`` to the cache file (read again just before, written atomically); a cache
    that cannot be written is logged and skipped."""
    if path is None:
        return
    entries = _read_cache(path)
    entries[key] = entry
    try:
        atomic_write_json(path, {"version": CACHE_VERSION, "entries": entries})
    except OSError as err:
        log.warning("speed cache %s could not be written (%s); the choice is not remembered", path, err)


def trusted_entry(entry: Mapping[str, Any]) -> bool:
    """Whether a cached choice is used without timing: its decisions were recorded (entries of an older
    rule were not) and none was marginal, or it has been probed :data:`CHECKS` times already."""
    decisions = entry.get("decisions")
    if not isinstance(decisions, list):
        return False
    marginal = any(isinstance(d, dict) and d.get("marginal") for d in decisions)
    return not marginal or int(entry.get("checks", 1)) >= CHECKS


def _checks(entry: Mapping[str, Any] | None) -> int:
    """How many probes a new entry rests on: one more than a re-checked entry of this rule."""
    if entry is None or not isinstance(entry.get("decisions"), list):
        return 1
    return int(entry.get("checks", 1)) + 1


# ---------------------------------------------------------------- inference
@dataclass
class ProbeResult:
    """The options chosen and why.

    ``source``: ``probe`` (timed now), ``cache`` (timed before, see ``times_ms``), ``fixed`` (the fixed rule:
    ``speed=fixed``), ``explicit`` (every option given), ``no input`` (no network or example to time),
    ``tiny input`` (fewer than :data:`MIN_PROBE_PIXELS` pixels). ``times_ms``: per candidate (its
    :func:`~deblur.speedups.describe_options` label) ``min_ms``, ``median_ms``, ``runs``, ``warmup_ms``;
    ``rejected``: candidates left out and why; ``key``: the cache key; ``seconds``: the probe's wall time;
    ``decisions``: per timed stage :meth:`deblur.speed_rule.Decision.as_dict` (the margin and spread of
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
        return out + _margins(self.decisions)

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


class ForwardTimer:
    """``timer(options)``: seconds of one forward call of ``net`` prepared with ``options`` on ``example``
    (synchronised on CUDA), the default timing function of :func:`resolve_speed`.

    The first call of each candidate prepares it (kept until :meth:`close`) and checks its output against
    the output of the first candidate called (the most exact one), when that one runs in fp32: a PSNR
    below the candidate's tolerance raises ValueError, and the probe leaves the candidate out.
    """

    def __init__(self, net: nn.Module, example: torch.Tensor, device: torch.device) -> None:
        self.net, self.device = net, torch.device(device)
        self.example = example.to(self.device)
        self._prepared: dict[InferenceOptions, tuple[nn.Module, torch.Tensor]] = {}
        self._reference: tuple[InferenceOptions, torch.Tensor] | None = None

    def __call__(self, options: InferenceOptions) -> float:
        first = options not in self._prepared
        if first:
            fast = prepare_for_inference(self.net, options, self.device)
            self._prepared[options] = (fast, to_input(self.example, options))
        fast, x = self._prepared[options]
        start = time.perf_counter()
        with inference_context(options, self.device):
            out = fast(x)
        _synchronize(self.device)
        elapsed = time.perf_counter() - start
        if first:
            self._check(options, out.float())
        return elapsed

    def _check(self, options: InferenceOptions, out: torch.Tensor) -> None:
        if self._reference is None:
            self._reference = (options, out)
            return
        ref_options, reference = self._reference
        if ref_options.precision != "fp32":
            return
        psnr = output_psnr(reference, out)
        if psnr < options.tolerance():
            label = describe_options(ref_options.as_dict())
            raise ValueError(
                f"output {psnr:.1f} dB from {label}, below its tolerance {options.tolerance()} dB"
            )

    def close(self) -> None:
        self._prepared.clear()
        self._reference = None


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


def check_speed_mode(mode: str) -> None:
    """Raise ValueError naming the ``speed`` key unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"speed must be one of {', '.join(MODES)}, got {mode!r}")


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
        cache: the cache file (None / True = :func:`default_cache_path`, False = none).
        timer: ``timer(options) -> seconds of one call``; default :class:`ForwardTimer` on ``net`` and the
            cropped ``example``.
        network_id: the network's identity in the cache key (e.g. :func:`config_identity` of its model
            config); default :func:`network_identity` of ``net``.
        probe_compile: also time ``compile=True`` when ``compile`` is None (minutes of compiling).
        budget_s, min_pixels, max_side: see :data:`BUDGET_S`, :data:`MIN_PROBE_PIXELS`,
            :data:`MAX_PROBE_SIDE`.
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
    key = _cache_key(
        "inference", device_name(device), _torch_version(), network_id or network_identity(net),
        size_class(example.shape), pinned,
    )  # fmt: skip
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
                candidates, time_once, budget_s=left, changes_results=_precision_changes(candidates[0])
            )
            chosen = trial.best
            if trial.decision is not None:
                decisions.append(trial.decision.as_dict(_label))
            for c, runs in trial.runs.items():
                times_ms[describe_options(c.as_dict())] = _figures(runs, trial.warmup.get(c))
            rejected.update({describe_options(c.as_dict()): why for c, why in trial.rejected.items()})
    finally:
        if own_timer:
            time_once.close()
    if not times_ms:  # every stage had a single candidate: nothing was timed
        return ProbeResult(chosen, "fixed")
    result = ProbeResult(
        chosen, "probe", times_ms, rejected, key, time.perf_counter() - started, decisions, _checks(entry)
    )
    log.info("speed probe on %s, input %s: chose %s", device, tuple(example.shape), result.describe())
    store_entry(path, key, {
        "kind": "inference", "device": device_name(device), "torch": _torch_version(),
        "network": network_id or network_identity(net), "size_class": size_class(example.shape),
        "shape": list(example.shape), "given": pinned, "options": chosen.as_dict(), "times_ms": times_ms,
        "rejected": rejected, "probe_seconds": result.seconds, "decisions": decisions,
        "checks": result.checks, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    })  # fmt: skip
    return result


def _precision_changes(exact: Any) -> Callable[[Any], bool]:
    """``changes_results`` of :func:`interleaved_probe`: a candidate in another precision than ``exact``
    (bf16 against fp32) changes results beyond the other options' tolerance."""
    return lambda candidate: candidate.precision != exact.precision


def _label(options: InferenceOptions) -> str:
    return describe_options(options.as_dict())


# ---------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainingOptions:
    """How to train: ``channels_last`` (train.yaml's key) and the Lightning ``trainer.precision``."""

    channels_last: bool = False
    precision: str = "32-true"

    def label(self) -> str:
        return f"{self.precision}{', channels_last' if self.channels_last else ''}"

    def as_dict(self) -> dict[str, bool | str]:
        return {"channels_last": self.channels_last, "precision": self.precision}


def fixed_training_options(device: torch.device) -> TrainingOptions:
    """The training fixed rule: ``32-true`` (fp32, results do not depend on bf16 units); channels_last on
    CPU and CUDA (fp32 in another summation order: the same loss and gradients up to rounding,
    ``tests/unit/test_training_layout.py``), NCHW elsewhere."""
    return TrainingOptions(channels_last=torch.device(device).type in ("cpu", "cuda"), precision="32-true")


@dataclass
class TrainingSpeed:
    """The training options chosen (``channels_last``, ``precision``) and why (as :class:`ProbeResult`)."""

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
        return out + _margins(self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.as_dict(), "source": self.source, "times_ms": self.times_ms,
            "rejected": self.rejected, "key": self.key, "seconds": self.seconds,
            "decisions": self.decisions, "checks": self.checks,
        }  # fmt: skip


def _margins(decisions: list[dict[str, Any]]) -> str:
    """``"; gains: fp32, channels_last +8.0 % +/- 2.1 % (taken), ..."``: the deciding comparisons."""

    def pct(v: float | None, sign: str = "+") -> str:
        return "?" if v is None else f"{100 * v:{sign}.1f} %"

    parts = [
        f"{c['candidate']} {pct(c['gain'])} +/- {pct(c['spread'], '')} vs {c['base']}"
        f" ({'taken' if c['passed'] else 'not taken'}{', marginal' if c['marginal'] else ''})"
        for d in decisions for c in d.get("deciding", [])
    ]  # fmt: skip
    return f"; gains: {'; '.join(parts)}" if parts else ""


def _autocast_dtype(precision: str) -> torch.dtype | None:
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


class TrainStepTimer:
    """``timer(options)``: seconds of one training step (forward with the loss's feature passes, loss,
    backward, Adam step; synchronised on CUDA) of a fresh :class:`~deblur.lit.restoration.RestorationModule`
    on a random (batch, 3, size, size) pair, under ``torch.autocast`` for mixed precisions. One module per
    memory format, built on first use (seeded; the caller's random state is restored by
    :func:`choose_training_speed`)."""

    def __init__(
        self, model_cfg: Mapping[str, Any], loss_cfg: Mapping[str, Any], device: torch.device, batch: int,
        size: int,
    ) -> None:  # fmt: skip
        self.model_cfg, self.device = dict(model_cfg), torch.device(device)
        self.loss_cfg = dict(loss_cfg)
        if "pretrained" in self.loss_cfg:
            self.loss_cfg["pretrained"] = False  # same cost; no weights to fetch for a timing
        self.batch, self.size = int(batch), int(size)
        self._modules: dict[bool, tuple[Any, torch.optim.Optimizer, torch.Tensor, torch.Tensor]] = {}

    def _module(self, channels_last: bool) -> tuple[Any, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
        if channels_last not in self._modules:
            from deblur.lit.restoration import RestorationModule

            torch.manual_seed(0)
            module = RestorationModule(
                model=self.model_cfg, loss=self.loss_cfg, optim={"name": "adam", "lr": 1e-4},
                channels_last=channels_last,
            ).to(self.device).train()  # fmt: skip
            optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
            blurry = torch.rand(self.batch, 3, self.size, self.size, device=self.device)
            batch = module.to_layout({"blurry": blurry, "sharp": blurry.flip(-1)})
            self._modules[channels_last] = (module, optimizer, batch["blurry"], batch["sharp"])
        return self._modules[channels_last]

    def __call__(self, options: TrainingOptions) -> float:
        module, optimizer, blurry, sharp = self._module(options.channels_last)
        dtype = _autocast_dtype(options.precision)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            _, total, _ = module.compute_loss(blurry, sharp)
        total.backward()
        optimizer.step()
        _synchronize(self.device)
        return time.perf_counter() - start

    def close(self) -> None:
        self._modules.clear()


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
        mode, cache, budget_s, min_pixels: as in :func:`resolve_speed`.
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
    key = _cache_key("training", device_name(device), _torch_version(), identity, size_class(shape), pinned)
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
                candidates, time_once, budget_s=budget_s, changes_results=_precision_changes(candidates[0])
            )
        finally:
            if own_timer:
                time_once.close()
    times_ms = {c.label(): _figures(runs, trial.warmup.get(c)) for c, runs in trial.runs.items()}
    rejected = {c.label(): why for c, why in trial.rejected.items()}
    decisions = [trial.decision.as_dict(TrainingOptions.label)] if trial.decision is not None else []
    result = TrainingSpeed(
        trial.best, "probe", times_ms, rejected, key, time.perf_counter() - started, decisions, _checks(entry)
    )
    log.info("training speed probe on %s, batch %s: chose %s", device, shape, result.describe())
    store_entry(path, key, {
        "kind": "training", "device": device_name(device), "torch": _torch_version(), "network": identity,
        "size_class": size_class(shape), "shape": list(shape), "given": pinned,
        "options": trial.best.as_dict(), "times_ms": times_ms, "rejected": rejected,
        "probe_seconds": result.seconds, "decisions": decisions, "checks": result.checks,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    })  # fmt: skip
    return result
