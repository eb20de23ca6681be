"""Peak memory for the benchmark.

* :class:`PeakMemory`: the peak memory of a block: process resident set size on the CPU (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs``), ``torch.cuda.max_memory_allocated`` on CUDA;
  ``memory=PeakMemory`` in :func:`deblur.speed.timing.time_interleaved` measures each call's first run.
* :func:`current_rss_bytes`: the process's resident set size now.

Timing (interleaved rounds, min and median) is :mod:`deblur.speed.timing`.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

from deblur.speed.timing import synchronize

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
