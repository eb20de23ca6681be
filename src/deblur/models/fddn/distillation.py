"""Latent blocks of the FDDN ablation study (paper Sec. 4.6, Table 5), and a factory over all latent blocks.

Table 5 rows and the block each FDDN ``variant`` stacks 16 times in the latent space:

=================  ============  =====  ===  ==================================================
variant            distillation  FSB    FDB  latent block
=================  ============  =====  ===  ==================================================
``full``           yes           yes    yes  :class:`~deblur.models.fddn.fdb.FrequencyDistillationBlock`
``no_distillation``  no          yes    --   :class:`FrequencySplitResidualBlock`
``no_fsb``         yes           no     --   :class:`ResidualFeatureDistillationBlock` (RFDB-style)
``no_fdb``         --            --     no   :class:`deblur.models.rcab.ResidualBlock`
=================  ============  =====  ===  ==================================================

The paper describes the ablation blocks in one sentence each; the layer choices below are ours and are made
so that each ablation removes exactly one ingredient of the FDB at the same width ``C``.
"""

from __future__ import annotations

import torch
from torch import nn

from deblur.models.cca import ContrastAwareChannelAttention
from deblur.models.fddn.config import LATENT_VARIANTS
from deblur.models.fddn.fdb import FrequencyDistillationBlock
from deblur.models.fddn.fsb import LEAKY_SLOPE, FrequencySplitBlock, fsb_channels
from deblur.models.rcab import ResidualBlock


class FrequencySplitResidualBlock(nn.Module):
    """Table 5, row 1 (no distillation, FSB kept): a residual block with an FSB after each conv.

    "We replaced the distillation block with resnet ... we added the frequency split block to the feature
    pixel level to achieve feature fusion" (Sec. 4.6). Same layers as the FDB but nothing is distilled: both
    FSB outputs are fused back to C channels and all of them go on to the next layer.

    Shapes, with C = ``channels`` and H + L = C the FSB split (any h, w):

    * 3 times: 3x3 C -> C, leaky; FSB (C -> C) -> F_h (N, H, h, w), F_l (N, L, h, w);
      concat (N, C, h, w); 1x1 C -> C, leaky.
    * 3x3 C -> C, then identity skip: (N, C, h, w) -> (N, C, h, w).
    """

    def __init__(self, channels: int, ratio: float = 0.5, num_splits: int = 3) -> None:
        super().__init__()
        fsb_channels(channels, ratio)
        if num_splits < 1:
            raise ValueError(f"FrequencySplitResidualBlock num_splits={num_splits} must be >= 1")
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(num_splits))
        self.splits = nn.ModuleList(FrequencySplitBlock(channels, channels, ratio) for _ in range(num_splits))
        self.fusions = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_splits))
        self.last_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for conv, split, fusion in zip(self.convs, self.splits, self.fusions, strict=True):
            high, low = split(self.act(conv(features)))
            features = self.act(fusion(torch.cat([high, low], dim=1)))
        return x + self.last_conv(features)


class ResidualFeatureDistillationBlock(nn.Module):
    """Table 5, row 2 (distillation kept, no FSB): an RFDB-style block (Liu et al., ECCV-W 2020).

    The channel split is a single 1x1 convolution instead of the FSB (Sec. 4.6). ESA is replaced by CCA and
    the fusion order is the FDB's, so the only difference to the FDB is the split. With C = ``channels`` and
    D = round(ratio * C) distilled channels, shapes (N, ., h, w):

    * 3 times: distilled_n = leaky(1x1 C -> D)(coarse) (D); coarse = leaky(3x3 C -> C (coarse) + coarse) (C).
    * distilled_4 = leaky(3x3 C -> D)(coarse) (D).
    * concat (4D) -> CCA -> 1x1 4D -> C -> plus the input: (N, C, h, w) -> (N, C, h, w).
    """

    def __init__(self, channels: int, ratio: float = 0.5, cca_reduction: int = 16) -> None:
        super().__init__()
        distilled, _ = fsb_channels(channels, ratio)
        self.distill_convs = nn.ModuleList(nn.Conv2d(channels, distilled, 1) for _ in range(3))
        self.refine_convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3))
        self.last_conv = nn.Conv2d(channels, distilled, 3, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.cca = ContrastAwareChannelAttention(4 * distilled, cca_reduction)
        self.fusion = nn.Conv2d(4 * distilled, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = x
        distilled = []
        for distill, refine in zip(self.distill_convs, self.refine_convs, strict=True):
            distilled.append(self.act(distill(coarse)))
            coarse = self.act(refine(coarse) + coarse)
        distilled.append(self.act(self.last_conv(coarse)))
        return x + self.fusion(self.cca(torch.cat(distilled, dim=1)))


def make_latent_block(variant: str, channels: int, ratio: float = 0.5, cca_reduction: int = 16) -> nn.Module:
    """One latent block of FDDN for ``variant`` in :data:`LATENT_VARIANTS`: (N, C, h, w) -> (N, C, h, w)."""
    if variant == "full":
        return FrequencyDistillationBlock(channels, ratio, cca_reduction)
    if variant == "no_distillation":
        return FrequencySplitResidualBlock(channels, ratio)
    if variant == "no_fsb":
        return ResidualFeatureDistillationBlock(channels, ratio, cca_reduction)
    if variant == "no_fdb":
        return ResidualBlock(channels)
    raise ValueError(f"unknown FDDN variant={variant!r}; choose one of {', '.join(LATENT_VARIANTS)}")
