"""Frequency distillation block (FDB), FDDN paper Sec. 3.3, Eq. 6-11 and Fig. 5b.

The FDB is an information-distillation block (IMDN / RFDB family) whose channel split is the frequency split
block (:class:`deblur.models.fddn.fsb.FrequencySplitBlock`): after each layer the high-frequency part is kept
for the final fusion and only the low-frequency part is refined further ("recursion on the low part").

Widths (ours, following IMDN's pattern, where every refinement conv restores the full width and the last conv
produces only a distilled-width output). With ``C = channels``, ``H = round(ratio * C)``, ``L = C - H``:

=======================  ==========================  ==============================
step                     layer                       shape (N, ., h, w)
=======================  ==========================  ==============================
Eq. 6                    L1: 3x3 C -> C, leaky        F_in (C) -> (C)
                         FSB1 (C -> C)               -> F_high1 (H), F_low1 (L)
Eq. 7                    L2: 3x3 L -> C, leaky        F_low1 (L) -> (C)
                         FSB2 (C -> C)               -> F_high2 (H), F_low2 (L)
Eq. 8                    L3: 3x3 L -> C, leaky        F_low2 (L) -> (C)
                         FSB3 (C -> C)               -> F_high3 (H), F_low3 (L)
Eq. 9                    L4: 3x3 L -> H, leaky        F_low3 (L) -> F_high4 (H)
Eq. 10                   concat                      F_high1..4 -> (4H)
Eq. 11                   CCA on the concat           (4H) -> (4H)
fusion (ours)            1x1 4H -> C                 (4H) -> (C)
residual (ours)          F_in + fused                (C)
=======================  ==========================  ==============================

Eq. 10 prints ``CAT(F_high4, F_high2, F_high3, F_high4)``; the text around it says the saved
F_high_n (n = 1, 2, 3, 4) are merged, so the first term is F_high1 (a typo in the equation).
Eq. 11 applies CCA to the concatenation, as IMDN does (``c5(cca(cat))``); the 1x1 fusion back to C channels
and the block's identity skip are not written in Eq. 11 but are needed to stack 16 blocks (IMDN and RFDB
both have them).
"""

from __future__ import annotations

import torch
from torch import nn

from deblur.models.cca import ContrastAwareChannelAttention
from deblur.models.fddn.fsb import LEAKY_SLOPE, FrequencySplitBlock, fsb_channels


class FrequencyDistillationBlock(nn.Module):
    """FDB (Eq. 6-11): (N, C, h, w) -> (N, C, h, w) for any h, w >= 1.

    ``channels`` is C; ``ratio`` is the FSB's high-frequency share (paper Sec. 4.2: 0.5);
    ``cca_reduction`` is the CCA bottleneck reduction (IMDN: 16).
    """

    def __init__(self, channels: int, ratio: float = 0.5, cca_reduction: int = 16) -> None:
        super().__init__()
        high, low = fsb_channels(channels, ratio)
        self.channels = channels
        self.high_channels, self.low_channels = high, low
        self.layer1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.layer2 = nn.Conv2d(low, channels, 3, padding=1)
        self.layer3 = nn.Conv2d(low, channels, 3, padding=1)
        self.layer4 = nn.Conv2d(low, high, 3, padding=1)
        self.split1 = FrequencySplitBlock(channels, channels, ratio)
        self.split2 = FrequencySplitBlock(channels, channels, ratio)
        self.split3 = FrequencySplitBlock(channels, channels, ratio)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.cca = ContrastAwareChannelAttention(4 * high, cca_reduction)
        self.fusion = nn.Conv2d(4 * high, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high1, low1 = self.split1(self.act(self.layer1(x)))  # Eq. 6
        high2, low2 = self.split2(self.act(self.layer2(low1)))  # Eq. 7
        high3, low3 = self.split3(self.act(self.layer3(low2)))  # Eq. 8
        high4 = self.act(self.layer4(low3))  # Eq. 9
        distilled = torch.cat([high1, high2, high3, high4], dim=1)  # Eq. 10 (F_high1..F_high4)
        return x + self.fusion(self.cca(distilled))  # Eq. 11, then 1x1 fusion and identity skip
