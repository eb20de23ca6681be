"""Pixel-shuffle up-sampling (Shi et al., CVPR 2016), the decoder's up-sampler in both papers."""

from __future__ import annotations

import torch
from torch import nn


class PixelShuffleUpsample(nn.Module):
    """3x3 conv (C_in -> C_out * s^2) then PixelShuffle(s).

    Shapes: (N, C_in, H, W) -> (N, C_out, s*H, s*W).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))
