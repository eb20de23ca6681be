"""NAFNet (Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022): the field's standard
deblurring baseline, a nonlinear-activation-free U-Net.

Structure (paper Fig. 3c and Sec. 3; module names are the authors', so their released state dicts load
strictly, see :mod:`deblur.models.nafnet.weights`)::

    input (N, C_in, H, W), zero-padded at the bottom / right to (H', W'), multiples of 2^len(encoder_blocks)
    intro: 3x3 conv C_in -> w
    encoder stage i (encoders.i: NAFBlocks at c = w * 2^i; downs.i: 2x2 conv stride 2, c -> 2c)
    middle_blks: NAFBlocks at w * 2^len(encoder_blocks)
    decoder stage i (ups.i: 1x1 conv c -> 2c without bias + PixelShuffle(2) -> c/2;
                     + the matching encoder stage's output, deepest first; decoders.i: NAFBlocks)
    ending: 3x3 conv w -> C_in, plus the padded input (global residual), cropped back to (H, W)

NAFBlock (Fig. 3c): ``y = x + beta * conv3(SCA(SimpleGate(conv2(conv1(LN(x))))))``, then
``out = y + gamma * conv5(SimpleGate(conv4(LN(y))))``; ``beta``, ``gamma`` (1, c, 1, 1) start at zero, so a
fresh network is the identity on its input.

Defaults: the GoPro width-32 configuration (width 32, encoder blocks [1, 1, 1, 28], 1 middle block, decoder
blocks [1, 1, 1, 1]; 17,111,907 parameters, the published count). The authors' ``DW_Expand`` and
``FFN_Expand`` (2) are fixed, and their dropout is left out (rate 0 in every released configuration).

The network pads itself with zeros as the authors' code does, and so has no ``multiple`` attribute: the
suite's inference (``deblur.inference.pad_and_run``) adds no reflect padding of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblur.config.rules import refuse
from deblur.models.nafnet.config import nafnet_rules

#: LayerNorm2d's epsilon (the authors' ``arch_util.LayerNorm2d``)
LAYER_NORM_EPS = 1e-6


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels at each pixel, with a per-channel affine ``weight``/``bias``.

    ``y = weight * (x - mean_c(x)) / sqrt(var_c(x) + eps) + bias`` with the population variance over C.
    Shapes: (N, C, H, W) -> (N, C, H, W); ``weight``, ``bias``: (C,).

    A channels_last input (channels innermost in memory) goes through the fused ``F.layer_norm`` over its
    last axis, a view of the same numbers; an NCHW input takes the explicit form, which is faster there
    (docs/benchmarks/nafnet-vs-authors-cpu-2core.md).
    """

    def __init__(self, channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
            return y.permute(0, 3, 1, 2)
        centred = x - x.mean(dim=1, keepdim=True)
        variance = centred.pow(2).mean(dim=1, keepdim=True)
        y = centred / (variance + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """The paper's replacement for a nonlinear activation (Eq. 3): split the channels in two halves, multiply.

    Shapes: (N, 2C, H, W) -> (N, C, H, W).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=1)
        return first * second


class SimplifiedChannelAttention(nn.Sequential):
    """Simplified channel attention (Eq. 4): ``x * conv1x1(mean_HW(x))``, no ReLU / sigmoid.

    Children ``0`` (the global average pool, which TLC makes local: :mod:`deblur.models.tlc`) and ``1``
    (the 1x1 conv C -> C with bias), named as the authors' ``sca`` Sequential.
    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self[1](self[0](x))


class NAFBlock(nn.Module):
    """The NAFNet block (paper Fig. 3c) at width ``c``: a gated depthwise-conv part and a gated FFN part,
    each a residual branch scaled by a per-channel layer scale (``beta``, ``gamma``, initialised to zero).

    Shapes: (N, c, H, W) -> (N, c, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c, hidden = channels, 2 * channels
        # declared in the authors' order (their state-dict key order); forward() gives the data flow
        self.conv1 = nn.Conv2d(c, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)  # depthwise
        self.conv3 = nn.Conv2d(c, c, 1)
        self.sca = SimplifiedChannelAttention(c)
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, hidden, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv3(self.sca(self.sg(self.conv2(self.conv1(self.norm1(x))))))
        y = x + branch * self.beta
        branch = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + branch * self.gamma


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(count)))


def _up(channels: int) -> nn.Sequential:
    """1x1 conv c -> 2c without bias, then PixelShuffle(2): (N, c, h, w) -> (N, c / 2, 2h, 2w)."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2))


class NAFNet(nn.Module):
    """NAFNet: blurry (N, C_in, H, W) -> restored (N, C_in, H, W), any H x W (module docstring).

    Args:
        in_channels: image channels (the authors' ``img_channel``).
        width: channels after ``intro``; stage i runs at ``width * 2**i``.
        encoder_blocks: NAFBlocks per encoder stage (``enc_blk_nums``); its length is the number of 2x
            down-samplings, so inputs are padded to a multiple of ``2**len(encoder_blocks)``.
        middle_blocks: NAFBlocks at the lowest resolution (``middle_blk_num``).
        decoder_blocks: NAFBlocks per decoder stage, deepest first (``dec_blk_nums``); as long as
            ``encoder_blocks``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 32,
        encoder_blocks: Sequence[int] = (1, 1, 1, 28),
        middle_blocks: int = 1,
        decoder_blocks: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        refuse(nafnet_rules({
            "in_channels": in_channels, "width": width, "encoder_blocks": encoder_blocks,
            "middle_blocks": middle_blocks, "decoder_blocks": decoder_blocks,
        }))  # fmt: skip
        encoder, decoder = list(encoder_blocks), list(decoder_blocks)
        middle = middle_blocks
        self.in_channels = in_channels
        #: inputs are zero-padded to a multiple of this (one 2x down-sampling per encoder stage)
        self.pad_multiple = 2 ** len(encoder)
        # declared in the authors' order, so that the state dicts list their keys in the same order
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, in_channels, 3, padding=1)
        stages = len(encoder)
        at = [width * 2**i for i in range(stages + 1)]  # channels of stage i; at[stages]: the middle
        self.encoders = nn.ModuleList(_blocks(at[i], n) for i, n in enumerate(encoder))
        # decoder stage i runs at the width of encoder stage (stages - 1 - i)
        self.decoders = nn.ModuleList(_blocks(at[stages - 1 - i], n) for i, n in enumerate(decoder))
        self.middle_blks = _blocks(at[stages], middle)
        self.ups = nn.ModuleList(_up(at[stages - i]) for i in range(stages))
        self.downs = nn.ModuleList(nn.Conv2d(at[i], at[i + 1], 2, stride=2) for i in range(stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        padded = F.pad(x, (0, (-width) % self.pad_multiple, 0, (-height) % self.pad_multiple))
        features = self.intro(padded)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            features = encoder(features)
            skips.append(features)
            features = down(features)
        features = self.middle_blks(features)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            features = decoder(up(features) + skip)
        out = self.ending(features) + padded
        return out[..., :height, :width]
