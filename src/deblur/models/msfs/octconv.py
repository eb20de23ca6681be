"""Octave convolution (Chen et al., ICCV 2019) as MSFS-Net uses it (paper Sec. 3.3, Eq. 1-2).

A feature with ``c`` channels is held as a high-frequency part X^H ((1 - alpha) c channels, full size) and
a low-frequency part X^L (alpha c channels, half size). With alpha = 0 there is no low part (``None``).

    Y^H = f(X^H; W^{H->H}) + up(f(X^L; W^{L->H}), 2)        (Eq. 1)
    Y^L = f(X^L; W^{L->L}) + f(pool(X^H, 2); W^{H->L})      (Eq. 2)

pool = 2x2 average pooling with stride 2; up = nearest-neighbour up-sampling by 2 (to the exact size of the
high part, so odd sizes work too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deblur.models.channels import split_channels

OctaveFeature = tuple[torch.Tensor, torch.Tensor | None]


def octave_channels(channels: int, alpha: float) -> tuple[int, int]:
    """(high, low) channel counts of an octave feature: low = round(alpha * channels) (Eq. 1-2's alpha is the
    low-frequency share; :func:`deblur.models.channels.split_channels`)."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"octave alpha must be in [0, 1), got {alpha}")
    low, high = split_channels(channels, alpha)
    return high, low


def octave_pool(x: torch.Tensor) -> torch.Tensor:
    """pool(X, 2) of Eq. 2: 2x2 average pooling, stride 2 (ceil mode, so odd sizes keep their last row)."""
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def octave_upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """up(X, 2) of Eq. 1: nearest-neighbour up-sampling to ``size`` (= 2x, cropped for odd sizes)."""
    return F.interpolate(x, size=size, mode="nearest")


class OctaveConv(nn.Module):
    """General octave convolution for any ``alpha_in`` and ``alpha_out`` in [0, 1) (Eq. 1-2).

    Input: ``(x_h, x_l)`` with x_h (N, C_in_h, H, W) and x_l (N, C_in_l, ceil(H/2), ceil(W/2)) or None when
    alpha_in = 0. Output: ``(y_h, y_l)`` with y_h (N, C_out_h, H, W) and y_l (N, C_out_l, ceil(H/2),
    ceil(W/2)) or None when alpha_out = 0. C_*_l = round(alpha * C), C_*_h = C - C_*_l.
    The four paths W^{H->H}, W^{H->L}, W^{L->H}, W^{L->L} exist only where both ends have channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        alpha_in: float = 0.5,
        alpha_out: float = 0.5,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"OctaveConv needs positive channels, got in={in_channels}, out={out_channels}")
        self.in_high, self.in_low = octave_channels(in_channels, alpha_in)
        self.out_high, self.out_low = octave_channels(out_channels, alpha_out)
        if self.in_high == 0 or self.out_high == 0:
            raise ValueError(
                f"OctaveConv: alpha_in={alpha_in}, alpha_out={alpha_out} leave no high-frequency channels "
                f"for in={in_channels}, out={out_channels}"
            )
        if alpha_in > 0 and self.in_low == 0:
            raise ValueError(f"OctaveConv: alpha_in={alpha_in} gives 0 low channels for in={in_channels}")
        if alpha_out > 0 and self.out_low == 0:
            raise ValueError(f"OctaveConv: alpha_out={alpha_out} gives 0 low channels for out={out_channels}")
        pad = kernel_size // 2

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            return nn.Conv2d(cin, cout, kernel_size, padding=pad, bias=bias) if cin and cout else None

        self.h2h = conv(self.in_high, self.out_high)
        self.h2l = conv(self.in_high, self.out_low)
        self.l2h = conv(self.in_low, self.out_high)
        self.l2l = conv(self.in_low, self.out_low)

    def forward(self, x: OctaveFeature | torch.Tensor) -> OctaveFeature:
        x_h, x_l = (x, None) if isinstance(x, torch.Tensor) else x
        if x_h.shape[1] != self.in_high or (x_l is None) != (self.in_low == 0):
            raise ValueError(
                f"OctaveConv expected {self.in_high} high and {self.in_low} low input channels, got "
                f"{x_h.shape[1]} and {0 if x_l is None else x_l.shape[1]}"
            )
        y_h = self.h2h(x_h)
        if self.l2h is not None:
            y_h = y_h + octave_upsample(self.l2h(x_l), y_h.shape[-2:])
        y_l = None
        if self.out_low:
            y_l = self.h2l(octave_pool(x_h))
            if self.l2l is not None:
                y_l = y_l + self.l2l(x_l)
        return y_h, y_l
