"""MSFS-Net: multi-scale frequency separation network (Zhang, Li et al., paper Fig. 3).

Wiring, top-down as in Fig. 3 (C = width; the module's attribute name on the right):

    encoder   stem 3x3 conv (3 -> C) + ReLU                               encoder.stem
              FSM at full scale                                           encoder.fsm_full
              n residual blocks                                           encoder.blocks_full
              3x3 conv, stride 2 + LeakyReLU(0.2) = f_en_1/2              encoder.down_half
              FSM at 1/2 scale                                            encoder.fsm_half
              n residual blocks                                           encoder.blocks_half
              3x3 conv, stride 2 + LeakyReLU(0.2) = f_en_1/4              encoder.down_quarter
              FSM at 1/4 scale                                            encoder.fsm_quarter
    latent    m RCABs (C)                                                 latent
    decoder   FSM (C -> C) = f_de_1/4                                     decoder_fsm_quarter
              CSFFM_theta(f_en_1/4, f_de_1/4) (2C)                        fusion_quarter
              d RCABs (2C) + pixel shuffle x2 (2C), 1/4 -> 1/2 scale      decoder_quarter
              FSM (2C -> C) = f_de_1/2                                    decoder_fsm_half
              CSFFM_gamma(f_en_1/2, f_de_1/2) (2C)                        fusion_half
              d RCABs (2C) + pixel shuffle x2 (2C), 1/2 -> full scale     decoder_half
              FSM (2C -> C)                                               decoder_fsm_full
              conv (C -> 3) + blurry input (raw-image residual)           conv_last

Ablations (Table 4): ``use_fsm=False`` puts a plain 3x3 conv + ReLU in every FSM's place; ``use_csffm=False``
makes ``fusion_*`` a plain skip concatenation ``[f_de, f_en]``; ``use_skip=False`` makes them ``[f_de, 0]``,
no encoder-to-decoder connection at all (the two readings of "w/o CSFFM", docs/models.md).

Frequency features for the losses (Sec. 3.5-3.6): the encoder FSMs give the negatives (Y^H) and the
low-frequency references (Y^L) at every scale; the decoder FSMs give the anchors (Y^H, projected by a 1x1
conv to the encoder's C/2 channels where the decoder's is wider: ``anchor_projection_full`` /
``anchor_projection_half``, or one shared ``anchor_projection``); re-running the same encoder on the
output (or, optionally, the target) image gives the positives and the low-frequency targets
(:meth:`MSFSNet.encode_frequencies`).

Defaults (``model=msfs``) reproduce the published model's size (21.6 M parameters: C = 64, n = 8, m = 10,
d = 30) in our corrected layout. Options reproduce the authors' public layout exactly, so that their
released weights load (``model=msfs_public``, :mod:`deblur.models.msfs.public`); docs/models.md lists the
differences and why each exists.

State-dict keys were renamed from index-based names (``decoder_fsm.2``, ``fusion.1``, ``head`` ...) to the
names above; :func:`upgrade_state_dict` maps the old names, and ``load_state_dict`` applies it by itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deblur.config.rules import refuse
from deblur.models.legacy_keys import register_upgrade, rename_keys
from deblur.models.msfs.config import msfs_rules
from deblur.models.msfs.csffm import CrossScaleFeatureFusion, NoSkip, SkipConcatenation
from deblur.models.msfs.fsm import FrequencyFeatures, FrequencySeparationModule, PlainConvModule
from deblur.models.norm_stats import (
    BatchNormStats,
    batchnorm_layers,
    record_batchnorm_stats,
    use_batchnorm_stats,
)
from deblur.models.padding import crop_to, pad_to_multiple
from deblur.models.rcab import RCAB, ResidualBlock
from deblur.models.upsample import PixelShuffleUpsample


class MSFSFeatures(NamedTuple):
    """Frequency features of one forward pass, lists indexed by scale k = 0 (full), 1 (1/2), 2 (1/4).

    enc_high[k]: (N, C/2, H/2^k, W/2^k)        negatives of Eq. 5 (blurry input through the encoder)
    enc_low[k]:  (N, C/2, H/2^(k+1), W/2^(k+1)) low-frequency references of Eq. 6
    dec_high[k]: (N, C/2, H/2^k, W/2^k)        anchors of Eq. 5 (decoder FSMs, projected to C/2)
    encoder_norm_stats: the batch statistics every encoder BatchNorm normalised the blurry input with
        (training mode only; None in eval mode or without BatchNorm), for
        ``encode_frequencies(image, norm_stats=...)``
    """

    enc_high: list[torch.Tensor]
    enc_low: list[torch.Tensor]
    dec_high: list[torch.Tensor]
    encoder_norm_stats: BatchNormStats | None = None


class AuxImages(NamedTuple):
    """The public code's auxiliary outputs: 1x1 conv of a decoder FSM output + nearest-down-sampled input.

    half: (N, 3, ceil(H/2), ceil(W/2)); quarter: (N, 3, ceil(H/4), ceil(W/4)).
    """

    half: torch.Tensor
    quarter: torch.Tensor


class EncoderOutput(NamedTuple):
    """latent: (N, C, H/4, W/4); skip_half = f_en_1/2 (N, C, H/2, W/2) and skip_quarter = f_en_1/4
    (N, C, H/4, W/4), the down-samplers' outputs; high / low: the encoder FSMs' Y^H and Y^L, full scale
    first (None without FSMs)."""

    latent: torch.Tensor
    skip_half: torch.Tensor
    skip_quarter: torch.Tensor
    high: list[torch.Tensor | None]
    low: list[torch.Tensor | None]


class DownSample(nn.Sequential):
    """3x3 conv with stride 2 + LeakyReLU(0.2) (paper Sec. 3.2): (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2))


