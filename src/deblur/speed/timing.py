"""The one interleaved timing engine: candidates timed in rounds, each round calling every candidate once,
the order rotated from round to round. A ratio of two candidates then compares calls made side by side,
so a noisy neighbour slows both alike.

* :func:`synchronize`: wait for the device's queued work (CUDA), so that a call's time includes it.
* :func:`timed`: the seconds of one call, synchronised, and what it returned.
* :func:`time_rounds`: the engine. Warm-up calls of each candidate, then rounds as long as a *plan* names
  candidates for the next one. The speed probe's plan (:func:`deblur.speed.trial.interleaved_probe`)
  times rounds until its decision is clear of the noise; the benchmark's (:func:`time_interleaved`) a
  fixed number of rounds.
* :func:`time_interleaved` / :func:`time_call`: named calls (``deblur-bench``), each reported as a
  :class:`Timing` (median, min, each round's time, the warm-up, the last result; optionally the peak
  memory of the first call). Rounds: ``repeats``; when a first call takes longer than ``long_call_s``,
  ``long_repeats`` (at least 3) instead, so that the paper-size networks' rows are timed three times
  rather than once, at a bounded cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

C = TypeVar("C", bound=Hashable)


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has run the work queued on it (CUDA); nothing elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """``(seconds, result)`` of one call ``fn()``, synchronised on ``device``."""
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


@dataclass
class Rounds(Generic[C]):
    """What :func:`time_rounds` measured. ``first``: seconds of each candidate's first call (in the order
    called; a candidate whose first call failed is absent); ``table``: one ``{candidate: seconds}`` per
    round, in order (a candidate not timed in a round, or failing in it, is absent from that row);
    ``rejected``: candidate -> why its call failed (``"TypeName: first line"``)."""

    first: dict[C, float] = field(default_factory=dict)
    table: list[dict[C, float]] = field(default_factory=list)
    rejected: dict[C, str] = field(default_factory=dict)

    def runs(self, candidate: C) -> list[float]:
        """The candidate's timed calls, round by round."""
        return [row[candidate] for row in self.table if candidate in row]

    def timed_s(self) -> float:
        """Seconds of all timed calls so far (warm-ups excluded)."""
        return sum(sum(row.values()) for row in self.table)


def time_rounds(
    candidates: Sequence[C],
    time_once: Callable[[C], float],
    plan: Callable[[int, Rounds[C]], Sequence[C]],
    *,
    warmup: int = 1,
    reject_errors: bool = False,
) -> Rounds[C]:
    """Time ``candidates`` with ``time_once(candidate) -> seconds of one call``.

    First ``max(warmup, 1)`` calls of each candidate in turn; the first one's time is ``first`` (with
    ``warmup=0`` it is also the table's round 0). Then rounds: ``plan(r, record)`` names the candidates
    that round ``r`` (the index of the table row it adds) times, an empty list ends the timing; round r
    calls each named candidate that is not rejected once, starting from the (r mod n)-th, so that none
    always runs right after the same neighbour.

    ``reject_errors``: an exception in a call rejects the candidate (its reason recorded; it is not called
    again); otherwise the exception propagates.
    """
    record: Rounds[C] = Rounds()

    def call(candidate: C) -> float | None:
        try:
            return float(time_once(candidate))
        except Exception as err:  # noqa: BLE001 - a candidate that does not work here is not a choice
            if not reject_errors:
                raise
            record.rejected[candidate] = _reason(err)
            return None

    for candidate in candidates:
        for i in range(max(warmup, 1)):
            seconds = call(candidate)
            if seconds is None:
                break
            if i == 0:
                record.first[candidate] = seconds
    if warmup <= 0:  # the first calls were timed ones
        record.table.append(dict(record.first))
    while True:
        r = len(record.table)
        timing = [c for c in plan(r, record) if c not in record.rejected]
        if not timing:
            return record
        shift = r % len(timing)
        row: dict[C, float] = {}
        record.table.append(row)
        for candidate in timing[shift:] + timing[:shift]:
            seconds = call(candidate)
            if seconds is not None:
                row[candidate] = seconds


def _reason(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


# ---------------------------------------------------------------- named calls, a fixed number of rounds
@dataclass
class Timing:
    """``seconds``: median seconds per timed call; ``min_seconds``: the fastest; ``runs``: how many calls
    were timed (``times``: each, in order); ``warmup_seconds``: the first call (None without warm-up);
    ``result``: what the last call returned; ``peak_mib`` / ``memory_kind``: the peak memory of the first
    call (only when asked for)."""

    seconds: float
    runs: int
    result: Any = None
    min_seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    warmup_seconds: float | None = None
    peak_mib: float | None = None
    memory_kind: str | None = None


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 5,
    long_call_s: float = 5.0,
    long_repeats: int = 3,
    memory: Callable[[torch.device], Any] | None = None,
) -> dict[str, Timing]:
    """Time every ``calls[name]()`` (synchronised on CUDA) with :func:`time_rounds`; ``{name: Timing}``.

    ``warmup`` untimed calls each (with ``warmup=0`` the first call is timed), then rounds up to
    ``repeats`` in all, or ``max(long_repeats, 3)`` when any first call took longer than ``long_call_s``
    seconds. ``memory``: a context manager class, e.g. :class:`deblur.bench.memory.PeakMemory`, built
    with ``device`` around each first call; its ``mib`` and ``kind`` afterwards are the Timing's
    ``peak_mib`` and ``memory_kind``.
    """
    results: dict[str, Any] = {}
    memories: dict[str, tuple[float, str]] = {}

    def time_once(name: str) -> float:
        if memory is not None and name not in memories:
            with memory(device) as peak:
                seconds, results[name] = timed(calls[name], device)
            memories[name] = (peak.mib, peak.kind)
            return seconds
        seconds, results[name] = timed(calls[name], device)
        return seconds

    def plan(r: int, record: Rounds[str]) -> list[str]:
        long = max(record.first.values(), default=0.0) > long_call_s
        total = max(long_repeats, 3) if long else max(repeats, 1)
        return list(calls) if r < total else []

    record = time_rounds(list(calls), time_once, plan, warmup=warmup)
    out: dict[str, Timing] = {}
    for name in calls:
        runs = record.runs(name)
        peak_mib, kind = memories.get(name, (None, None))
        out[name] = Timing(
            seconds=statistics.median(runs), runs=len(runs), result=results[name], min_seconds=min(runs),
            times=runs, warmup_seconds=record.first[name] if warmup > 0 else None, peak_mib=peak_mib,
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
    memory: Callable[[torch.device], Any] | None = None,
) -> Timing:
    """:func:`time_interleaved` of the one call ``fn``."""
    return time_interleaved({"call": fn}, device, warmup, repeats, long_call_s, long_repeats, memory)["call"]
