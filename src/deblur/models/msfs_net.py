"""MSFS-Net: multi-scale frequency separation network (Zhang, Li et al., paper Fig. 3).

Wiring (C = width; scales full, 1/2, 1/4; k = 0, 1, 2 index the scales 1/2^k):

    encoder   stem 3x3 (3 -> C) + ReLU -> FSM_0 -> n residual blocks
              -> down_1 (3x3 stride 2 + LeakyReLU 0.2) = f_en_1/2 -> FSM_1 -> n residual blocks
              -> down_2 = f_en_1/4 -> FSM_2
    latent    m RCABs (C)
    decoder   FSM_de_2 (C -> C) = f_de_1/4
              -> CSFFM_theta(f_en_1/4, f_de_1/4) (2C) -> d RCABs (2C) -> pixel shuffle x2 (2C)
              -> FSM_de_1 (2C -> C) = f_de_1/2
              -> CSFFM_gamma(f_en_1/2, f_de_1/2) (2C) -> d RCABs (2C) -> pixel shuffle x2 (2C)
              -> FSM_de_0 (2C -> C) -> 3x3 conv (C -> 3) + blurry input (raw-image residual)

Frequency features for the losses (Sec. 3.5-3.6): the encoder FSMs give the negatives (Y^H) and the
low-frequency references (Y^L) at k = 0, 1, 2; the decoder FSMs give the anchors (Y^H, projected by a 1x1
conv to the encoder's C/2 channels where the decoder's is wider); re-running the same encoder on the output
(or, optionally, the target) image gives the positives and the low-frequency targets
(:meth:`MSFSNet.encode_frequencies`).

Defaults reproduce the published model's size (21.6 M parameters: C = 64, n = 8, m = 10, d = 30), without
the public code's defect of skipping the first encoder stage's residual blocks. Differences from the
public code: per-scale anchor projections instead of one shared one; no auxiliary 1/2 and 1/4 image heads
(the paper's loss, Eq. 7, uses only the full-size output); identity FSM shortcuts where widths match.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from deblur.models.csffm import CrossScaleFeatureFusion, SkipConcatenation
from deblur.models.fsm import FrequencyFeatures, FrequencySeparationModule, PlainConvModule
from deblur.models.padding import crop_to, pad_to_multiple
from deblur.models.rcab import RCAB, ResidualBlock
from deblur.models.upsample import PixelShuffleUpsample


class MSFSFeatures(NamedTuple):
    """Frequency features of one forward pass, lists indexed by scale k = 0 (full), 1 (1/2), 2 (1/4).

    enc_high[k]: (N, C/2, H/2^k, W/2^k)        negatives of Eq. 5 (blurry input through the encoder)
    enc_low[k]:  (N, C/2, H/2^(k+1), W/2^(k+1)) low-frequency references of Eq. 6
    dec_high[k]: (N, C/2, H/2^k, W/2^k)        anchors of Eq. 5 (decoder FSMs, projected to C/2)
    """

    enc_high: list[torch.Tensor]
    enc_low: list[torch.Tensor]
    dec_high: list[torch.Tensor]


class EncoderOutput(NamedTuple):
    """latent: (N, C, H/4, W/4); skips: [f_en_1/2 (N, C, H/2, W/2), f_en_1/4 (N, C, H/4, W/4)];
    high / low: the encoder FSMs' Y^H and Y^L per scale (None without FSMs)."""

    latent: torch.Tensor
    skips: list[torch.Tensor]
    high: list[torch.Tensor | None]
    low: list[torch.Tensor | None]


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"MSFSNet: {key} must be a non-negative integer, got {value!r}")


