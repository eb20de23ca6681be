"""Contrast-aware channel attention (CCA, Hui et al., IMDN, ACM MM 2019), used in FDDN's FDB (Eq. 11).

Unlike squeeze-and-excitation (:class:`deblur.models.rcab.ChannelAttention`), which squeezes each channel
to its spatial mean, CCA squeezes each channel to its *contrast*: spatial standard deviation plus spatial
mean.
"""

from __future__ import annotations

import torch
from torch import nn

#: added to the variance inside the square root of the contrast's std: sqrt(var + eps). Without it the
#: gradient of the std is 0 * inf = NaN on a spatially constant map (e.g. any 1x1 map, where var is exactly
#: 0). The forward changes by at most sqrt(eps) = 1e-6 (at var = 0) and, in fp32, not at all once
#: var > ~1e-5. The gradient stays bounded: |d sqrt(var + eps) / d x_i| <= |x_i - mean| / (H W sqrt(var)).
CONTRAST_EPS = 1e-12


def channel_contrast(x: torch.Tensor) -> torch.Tensor:
    """Per-channel contrast of (N, C, H, W): population std over (H, W) plus mean over (H, W) -> (N, C, 1, 1).

    The std is the population (biased, divide by H*W) one, as in IMDN, so a 1x1 map has std 0, not NaN;
    it is computed as ``sqrt(var + CONTRAST_EPS)`` so its gradient is finite on a constant map.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    variance = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True)
    return (variance + CONTRAST_EPS).sqrt() + mean


class ChannelContrast(nn.Module):
    """The squeeze of CCA as a module, :func:`channel_contrast`: (N, C, H, W) -> (N, C, 1, 1).

    A separate (parameter-free) module so that :func:`deblur.models.tlc.convert_to_tlc` can swap it for a
    local contrast without touching the attention's parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_contrast(x)


class ContrastAwareChannelAttention(nn.Module):
    """contrast (std + mean per channel) -> 1x1 (C -> C/r) -> ReLU -> 1x1 (C/r -> C) -> sigmoid, times x.

    Shapes: (N, C, H, W) -> (N, C, H, W), each channel scaled by a weight in (0, 1).
    The hidden width is ``max(1, channels // reduction)``. The contrast is the submodule ``contrast``
    (:class:`ChannelContrast`; no parameters, so the state-dict keys are ``excite.*`` only).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(
                f"ContrastAwareChannelAttention: channels={channels} and reduction={reduction} must be >= 1"
            )
        hidden = max(1, channels // reduction)
        self.contrast = ChannelContrast()
        self.excite = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excite(self.contrast(x))
