"""x8 self-ensemble (the "+" rows of restoration papers): a restoration averaged over the 8 symmetries of
the square (the dihedral group D4: 4 rotations by 90 degrees, each with or without a horizontal flip).

* :func:`dihedral`: transform ``k`` (0..7) of an (..., H, W) tensor: flip the width axis when ``k >= 4``,
  then rotate counter-clockwise by ``90 * (k % 4)`` degrees. Odd ``k % 4`` swaps H and W.
* :func:`undo_dihedral`: its inverse, ``undo_dihedral(dihedral(x, k), k) == x`` exactly.
* :func:`self_ensemble`: ``mean_k undo_dihedral(fn(dihedral(x, k)), k)``, accumulated in float32.

``fn`` is the whole restoration of one transformed input (padding to the network's stride, tiling, TLC),
so each of the 8 runs pads and tiles its own (possibly H/W-swapped) shape; :func:`deblur.inference.restore`
uses it with ``self_ensemble=True``. The cost is 8 runs of ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: the number of transforms (4 rotations x optional flip)
TRANSFORMS = 8
_HW = (-2, -1)


def _check(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < TRANSFORMS:
        raise ValueError(f"the dihedral transform index must be an integer in [0, {TRANSFORMS}), got {k!r}")


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform ``k`` of (..., H, W) ``x``: width flipped when ``k >= 4``, then rotated by ``90 * (k % 4)``
    degrees counter-clockwise; the result is (..., W, H) for odd ``k % 4``, else (..., H, W)."""
    _check(k)
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k % 4, dims=_HW)


def undo_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`: rotate back by ``90 * (k % 4)`` degrees, then unflip if ``k >= 4``."""
    _check(k)
    y = torch.rot90(y, -(k % 4), dims=_HW)
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The mean over the 8 transforms of (..., H, W) ``x`` of ``fn``'s output, each turned back.

    ``fn`` maps an (..., h, w) tensor to an (..., C', h, w) one (any h, w: it gets both orientations).
    Returns a float32 (..., C', H, W) tensor; the outputs are summed in the order k = 0..7, then divided by 8.
    """
    total: torch.Tensor | None = None
    for k in range(TRANSFORMS):
        out = undo_dihedral(fn(dihedral(x, k)), k).float()
        total = out if total is None else total + out  # not in place: fn's output may be a view
    assert total is not None
    return total / TRANSFORMS
