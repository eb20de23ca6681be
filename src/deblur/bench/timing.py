"""Wall-clock timing and peak memory for the benchmark.

* :func:`time_interleaved`: several calls timed in rounds, each round calling each of them once (the order
  rotated from round to round), after one warm-up call each: a ratio of two rows compares runs taken
  side by side, so a noisy neighbour slows both alike. Each row reports its minimum and median.
* :func:`time_call`: one call timed the same way (a row without a baseline).
* Rounds: ``repeats``; when a call takes longer than ``long_call_s``, ``long_repeats`` (at least 3) instead,
  so that the paper-size networks' rows are timed three times rather than once, at a bounded cost.
* :class:`PeakMemory`: the peak memory of a block: process resident set size on the CPU (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs``), ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """``seconds``: median seconds per timed call; ``min_seconds``: the fastest; ``runs``: how many calls
    were timed (``times``: each, in order); ``warmup_seconds``: the first call (None without warm-up);
    ``result``: what the last call returned; ``peak_mib`` / ``memory_kind``: the peak memory of the first
    call (:class:`PeakMemory`; only when asked for)."""

    seconds: float
    runs: int
    result: Any = None
    min_seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    warmup_seconds: float | None = None
    peak_mib: float | None = None
    memory_kind: str | None = None


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 5,
    long_call_s: float = 5.0,
    long_repeats: int = 3,
    memory: bool = False,
) -> dict[str, Timing]:
    """Time every ``calls[name]()`` (synchronised on CUDA), interleaved; returns ``{name: Timing}``.

    ``warmup`` untimed calls each (the first one with :class:`PeakMemory` when ``memory``; with
    ``warmup=0`` the first call is timed), then ``repeats`` rounds, or ``max(long_repeats, 3)`` rounds when
    any first call took longer than ``long_call_s`` seconds. Round r calls the functions starting from
    the r-th (rotating), so none always runs right after the same neighbour.
    """
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, Any] = {}
    first: dict[str, float] = {}
    memories: dict[str, tuple[float, str]] = {}
    for name in names:
        if memory:
            with PeakMemory(device) as peak:
                first[name], results[name] = _timed(calls[name], device)
            memories[name] = (peak.mib, peak.kind)
        else:
            first[name], results[name] = _timed(calls[name], device)
        if warmup <= 0:
            times[name].append(first[name])
        for _ in range(max(warmup, 1) - 1):
            _, results[name] = _timed(calls[name], device)
    long = max(first.values(), default=0.0) > long_call_s
    rounds = max(long_repeats, 3) if long else max(repeats, 1)
    rounds -= 1 if warmup <= 0 else 0  # the first call was a timed one
    for r in range(max(rounds, 0)):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, results[name] = _timed(calls[name], device)
            times[name].append(elapsed)
    out: dict[str, Timing] = {}
    for name in names:
        runs = times[name]
        peak_mib, kind = memories.get(name, (None, None))
        out[name] = Timing(
            seconds=statistics.median(runs), runs=len(runs), result=results[name], min_seconds=min(runs),
            times=runs, warmup_seconds=first[name] if warmup > 0 else None, peak_mib=peak_mib,
            memory_kind=kind,
        )  # fmt: skip
    return out


def time_call(
    fn: Callable[[], Any],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 5,
    long_call_s: float = 5.0,
    long_repeats: int = 3,
    memory: bool = False,
) -> Timing:
    """:func:`time_interleaved` of the one call ``fn``."""
    return time_interleaved({"call": fn}, device, warmup, repeats, long_call_s, long_repeats, memory)["call"]


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None where unknown."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_rss_bytes() -> int:
    """The process's resident set size now (Linux ``VmRSS``; 0 where unknown)."""
    return _status_bytes("VmRSS") or 0


def _reset_vm_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # Linux: reset the peak resident set size to the current one
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.bytes`` (and ``peak.kind``).

    CPU: the process's peak resident set size during the block (``kind="rss"``); where the peak cannot be
    reset (not Linux), the lifetime peak (``kind="rss_lifetime"``). CUDA: ``max_memory_allocated``
    (``kind="cuda_max_allocated"``).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0
        self.kind = ""
        self._resettable = False

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._resettable = _reset_vm_hwm()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.bytes, self.kind = torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
            return
        hwm = _status_bytes("VmHWM") if self._resettable else None
        if hwm is not None:
            self.bytes, self.kind = hwm, "rss"
        else:
            self.bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.kind = "rss_lifetime"

    @property
    def mib(self) -> float:
        return self.bytes / 2**20
