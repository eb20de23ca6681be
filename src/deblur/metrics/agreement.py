"""How closely two tensors of the same images agree: :func:`output_psnr`, the check that a speed option or
a converted network keeps a network's outputs within a stated tolerance (e.g.
:data:`deblur.speed.options.TOLERANCES`), and the PSNR shown beside sample images during training.

Unlike :mod:`deblur.metrics.protocol` (the papers' 8-bit scores of saved images), nothing is rounded or
clamped here.
"""

from __future__ import annotations

import math

import torch


def output_psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of ``other`` against ``reference``, same shape (e.g. (N, 3, H, W)), images in [0, 1].

    Not clamped (a stricter check than on saved images); inf when the two are equal.
    """
    if reference.shape != other.shape:
        raise ValueError(f"output_psnr: shapes differ, {tuple(reference.shape)} vs {tuple(other.shape)}")
    mse = torch.mean((reference.detach().double() - other.detach().double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