def _residual_blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])


class MSFSEncoder(nn.Module):
    """The encoder of Fig. 3, shared by the blurry input and the re-encoded output (or target) image.

    Args:
        in_channels: image channels. width: C. blocks: residual blocks per stage (n).
        use_fsm: False replaces the FSMs by plain 3x3 conv + ReLU (ablation).
        norm, conv_shortcut: passed to every FSM (:class:`FrequencySeparationModule`).

    Shape: (N, 3, H, W) with H, W multiples of 8 -> :class:`EncoderOutput`.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        blocks: int,
        use_fsm: bool,
        norm: str = "batch",
        conv_shortcut: bool = False,
    ) -> None:
        super().__init__()
        freq = FrequencySeparationModule if use_fsm else PlainConvModule
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True))
        # registered by kind, full scale first: the parameter order of the earlier index-based version,
        # which the optimizer state of a resumed run depends on
        self.fsm_full = freq(width, norm=norm, conv_shortcut=conv_shortcut)
        self.fsm_half = freq(width, norm=norm, conv_shortcut=conv_shortcut)
        self.fsm_quarter = freq(width, norm=norm, conv_shortcut=conv_shortcut)
        self.blocks_full = _residual_blocks(width, blocks)
        self.blocks_half = _residual_blocks(width, blocks)
        self.down_half = DownSample(width)
        self.down_quarter = DownSample(width)

    def forward(self, x: torch.Tensor, skip_first_blocks: bool = False) -> EncoderOutput:
        """``skip_first_blocks=True`` leaves out ``blocks_full`` (the public code's blurry-input path)."""
        full: FrequencyFeatures = self.fsm_full(self.stem(x))
        feat = full.output if skip_first_blocks else self.blocks_full(full.output)
        skip_half = self.down_half(feat)
        half: FrequencyFeatures = self.fsm_half(skip_half)
        skip_quarter = self.down_quarter(self.blocks_half(half.output))
        quarter: FrequencyFeatures = self.fsm_quarter(skip_quarter)
        return EncoderOutput(
            latent=quarter.output,
            skip_half=skip_half,
            skip_quarter=skip_quarter,
            high=[full.high, half.high, quarter.high],
            low=[full.low, half.low, quarter.low],
        )


class DecoderStage(nn.Module):
    """d RCABs at 2C channels (``blocks``) then pixel-shuffle up-sampling by 2 (``up``).

    Shape: (N, 2C, H, W) -> (N, 2C, 2H, 2W).
    """

    def __init__(self, channels: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[RCAB(channels, reduction) for _ in range(blocks)])
        self.up = PixelShuffleUpsample(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(x))


# ---------------------------------------------------------------- state-dict names of earlier versions
#: (old key prefix as a regex, new prefix): the index-based names before the named stages
_LEGACY_PREFIXES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(old), new)
    for old, new in [
        (r"encoder\.fsm\.0\.", "encoder.fsm_full."),
        (r"encoder\.fsm\.1\.", "encoder.fsm_half."),
        (r"encoder\.fsm\.2\.", "encoder.fsm_quarter."),
        (r"encoder\.blocks\.0\.", "encoder.blocks_full."),
        (r"encoder\.blocks\.1\.", "encoder.blocks_half."),
        (r"encoder\.down\.0\.", "encoder.down_half."),
        (r"encoder\.down\.1\.", "encoder.down_quarter."),
        (r"decoder_fsm\.0\.", "decoder_fsm_full."),
        (r"decoder_fsm\.1\.", "decoder_fsm_half."),
        (r"decoder_fsm\.2\.", "decoder_fsm_quarter."),
        (r"fusion\.0\.", "fusion_half."),
        (r"fusion\.1\.", "fusion_quarter."),
        # a decoder stage was one Sequential: RCABs (keys ``i.body.*``), then the up-sampler (``d.conv.*``)
        (r"decoder\.0\.(\d+)\.body\.", r"decoder_half.blocks.\1.body."),
        (r"decoder\.1\.(\d+)\.body\.", r"decoder_quarter.blocks.\1.body."),
        (r"decoder\.0\.\d+\.conv\.", "decoder_half.up.conv."),
        (r"decoder\.1\.\d+\.conv\.", "decoder_quarter.up.conv."),
        (r"anchor_projection\.0\.", "anchor_projection_full."),
        (r"anchor_projection\.1\.", "anchor_projection_half."),
        (r"head\.", "conv_last."),
    ]
]