class DownSample(nn.Sequential):
    """3x3 conv with stride 2 + LeakyReLU(0.2) (paper Sec. 3.2): (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2))


class MSFSEncoder(nn.Module):
    """The encoder of Fig. 3, shared by the blurry input and the re-encoded output image.

    (N, 3, H, W) with H, W multiples of 8 -> :class:`EncoderOutput`.
    """

    def __init__(self, in_channels: int, width: int, blocks: int, use_fsm: bool, norm: str = "batch") -> None:
        super().__init__()
        freq = FrequencySeparationModule if use_fsm else PlainConvModule
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True))
        self.fsm = nn.ModuleList([freq(width, norm=norm) for _ in range(3)])
        self.blocks = nn.ModuleList(
            [nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)]) for _ in range(2)]
        )
        self.down = nn.ModuleList([DownSample(width) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        highs, lows, skips = [], [], []
        feat = self.stem(x)
        for k in range(3):
            if k > 0:
                feat = self.down[k - 1](feat)
                skips.append(feat)
            freq: FrequencyFeatures = self.fsm[k](feat)
            feat = freq.output
            highs.append(freq.high)
            lows.append(freq.low)
            if k < 2:
                feat = self.blocks[k](feat)
        return EncoderOutput(feat, skips, highs, lows)


class DecoderStage(nn.Sequential):
    """d RCABs at 2C channels then pixel-shuffle up-sampling: (N, 2C, H, W) -> (N, 2C, 2H, 2W)."""

    def __init__(self, channels: int, blocks: int, reduction: int) -> None:
        super().__init__(
            *[RCAB(channels, reduction) for _ in range(blocks)], PixelShuffleUpsample(channels, channels)
        )


class MSFSNet(nn.Module):
    """MSFS-Net. ``net(x)`` maps a blurry (N, 3, H, W) image in [0, 1] to the deblurred (N, 3, H, W) image,
    for any H and W (reflect-padded inside to a multiple of 8, cropped back).

    ``net(x, return_features=True)`` returns ``(image, MSFSFeatures | None)``; features are None when the
    FSMs are ablated (``use_fsm=False``), since there are then no frequency parts to constrain.

    Args:
        width: channels C at every scale (decoder stages work at 2C). Must be even and >= 2.
        encoder_blocks: residual blocks per encoder stage (n). latent_blocks: latent RCABs (m).
        decoder_blocks: RCABs per decoder stage (d). reduction: RCAB channel-attention reduction.
        use_fsm: False replaces every FSM with a 3x3 conv + ReLU (Table 4, "w/o FSM").
        use_csffm: False replaces each CSFFM by a plain skip concatenation (Table 4, "w/o CSFFM").
        csffm_init: initial theta (1/4 scale) and gamma (1/2 scale) of the CSFFMs.
        norm: normalisation inside the FSMs: "batch" (the public code) or "none" (small-batch runs).
    """

    multiple = 8

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        encoder_blocks: int = 8,
        latent_blocks: int = 10,
        decoder_blocks: int = 30,
        reduction: int = 16,
        use_fsm: bool = True,
        use_csffm: bool = True,
        csffm_init: tuple[float, float] = (-1.0, -0.6),
        norm: str = "batch",
    ) -> None:
        super().__init__()
        _check_positive(
            encoder_blocks=encoder_blocks, latent_blocks=latent_blocks, decoder_blocks=decoder_blocks
        )
        if not isinstance(width, int) or isinstance(width, bool) or width < 2 or width % 2:
            raise ValueError(f"MSFSNet: width must be an even integer >= 2, got {width!r}")
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"MSFSNet: reduction must be a positive integer, got {reduction!r}")
        if norm not in ("batch", "none"):
            raise ValueError(f"MSFSNet: norm must be 'batch' or 'none', got {norm!r}")
        if len(csffm_init) != 2:
            raise ValueError(f"MSFSNet: csffm_init needs two values (theta, gamma), got {csffm_init!r}")
        self.use_fsm = use_fsm
        self.in_channels = in_channels
        wide = 2 * width
        freq = FrequencySeparationModule if use_fsm else PlainConvModule

        self.encoder = MSFSEncoder(in_channels, width, encoder_blocks, use_fsm, norm)
        self.latent = nn.Sequential(*[RCAB(width, reduction) for _ in range(latent_blocks)])
        # index k = scale 1/2^k
        self.decoder_fsm = nn.ModuleList(
            [freq(wide, width, norm=norm), freq(wide, width, norm=norm), freq(width, width, norm=norm)]
        )
        if use_csffm:
            self.fusion = nn.ModuleList(
                [CrossScaleFeatureFusion(csffm_init[1]), CrossScaleFeatureFusion(csffm_init[0])]
            )
        else:
            self.fusion = nn.ModuleList([SkipConcatenation(), SkipConcatenation()])
        self.decoder = nn.ModuleList([DecoderStage(wide, decoder_blocks, reduction) for _ in range(2)])
        # decoder Y^H at k = 0, 1 has C channels (its FSM input is 2C); the encoder's has C/2
        self.anchor_projection = nn.ModuleList(
            [nn.Conv2d(width, width // 2, 1) for _ in range(2)] if use_fsm else []
        )
        self.head = nn.Conv2d(width, in_channels, 3, padding=1)

    def encode_frequencies(self, image: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run the shared encoder on an image (the output or the target) and return its (Y^H, Y^L) per scale.

        (N, 3, H, W) -> ([high_k (N, C/2, H/2^k, W/2^k)], [low_k (N, C/2, H/2^(k+1), W/2^(k+1))]),
        k = 0, 1, 2.
        """
        if not self.use_fsm:
            raise RuntimeError(
                "MSFSNet.encode_frequencies needs FSMs; this network was built with use_fsm=False"
            )
        padded, _ = pad_to_multiple(image, self.multiple)
        enc = self.encoder(padded)
        return list(enc.high), list(enc.low)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, MSFSFeatures | None]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MSFSNet expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        padded, size = pad_to_multiple(x, self.multiple)
        enc = self.encoder(padded)
        f_en_half, f_en_quarter = enc.skips

        dec_quarter = self.decoder_fsm[2](self.latent(enc.latent))
        feat = self.decoder[1](self.fusion[1](f_en_quarter, dec_quarter.output))
        dec_half = self.decoder_fsm[1](feat)
        feat = self.decoder[0](self.fusion[0](f_en_half, dec_half.output))
        dec_full = self.decoder_fsm[0](feat)
        image = crop_to(self.head(dec_full.output) + padded, size)
        if not return_features:
            return image
        if not self.use_fsm:
            return image, None
        anchors = [
            self.anchor_projection[0](dec_full.high),
            self.anchor_projection[1](dec_half.high),
            dec_quarter.high,
        ]
        return image, MSFSFeatures(list(enc.high), list(enc.low), anchors)
