"""Splitting a channel count into two parts: the one rule both networks use.

OctConv's ``alpha`` (MSFS-Net Eq. 1-2) is the low-frequency share; FDDN's FSB ``ratio`` (Table 1, step 1)
is the high-frequency share. Both take ``round(fraction * channels)`` for the named share and the rest for
the other, so an odd count splits the same way whichever network asks.
"""

from __future__ import annotations


def split_channels(channels: int, fraction: float) -> tuple[int, int]:
    """``(round(fraction * channels), channels - round(fraction * channels))``.

    Args:
        channels: the channel count to split (>= 0).
        fraction: the first part's share, in [0, 1].

    Returns:
        ``(first, rest)``; Python's ``round`` (half to even) decides ties.

    Examples:
        >>> split_channels(64, 0.5)
        (32, 32)
        >>> split_channels(5, 0.5)
        (2, 3)
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a channel share must lie in [0, 1], got {fraction}")
    first = int(round(fraction * channels))
    return first, channels - first
