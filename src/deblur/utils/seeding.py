"""One rule for deriving independent seeds from several integers (a run seed, an epoch, an index, ...)."""

from __future__ import annotations

import numpy as np


def derive_seed(*values: int) -> int:
    """A 32-bit seed from ``values`` (each taken modulo 2**64) through ``numpy.random.SeedSequence``:
    different tuples give statistically independent seeds, the same tuple always the same seed."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(1)[0])
