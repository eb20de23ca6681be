"""Frequency split block (FSB), FDDN paper Sec. 3.2, Table 1 (algorithm) and Table 2 (convolution parameters).

The FSB splits a feature map into a high-frequency part (kept at the input resolution) and a low-frequency
part (processed at half resolution, then brought back), with intra- and inter-frequency exchange as in
OctConv.

Reading choices (the paper's text and tables disagree in places):

* Sec. 3.2 says the low-frequency branch is down-sampled "by a convolution operation with the stride of 2",
  while Table 2 lists every convolution with stride 1 and no extra convolution. We make ``Conv_coarse2l``
  itself the stride-2 convolution: it is the only 3x3 convolution that sees the down-sampled branch, so this
  realises "Conv_coarse2l(down-sampling(F_in))" without adding a layer that Table 2 does not list.
* Table 1, step 4 down-samples "feature to high" before ``Conv_h2l``. A 1x1 stride-2 convolution would simply
  drop three pixels in four, so we average-pool instead (as OctConv does), to the exact size of the
  low branch; this adds no parameters.
* Table 2 prints ``Conv_h2l: LChannel -> LChannel``. Its input is the high branch (Table 1, step 4), so it
  must be ``HChannel -> LChannel``; the table row is a typo.
* Up-sampling (Table 1, step 4 and output) is bilinear interpolation to the exact size of the other operand
  (``size=``, not ``scale_factor``), so odd heights and widths work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deblur.models.channels import split_channels

LEAKY_SLOPE = 0.2
"""Negative slope of the leaky ReLUs of Table 1 (the paper gives no value; ours)."""


def fsb_channels(out_channels: int, ratio: float) -> tuple[int, int]:
    """Table 1, step 1: (HChannel, LChannel) = (round(ratio * out), out - HChannel).

    Raises ValueError naming ``ratio`` if it is outside (0, 1), or naming ``out_channels`` if either part
    would be empty.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"FSB ratio={ratio} must lie strictly between 0 and 1")
    high, low = split_channels(out_channels, ratio)
    if high < 1 or low < 1:
        raise ValueError(
            f"FSB out_channels={out_channels} with ratio={ratio} gives HChannel={high}, LChannel={low}; "
            "both must be >= 1"
        )
    return high, low


def _upsample_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class FrequencySplitBlock(nn.Module):
    """Split (N, C_in, H, W) into high (N, HChannel, H, W) and low (N, LChannel, H, W) frequency features.

    With ``H' = ceil(H / 2)`` and ``W' = ceil(W / 2)`` (Table 1; C_in = ``in_channels``):

    * step 2: ``feature_to_high = leaky(Conv_coarse2h(F_in))``, 3x3 stride 1, C_in -> HChannel, (H, W);
      ``feature_to_low = leaky(Conv_coarse2l(F_in))``, 3x3 stride 2, C_in -> LChannel, (H', W').
    * step 3: ``H2h = Conv_h2h(feature_to_high)``, 1x1, HChannel -> HChannel, (H, W);
      ``L2l = Conv_l2l(feature_to_low)``, 1x1, LChannel -> LChannel, (H', W').
    * step 4: ``h2l = leaky(Conv_h2l(avgpool(feature_to_high)))``, 1x1, HChannel -> LChannel, (H', W');
      ``L2h = leaky(Conv_l2h(up(feature_to_low)))``, 1x1, LChannel -> HChannel, (H, W).
    * output: ``F_h = H2h + L2h`` (N, HChannel, H, W); ``F_l = up(L2l + h2l)`` (N, LChannel, H, W).

    ``HChannel = round(ratio * out_channels)`` and ``LChannel = out_channels - HChannel``.
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"FSB in_channels={in_channels} must be >= 1")
        self.high_channels, self.low_channels = fsb_channels(out_channels, ratio)
        high, low = self.high_channels, self.low_channels
        self.ratio = ratio
        self.conv_coarse2h = nn.Conv2d(in_channels, high, 3, stride=1, padding=1)
        self.conv_coarse2l = nn.Conv2d(in_channels, low, 3, stride=2, padding=1)
        self.conv_h2h = nn.Conv2d(high, high, 1)
        self.conv_l2l = nn.Conv2d(low, low, 1)
        self.conv_h2l = nn.Conv2d(high, low, 1)
        self.conv_l2h = nn.Conv2d(low, high, 1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full_size = x.shape[-2:]
        feature_to_high = self.act(self.conv_coarse2h(x))
        feature_to_low = self.act(self.conv_coarse2l(x))
        low_size = feature_to_low.shape[-2:]

        high_to_high = self.conv_h2h(feature_to_high)
        low_to_low = self.conv_l2l(feature_to_low)

        high_down = F.adaptive_avg_pool2d(feature_to_high, tuple(low_size))
        high_to_low = self.act(self.conv_h2l(high_down))
        low_to_high = self.act(self.conv_l2h(_upsample_to(feature_to_low, full_size)))

        out_high = high_to_high + low_to_high
        out_low = _upsample_to(low_to_low + high_to_low, full_size)
        return out_high, out_low
