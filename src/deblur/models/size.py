"""A network's size as the papers' tables count it."""

from __future__ import annotations

from torch import nn


def size_mb(model_or_params: nn.Module | int) -> float:
    """fp32 size of a network's parameters in MB as the papers' tables count it: 4 bytes per parameter /
    2**20 (MiB, the ``torchsummary`` "Params size (MB)" convention).

    Examples:
        >>> round(size_mb(2_117_474), 2)    # FDDN's paper model: 8.08 MB (Table 3)
        8.08
    """
    params = model_or_params if isinstance(model_or_params, int) else sum(
        p.numel() for p in model_or_params.parameters()
    )
    return 4 * params / 2**20
