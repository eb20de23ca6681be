"""FDDN: frequency disentanglement distillation image deblurring network (paper Sec. 3.1, Fig. 1).

Encoder (two inception down-sampling blocks, Sec. 3.1) -> 16 latent blocks at 1/4 resolution (FDBs, Sec. 3.3)
-> decoder of RCABs and pixel-shuffle up-samplers (Sec. 3.1, Fig. 3) with encoder-decoder skips.

Model size (fp32 parameter bytes / 2**20, :func:`deblur.models.size.size_mb`) of the defaults,
``width=12`` (latent width 48), ``num_fdb=16``, ``ratio=0.5``, ``decoder_rcabs=1``, next to the paper's
Tables 3 and 5:

===================  ==========  =========  ===========
variant              parameters  ours (MB)  paper (MB)
===================  ==========  =========  ===========
``full``              2,117,474      8.08        8.08
``no_distillation``   2,716,802     10.36        9.05
``no_fsb``            1,475,810      5.63        7.96
``no_fdb``              825,986      3.15        7.89
===================  ==========  =========  ===========

The ordering of the paper's Table 5 is reproduced (no_distillation > full > no_fsb > no_fdb); the gaps are
larger than the paper's because, at the same widths, an FDB (three FSBs with two 3x3 convolutions each plus
four 3x3 layers) is much larger than a plain residual block, while the paper's sizes would imply the 16
latent blocks are a few percent of the model. The widths were calibrated for the full model only.

"MB" is read as MiB (2**20 bytes), the convention of the ``torchsummary`` "Params size (MB)" line; with
1e6 bytes the default model is 8.47 MB, still within 5 % of the paper's 8.08.

Choices of ours where the paper is silent:

* widths ``w -> 2w -> 4w`` at full, 1/2 and 1/4 resolution (a 3x3 shallow conv makes the first ``w``);
* after the latent blocks, a 3x3 conv and a skip around the whole latent stage (as in EDSR / RFDN);
* encoder-decoder skips are added (not concatenated) after each pixel-shuffle up-sampling;
* a final 3x3 conv to ``in_channels`` plus the blurry input (global residual learning);
* inputs are padded to a multiple of 4 (two 2x down-samplings) and the output cropped back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from deblur.config.rules import refuse
from deblur.models.fddn.config import fddn_rules
from deblur.models.fddn.distillation import make_latent_block
from deblur.models.fddn.fsb import LEAKY_SLOPE
from deblur.models.fddn.inception import InceptionDownsample
from deblur.models.legacy_keys import register_upgrade, rename_keys
from deblur.models.padding import crop_to, pad_to_multiple
from deblur.models.rcab import RCAB
from deblur.models.size import size_mb
from deblur.models.upsample import PixelShuffleUpsample


def upgrade_state_dict(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Rename the keys of an :class:`FDDN` state dict written before the input conv was renamed.

    ``head.*`` (the shallow input conv) -> ``conv_first.*``; other keys (and keys not starting with
    ``prefix``) pass unchanged, so upgrading twice is harmless. ``load_state_dict`` applies it by itself.

    Args:
        state: the state dict (not modified).
        prefix: the network's key prefix inside ``state`` (e.g. ``"net."`` in a Lightning checkpoint).

    Returns:
        A new dict in the same order, with the current names.

    Example::

        net.load_state_dict(upgrade_state_dict(old_state))
    """
    return rename_keys(state, prefix, _upgrade_key)


def _upgrade_key(name: str) -> str:
    return "conv_first." + name[len("head.") :] if name.startswith("head.") else name


def _rcabs(channels: int, count: int, reduction: int) -> nn.Sequential:
    return nn.Sequential(*(RCAB(channels, reduction) for _ in range(count)))


