"""Residual channel attention block (RCAB, Zhang et al., ECCV 2018), used by MSFS-Net and FDDN.

MSFS-Net: latent refinement and decoder stages (paper Sec. 3.2). FDDN: decoder (paper Sec. 3.1).
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: global mean -> 1x1 (C -> C/r) -> ReLU -> 1x1 -> sigmoid.

    Shapes: (N, C, H, W) -> (N, C, H, W), each channel scaled by a weight in (0, 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"ChannelAttention: channels={channels} and reduction={reduction} must be >= 1")
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excite(self.squeeze(x))


class RCAB(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 -> channel attention, plus identity skip.

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 plus identity skip (the plain ResNet block without normalisation).

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
