"""Inception down-sampling block, FDDN's encoder stage (paper Sec. 3.1, Fig. 2).

Sec. 3.1: inception-style feature extraction (after Szegedy et al. [25]); the feature is then "resampled" by
a 3x3 stride-1 convolution that keeps its size, and down-sampled by a 2x2 max-pooling that halves height and
width. The paper says the pooling has "a stride of 1", which cannot halve the size; we use stride 2.

Branches (ours; Fig. 2 gives no widths), each ending in a leaky ReLU, B = out_channels // 4:

* 1x1 in -> out - 3B (takes the remainder when out_channels is not a multiple of 4);
* 1x1 in -> B, 3x3 B -> B;
* 1x1 in -> B, 3x3 B -> B, 3x3 B -> B (a 5x5 receptive field as two 3x3, as in Inception-v2);
* 3x3 max-pool (stride 1), 1x1 in -> B.
"""

from __future__ import annotations

import torch
from torch import nn

from deblur.models.fddn.fsb import LEAKY_SLOPE


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.LeakyReLU(LEAKY_SLOPE),
    ]


class InceptionDownsample(nn.Module):
    """Inception branches -> concat -> 3x3 resampling conv -> 2x2 max-pool, stride 2 (Sec. 3.1, Fig. 2).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H / 2), ceil(W / 2)); the pool uses
    ``ceil_mode=True`` so odd sizes keep their last row/column (FDDN pads its input to a multiple of 4, so
    inside the network the sizes are even).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"InceptionDownsample in_channels={in_channels} must be >= 1")
        if out_channels < 4:
            raise ValueError(
                f"InceptionDownsample out_channels={out_channels} must be >= 4 "
                "(four branches, >= 1 channel each)"
            )
        branch = out_channels // 4
        self.branch_1x1 = nn.Sequential(*_conv(in_channels, out_channels - 3 * branch, 1))
        self.branch_3x3 = nn.Sequential(*_conv(in_channels, branch, 1), *_conv(branch, branch, 3))
        self.branch_5x5 = nn.Sequential(
            *_conv(in_channels, branch, 1), *_conv(branch, branch, 3), *_conv(branch, branch, 3)
        )
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *_conv(in_channels, branch, 1))
        self.resample = nn.Sequential(*_conv(out_channels, out_channels, 3))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)]
        return self.pool(self.resample(torch.cat(branches, dim=1)))
