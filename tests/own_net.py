"""A network from outside the suite's presets, for the ``_target_`` model config tests."""

from __future__ import annotations

import torch
from torch import nn


class ResidualNet(nn.Module):
    """(N, 3, H, W) -> (N, 3, H, W), any H x W: the input plus a few 3x3 convolutions (no ``multiple``)."""

    def __init__(self, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width={width} must be >= 1")
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def not_a_network(width: int = 8) -> int:
    return width
