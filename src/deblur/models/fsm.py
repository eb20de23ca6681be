"""Frequency separation module (FSM), MSFS-Net paper Sec. 3.3 and Fig. 4(b).

    1x1 OctConv (alpha 0 -> 0.5)    split the input into high and low frequency parts
    3x3 OctConv (alpha 0.5 -> 0.5)  exchange and update them: its outputs are the exposed Y^H and Y^L
    1x1 OctConv (alpha 0.5 -> 0)    fuse them back into one feature
    + residual                      identity when C_in == C_out, else a 1x1 projection

Calibrated on the authors' public code: every OctConv is bias-free and each of its output branches is
followed by BatchNorm + ReLU; the inner width equals C_in (this reproduces the published 21.6 M parameters).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from deblur.models.octconv import OctaveConv, OctaveFeature


class FrequencyFeatures(NamedTuple):
    """The FSM's output and its exposed frequency parts.

    output: (N, C_out, H, W); high: Y^H (N, C_in/2, H, W); low: Y^L (N, C_in/2, ceil(H/2), ceil(W/2)).
    high and low are None for the plain-convolution replacement used by the ``no_fsm`` ablation.
    """

    output: torch.Tensor
    high: torch.Tensor | None
    low: torch.Tensor | None


class _OctaveConvBNReLU(nn.Module):
    """OctaveConv followed by BatchNorm + ReLU on each output branch."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, alpha_in: float, alpha_out: float
    ):
        super().__init__()
        self.conv = OctaveConv(in_channels, out_channels, kernel_size, alpha_in, alpha_out, bias=False)
        self.norm_high = nn.BatchNorm2d(self.conv.out_high)
        self.norm_low = nn.BatchNorm2d(self.conv.out_low) if self.conv.out_low else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: OctaveFeature | torch.Tensor) -> OctaveFeature:
        y_h, y_l = self.conv(x)
        y_h = self.act(self.norm_high(y_h))
        if y_l is not None:
            y_l = self.act(self.norm_low(y_l))
        return y_h, y_l


class FrequencySeparationModule(nn.Module):
    """FSM: (N, C_in, H, W) -> FrequencyFeatures(output (N, C_out, H, W), Y^H, Y^L).

    ``C_in`` must be even (the 0.5 split). See the module docstring for the structure.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if in_channels < 2 or in_channels % 2:
            raise ValueError(f"FrequencySeparationModule needs an even in_channels >= 2, got {in_channels}")
        self.split = _OctaveConvBNReLU(in_channels, in_channels, 1, alpha_in=0.0, alpha_out=0.5)
        self.exchange = _OctaveConvBNReLU(in_channels, in_channels, 3, alpha_in=0.5, alpha_out=0.5)
        self.fuse = _OctaveConvBNReLU(in_channels, out_channels, 1, alpha_in=0.5, alpha_out=0.0)
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> FrequencyFeatures:
        high, low = self.exchange(self.split(x))
        fused, _ = self.fuse((high, low))
        return FrequencyFeatures(fused + self.shortcut(x), high, low)


class PlainConvModule(nn.Module):
    """The ``no_fsm`` ablation's stand-in for an FSM (Table 4, row 1): 3x3 conv + ReLU, no frequency split.

    (N, C_in, H, W) -> FrequencyFeatures(output (N, C_out, H, W), None, None).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> FrequencyFeatures:
        return FrequencyFeatures(self.body(x), None, None)