class FDDN(nn.Module):
    """Frequency disentanglement distillation deblurring network: (N, C, H, W) -> (N, C, H, W), any H, W.

    Arguments: ``in_channels`` C (3 for RGB; also the output channels); ``width`` w, the full-resolution
    width (encoder and decoder use w, 2w, 4w); ``num_fdb`` latent blocks (paper: 16); ``ratio`` the FSB's
    high-frequency share (paper Sec. 4.2: 0.5); ``variant`` the latent block (Table 5, one of
    ``full``, ``no_distillation``, ``no_fsb``, ``no_fdb``); ``decoder_rcabs`` RCABs per decoder scale;
    ``cca_reduction`` and ``rcab_reduction`` the attention bottlenecks.

    Shapes inside, after padding to (H4, W4), multiples of 4:

    * shallow conv: (N, w, H4, W4) = skip_full
    * inception down 1: (N, 2w, H4/2, W4/2) = skip_half
    * inception down 2: (N, 4w, H4/4, W4/4) -> ``num_fdb`` latent blocks -> 3x3 conv, plus skip
    * RCABs (4w) -> pixel shuffle 4w -> 2w, + skip_half -> RCABs (2w) -> pixel shuffle 2w -> w, + skip_full
      -> RCABs (w) -> 3x3 conv w -> C, + input -> crop to (H, W)
    """

    multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 12,
        num_fdb: int = 16,
        ratio: float = 0.5,
        variant: str = "full",
        decoder_rcabs: int = 1,
        cca_reduction: int = 16,
        rcab_reduction: int = 16,
    ) -> None:
        super().__init__()
        refuse(fddn_rules({
            "in_channels": in_channels, "width": width, "num_fdb": num_fdb, "ratio": ratio,
            "variant": variant, "decoder_rcabs": decoder_rcabs, "cca_reduction": cca_reduction,
            "rcab_reduction": rcab_reduction,
        }))  # fmt: skip
        latent = 4 * width

        self.variant = variant
        self.conv_first = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)
        )
        self.down_half = InceptionDownsample(width, 2 * width)
        self.down_quarter = InceptionDownsample(2 * width, latent)
        self.latent_blocks = nn.Sequential(
            *(make_latent_block(variant, latent, ratio, cca_reduction) for _ in range(num_fdb))
        )
        self.latent_conv = nn.Conv2d(latent, latent, 3, padding=1)
        self.decode_quarter = _rcabs(latent, decoder_rcabs, rcab_reduction)
        self.up_half = PixelShuffleUpsample(latent, 2 * width)
        self.decode_half = _rcabs(2 * width, decoder_rcabs, rcab_reduction)
        self.up_full = PixelShuffleUpsample(2 * width, width)
        self.decode_full = _rcabs(width, decoder_rcabs, rcab_reduction)
        self.tail = nn.Conv2d(width, in_channels, 3, padding=1)
        register_upgrade(self, _upgrade_key)

    upgrade_state_dict = staticmethod(upgrade_state_dict)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.multiple)
        skip_full = self.conv_first(padded)
        skip_half = self.down_half(skip_full)
        latent = self.down_quarter(skip_half)
        latent = latent + self.latent_conv(self.latent_blocks(latent))

        features = self.decode_quarter(latent)
        features = crop_to(self.up_half(features), skip_half.shape[-2:]) + skip_half
        features = self.decode_half(features)
        features = crop_to(self.up_full(features), skip_full.shape[-2:]) + skip_full
        features = self.decode_full(features)
        return crop_to(self.tail(features) + padded, size)


#: FDDN paper, Table 5: fp32 model size (MB) of each latent-block variant
TABLE5_SIZE_MB = {"no_distillation": 9.05, "no_fsb": 7.96, "no_fdb": 7.89, "full": 8.08}


def table5_sizes(**kwargs: object) -> list[tuple[str, int, float, float]]:
    """(variant, parameters, our fp32 MB, paper MB) for each Table 5 row, at the given FDDN arguments."""
    rows = []

    for variant, paper_mb in TABLE5_SIZE_MB.items():
        model = FDDN(variant=variant, **kwargs)
        rows.append((variant, sum(p.numel() for p in model.parameters()), size_mb(model), paper_mb))
    return rows


if __name__ == "__main__":  # python -m deblur.models.fddn.net: the sizes next to the paper's Table 5
    print(f"{'variant':<18}{'parameters':>12}{'ours (MB)':>11}{'paper (MB)':>12}")
    for variant, params, ours, paper in table5_sizes():
        print(f"{variant:<18}{params:>12,}{ours:>11.2f}{paper:>12.2f}")
