"""Wall-clock timing and peak memory for the benchmark.

* :func:`time_call`: the median of repeated calls after warm-up; a call longer than ``long_call_s`` is
  timed once (its first call), so the paper-size networks fit a CPU benchmark run.
* :class:`PeakMemory`: the peak memory of a block: process resident set size on the CPU (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs``), ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """``seconds``: median seconds per call; ``runs``: how many calls were timed; ``result``: what the
    last call returned."""

    seconds: float
    runs: int
    result: Any = None


def time_call(
    fn: Callable[[], Any],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 5,
    long_call_s: float = 5.0,
) -> Timing:
    """Median wall time of ``fn()`` (synchronised on CUDA) over ``repeats`` calls after ``warmup`` calls."""
    times: list[float] = []
    for i in range(max(warmup, 0) + max(repeats, 1)):
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        elapsed = time.perf_counter() - start
        if i == 0 and elapsed > long_call_s:
            return Timing(elapsed, 1, result)  # a long call: allocation warm-up is small next to it
        if i >= warmup:
            times.append(elapsed)
    return Timing(statistics.median(times), len(times), result)


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