def _upgrade_key(key: str) -> str:
    for pattern, new in _LEGACY_PREFIXES:
        match = pattern.match(key)
        if match:
            return match.expand(new) + key[match.end() :]
    return key


def upgrade_state_dict(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Rename the keys of an :class:`MSFSNet` state dict written before the named stages.

    ``encoder.fsm.0`` -> ``encoder.fsm_full``, ``decoder_fsm.2`` -> ``decoder_fsm_quarter``, ``fusion.1`` ->
    ``fusion_quarter``, ``decoder.1.<i>`` -> ``decoder_quarter.blocks.<i>`` / ``decoder_quarter.up``,
    ``anchor_projection.0`` -> ``anchor_projection_full``, ``head`` -> ``conv_last``, and so on. Keys in the
    current naming (and keys not starting with ``prefix``) pass unchanged, so upgrading twice is harmless.

    Args:
        state: the state dict (not modified).
        prefix: the network's key prefix inside ``state`` (e.g. ``"net."`` in a Lightning checkpoint).

    Returns:
        A new dict in the same order, with the current names.

    Example::

        net.load_state_dict(upgrade_state_dict(torch.load(path)))  # load_state_dict also does it itself
    """
    return rename_keys(state, prefix, _upgrade_key)


class MSFSNet(nn.Module):
    """MSFS-Net: a blurry image in [0, 1] -> the deblurred image, any H and W (reflect-padded inside to a
    multiple of 8, cropped back).

    Args:
        in_channels: image channels (3).
        width: channels C at every scale (decoder stages work at 2C). Must be even and >= 2.
        encoder_blocks: residual blocks per encoder stage (n). latent_blocks: latent RCABs (m).
        decoder_blocks: RCABs per decoder stage (d). reduction: RCAB channel-attention reduction.
        use_fsm: False replaces every FSM with a 3x3 conv + ReLU (Table 4, "w/o FSM").
        use_csffm: False replaces each CSFFM by a plain skip concatenation (Table 4, "w/o CSFFM", first
            reading: the same two features, without the learnable mix).
        use_skip: False removes the encoder-to-decoder connection altogether (Table 4, "w/o CSFFM", second
            reading): each decoder stage gets ``[f_de, 0]`` (:class:`~deblur.models.msfs.csffm.NoSkip`), the
            encoder reaches the decoder only through the latent path. ``use_csffm`` is then ignored.
        csffm_init: initial theta (1/4 scale) and gamma (1/2 scale) of the CSFFMs (Eq. 3-4).
        norm: normalisation inside the FSMs: "batch" (the public code) or "none" (small-batch runs).
        fsm_conv_shortcut: every FSM gets a 1x1 conv shortcut with bias, also where C_in == C_out (public
            layout); False: identity there.
        concat_encoder_first: the decoder stages take ``[f_en, mix]`` (public layout) instead of
            ``[mix, f_en]``.
        out_kernel_size: kernel of ``conv_last`` (3 ours, 1 public).
        shared_anchor_projection: one 1x1 conv projects both the full and 1/2-scale anchors (public
            layout); False: one per scale.
        aux_outputs: build the public code's 1/2 and 1/4-scale image heads (``aux_conv_half``,
            ``aux_conv_quarter``, 1x1 conv C -> 3). They are off the inference path: only
            ``forward(..., return_aux=True)`` computes them.
        skip_first_encoder_blocks: the public code's defect, which its released weights were trained with:
            the blurry input bypasses ``encoder.blocks_full``; :meth:`encode_frequencies` still uses them.

    Shape:
        ``net(x)``: (N, 3, H, W) -> (N, 3, H, W).
        ``net(x, return_features=True)`` -> ``(image, MSFSFeatures | None)``; features are None when the
        FSMs are ablated (``use_fsm=False``), since there are then no frequency parts to constrain.
        ``net(x, return_aux=True)`` -> ``(image, AuxImages)``; with both flags ``(image, features, aux)``.

    Example::

        net = MSFSNet(width=16, encoder_blocks=1, latent_blocks=1, decoder_blocks=1)
        image, features = net(torch.rand(1, 3, 64, 96), return_features=True)
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
        use_skip: bool = True,
        csffm_init: tuple[float, float] = (-1.0, -0.6),
        norm: str = "batch",
        fsm_conv_shortcut: bool = False,
        concat_encoder_first: bool = False,
        out_kernel_size: int = 3,
        shared_anchor_projection: bool = False,
        aux_outputs: bool = False,
        skip_first_encoder_blocks: bool = False,
    ) -> None:
        super().__init__()
        refuse(msfs_rules({
            "in_channels": in_channels, "width": width, "encoder_blocks": encoder_blocks,
            "latent_blocks": latent_blocks, "decoder_blocks": decoder_blocks, "reduction": reduction,
            "norm": norm, "csffm_init": csffm_init, "out_kernel_size": out_kernel_size,
        }))  # fmt: skip
        self.use_fsm = use_fsm
        self.use_skip = use_skip
        self.in_channels = in_channels
        self.shared_anchor_projection = shared_anchor_projection
        self.skip_first_encoder_blocks = skip_first_encoder_blocks
        wide = 2 * width
        freq = FrequencySeparationModule if use_fsm else PlainConvModule
        fsm_args: dict[str, Any] = {"norm": norm, "conv_shortcut": fsm_conv_shortcut}
        theta, gamma = csffm_init

        self.encoder = MSFSEncoder(in_channels, width, encoder_blocks, use_fsm, norm, fsm_conv_shortcut)
        self.latent = nn.Sequential(*[RCAB(width, reduction) for _ in range(latent_blocks)])
        # Registered by kind, full scale first (the parameter order of the earlier index-based version, which
        # the optimizer state of a resumed run depends on); forward() runs them top-down.
        self.decoder_fsm_full = freq(wide, width, **fsm_args)
        self.decoder_fsm_half = freq(wide, width, **fsm_args)
        self.decoder_fsm_quarter = freq(width, width, **fsm_args)
        if not use_skip:
            self.fusion_half: nn.Module = NoSkip(concat_encoder_first)
            self.fusion_quarter: nn.Module = NoSkip(concat_encoder_first)
        elif use_csffm:
            self.fusion_half = CrossScaleFeatureFusion(gamma, concat_encoder_first)
            self.fusion_quarter: nn.Module = CrossScaleFeatureFusion(theta, concat_encoder_first)
        else:
            self.fusion_half = SkipConcatenation(concat_encoder_first)
            self.fusion_quarter = SkipConcatenation(concat_encoder_first)
        self.decoder_half = DecoderStage(wide, decoder_blocks, reduction)
        self.decoder_quarter = DecoderStage(wide, decoder_blocks, reduction)
        # decoder Y^H at full and 1/2 scale has C channels (its FSM input is 2C); the encoder's has C/2
        if use_fsm and shared_anchor_projection:
            self.anchor_projection = nn.Conv2d(width, width // 2, 1)
        elif use_fsm:
            self.anchor_projection_full = nn.Conv2d(width, width // 2, 1)
            self.anchor_projection_half = nn.Conv2d(width, width // 2, 1)
        self.conv_last = nn.Conv2d(width, in_channels, out_kernel_size, padding=out_kernel_size // 2)
        self.aux_conv_half = nn.Conv2d(width, in_channels, 1) if aux_outputs else None
        self.aux_conv_quarter = nn.Conv2d(width, in_channels, 1) if aux_outputs else None
        register_upgrade(self, _upgrade_key)

    upgrade_state_dict = staticmethod(upgrade_state_dict)

    def encode_frequencies(
        self, image: torch.Tensor, norm_stats: BatchNormStats | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run the shared encoder on an image (the output or the target) and return its (Y^H, Y^L) per scale.

        Always through every encoder stage, also with ``skip_first_encoder_blocks`` (as the public code
        re-encodes its ground truth).

        Args:
            image: the image to re-encode.
            norm_stats: None: the encoder's BatchNorm layers behave as the module's mode says (training:
                this image's batch statistics, and the running estimates move). Given (the
                ``encoder_norm_stats`` of a training forward's :class:`MSFSFeatures`): every encoder
                BatchNorm normalises with the blurry input's statistics of that forward and the running
                estimates stay as they are (``loss.reencode_batchnorm=frozen``).

        Shape: (N, 3, H, W) -> ([high_k (N, C/2, H/2^k, W/2^k)], [low_k (N, C/2, H/2^(k+1), W/2^(k+1))]),
        k = 0 (full), 1 (1/2), 2 (1/4).
        """
        if not self.use_fsm:
            raise RuntimeError(
                "MSFSNet.encode_frequencies needs FSMs; this network was built with use_fsm=False"
            )
        padded, _ = pad_to_multiple(image, self.multiple)
        if norm_stats is None:
            enc = self.encoder(padded)
        else:
            with use_batchnorm_stats(self.encoder, norm_stats):
                enc = self.encoder(padded)
        return list(enc.high), list(enc.low)

    def _encode_input(
        self, padded: torch.Tensor, record: bool
    ) -> tuple[EncoderOutput, BatchNormStats | None]:
        """The encoder on the blurry input; with ``record`` (and BatchNorm in training mode) also the batch
        statistics each encoder BatchNorm used."""
        if not (record and self.training and batchnorm_layers(self.encoder)):
            return self.encoder(padded, skip_first_blocks=self.skip_first_encoder_blocks), None
        with record_batchnorm_stats(self.encoder) as stats:
            enc = self.encoder(padded, skip_first_blocks=self.skip_first_encoder_blocks)
        return enc, stats

    def forward(
        self, x: torch.Tensor, return_features: bool = False, return_aux: bool = False
    ) -> torch.Tensor | tuple[Any, ...]:
        """Deblur ``x``; see the class docstring for what the flags add to the result."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MSFSNet expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        if return_aux and self.aux_conv_half is None:
            raise ValueError(
                "MSFSNet: return_aux=True needs the auxiliary heads (build with aux_outputs=True)"
            )
        padded, size = pad_to_multiple(x, self.multiple)
        enc, norm_stats = self._encode_input(padded, record=return_features and self.use_fsm)
        # 1/4 scale
        dec_quarter: FrequencyFeatures = self.decoder_fsm_quarter(self.latent(enc.latent))
        feat = self.decoder_quarter(self.fusion_quarter(enc.skip_quarter, dec_quarter.output))
        # 1/2 scale
        dec_half: FrequencyFeatures = self.decoder_fsm_half(feat)
        feat = self.decoder_half(self.fusion_half(enc.skip_half, dec_half.output))
        # full scale
        dec_full: FrequencyFeatures = self.decoder_fsm_full(feat)
        image = crop_to(self.conv_last(dec_full.output) + padded, size)

        if not (return_features or return_aux):
            return image
        result: list[Any] = [image]
        if return_features:
            result.append(self._features(enc, dec_full, dec_half, dec_quarter, norm_stats))
        if return_aux:
            result.append(self._aux_images(padded, size, dec_half.output, dec_quarter.output))
        return tuple(result)

    def _features(
        self,
        enc: EncoderOutput,
        dec_full: FrequencyFeatures,
        dec_half: FrequencyFeatures,
        dec_quarter: FrequencyFeatures,
        norm_stats: BatchNormStats | None,
    ) -> MSFSFeatures | None:
        if not self.use_fsm:
            return None
        if self.shared_anchor_projection:
            project_full = project_half = self.anchor_projection
        else:
            project_full, project_half = self.anchor_projection_full, self.anchor_projection_half
        anchors = [project_full(dec_full.high), project_half(dec_half.high), dec_quarter.high]
        return MSFSFeatures(list(enc.high), list(enc.low), anchors, norm_stats)

    def _aux_images(
        self, padded: torch.Tensor, size: tuple[int, int], half: torch.Tensor, quarter: torch.Tensor
    ) -> AuxImages:
        """The public code's ``pred_2`` / ``pred_4``: 1x1 conv(decoder FSM output) + down-sampled input."""
        input_half = F.interpolate(padded, scale_factor=0.5, mode="nearest")
        input_quarter = F.interpolate(input_half, scale_factor=0.5, mode="nearest")
        h, w = size
        return AuxImages(
            half=crop_to(self.aux_conv_half(half) + input_half, ((h + 1) // 2, (w + 1) // 2)),
            quarter=crop_to(self.aux_conv_quarter(quarter) + input_quarter, ((h + 3) // 4, (w + 3) // 4)),
        )
