"""Frequency separation module (FSM), MSFS-Net paper Sec. 3.3 and Fig. 4(b).

    1x1 OctConv (alpha 0 -> 0.5)    split the input into high and low frequency parts
    3x3 OctConv (alpha 0.5 -> 0.5)  exchange and update them: its outputs are the exposed Y^H and Y^L
    1x1 OctConv (alpha 0.5 -> 0)    fuse them back into one feature
    + residual                      identity when C_in == C_out, else a 1x1 projection; or, with
                                    ``conv_shortcut=True`` (the public code), a 1x1 conv with bias always

Calibrated on the authors' public code: every OctConv is bias-free and each of its output branches is
followed by BatchNorm + ReLU; the inner width equals C_in (this reproduces the published 21.6 M parameters).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from deblur.models.msfs.octconv import OctaveConv, OctaveFeature


class FrequencyFeatures(NamedTuple):
    """The FSM's output and its exposed frequency parts.

    output: (N, C_out, H, W); high: Y^H (N, C_in/2, H, W); low: Y^L (N, C_in/2, ceil(H/2), ceil(W/2)).
    high and low are None for the plain-convolution replacement used by the ``no_fsm`` ablation.
    """

    output: torch.Tensor
    high: torch.Tensor | None
    low: torch.Tensor | None


NORMS = ("batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"FSM norm must be one of {NORMS}, got {kind!r}")


class _OctaveConvBNReLU(nn.Module):
    """OctaveConv followed by normalisation (BatchNorm, or none) + ReLU on each output branch.

    Without normalisation the convolutions get biases instead.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        alpha_in: float,
        alpha_out: float,
        norm: str = "batch",
    ):
        super().__init__()
        bias = norm == "none"
        self.conv = OctaveConv(in_channels, out_channels, kernel_size, alpha_in, alpha_out, bias=bias)
        self.norm_high = _norm(norm, self.conv.out_high)
        self.norm_low = _norm(norm, self.conv.out_low) if self.conv.out_low else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: OctaveFeature | torch.Tensor) -> OctaveFeature:
        y_h, y_l = self.conv(x)
        y_h = self.act(self.norm_high(y_h))
        if y_l is not None:
            y_l = self.act(self.norm_low(y_l))
        return y_h, y_l


class FrequencySeparationModule(nn.Module):
    """FSM: (N, C_in, H, W) -> FrequencyFeatures(output (N, C_out, H, W), Y^H, Y^L).

    Args:
        in_channels: C_in, even (the 0.5 split); also the inner width.
        out_channels: C_out (default C_in).
        norm: ``"batch"`` (the public code) or ``"none"``: at the small batches of CPU runs (batch 4) the
            network learns to rely on per-batch statistics that BatchNorm's running averages do not
            reproduce at evaluation, so the ``msfs_small`` preset trains without it.
        conv_shortcut: False (ours): identity shortcut when C_in == C_out, a 1x1 conv projection otherwise.
            True (the public code's ``OctBlock``): a 1x1 conv with bias even when the widths are equal.

    Shape: (N, C_in, H, W) -> output (N, C_out, H, W), high (N, C_in/2, H, W),
    low (N, C_in/2, ceil(H/2), ceil(W/2)).

    Example::

        out, high, low = FrequencySeparationModule(16, 8)(torch.randn(1, 16, 32, 32))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        norm: str = "batch",
        conv_shortcut: bool = False,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if in_channels < 2 or in_channels % 2:
            raise ValueError(f"FrequencySeparationModule needs an even in_channels >= 2, got {in_channels}")
        self.split = _OctaveConvBNReLU(in_channels, in_channels, 1, 0.0, 0.5, norm=norm)
        self.exchange = _OctaveConvBNReLU(in_channels, in_channels, 3, 0.5, 0.5, norm=norm)
        self.fuse = _OctaveConvBNReLU(in_channels, out_channels, 1, 0.5, 0.0, norm=norm)
        if conv_shortcut or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> FrequencyFeatures:
        high, low = self.exchange(self.split(x))
        fused, _ = self.fuse((high, low))
        return FrequencyFeatures(fused + self.shortcut(x), high, low)


class PlainConvModule(nn.Module):
    """The ``no_fsm`` ablation's stand-in for an FSM (Table 4, row 1): 3x3 conv + ReLU, no frequency split.

    (N, C_in, H, W) -> FrequencyFeatures(output (N, C_out, H, W), None, None).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        norm: str = "batch",
        conv_shortcut: bool = False,
    ) -> None:
        super().__init__()  # norm, conv_shortcut: the FSM's signature; the plain conv uses neither
        out_channels = in_channels if out_channels is None else out_channels
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> FrequencyFeatures:
        return FrequencyFeatures(self.body(x), None, None)
