"""Which device a command runs on: the one rule every command and the Python API share."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; otherwise the named device.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ... or a ``torch.device``.

    Returns:
        The ``torch.device``.

    Raises:
        ValueError: the name is not a device, or CUDA was asked for and is not available (naming ``device``).

    Examples:
        >>> select_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        chosen = device
    elif device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            chosen = torch.device(str(device))
        except RuntimeError as err:
            raise ValueError(f"device={device!r} is not a device (auto, cpu, cuda, cuda:1, ...)") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} was asked for but CUDA is not available (use device=auto or cpu)")
    return chosen


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says, else ``"cpu"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_name(device: torch.device) -> str:
    """What the timings depend on besides the software: the GPU's name, or the CPU model and the number
    of torch threads (``"AMD EPYC (cpu, 2 threads)"``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    if device.type == "cpu":
        return f"{cpu_name()} (cpu, {torch.get_num_threads()} threads)"
    return device.type


def runtime_record(device: str | torch.device) -> dict[str, str]:
    """What an output records about where it was computed: ``device_name`` (the GPU's name, or the CPU
    model with the torch thread count: :func:`device_name`) and the ``torch`` version."""
    return {"device_name": device_name(torch.device(device)), "torch": torch.__version__}
