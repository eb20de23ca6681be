"""Small shared helpers of the library functions: setting checks that name their key, a mean that is NaN
for no values, and the one number format of the result tables."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def check_int(key: str, value: Any, minimum: int = 0, allow_none: bool = False) -> int | None:
    """``value`` if it is an integer ``>= minimum`` (or None with ``allow_none``); else ValueError.

    Examples:
        >>> check_int("num_workers", 2)
        2
        >>> check_int("limit", None, minimum=1, allow_none=True) is None
        True
        >>> check_int("num_workers", "abc")
        Traceback (most recent call last):
        ...
        ValueError: num_workers must be an integer >= 0, got 'abc'
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        more = " or null" if allow_none else ""
        raise ValueError(f"{key} must be an integer >= {minimum}{more}, got {value!r}")
    return value


def check_bool(key: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False``; else ValueError naming ``key``."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def mean(values: Iterable[float]) -> float:
    """The arithmetic mean as a Python float; NaN for no values (an infinite value makes it infinite)."""
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else math.nan


def format_number(value: float | None, digits: int) -> str:
    """``value`` with ``digits`` decimals; ``inf`` / ``nan`` spelled out; ``-`` for None (not measured).

    Examples:
        >>> format_number(31.4159, 2), format_number(float("inf"), 2), format_number(None, 4)
        ('31.42', 'inf', '-')
    """
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
