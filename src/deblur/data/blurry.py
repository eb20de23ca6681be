"""Which files are blurry frames rather than sharp ones: the benchmark layouts' blurry folder names, and
byte-identity of file pairs (a "prediction" or "ground truth" that is a copy of its partner).

Used by the datasets (ground truth is never blurry) and by scoring (only predictions are scored); it
imports nothing of the suite, so both can.
"""

from __future__ import annotations

import filecmp
import os
from collections.abc import Iterable
from pathlib import Path

#: folder names that hold blurry frames in the benchmark layouts and their flattened copies
BLURRY_FOLDERS = frozenset({"blur", "blur_gamma", "input", "blurry", "blurred"})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def all_identical(pairs: Iterable[tuple[Path, Path]]) -> bool:
    """True when every ``(a, b)`` pair is one file or two byte-identical files (and there is a pair)."""
    seen = False
    for a, b in pairs:
        if not _same_file(Path(a), Path(b)):
            return False
        seen = True
    return seen
