"""The losses' declarations: each loss's config (the ``loss/<name>_schema`` of ``conf/loss/*.yaml``), its
value rules (used by its constructor and by ``check_train_config``) and its builder (imported when first
built: the perceptual loss loads torchvision)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deblur.config.registry import register_loss
from deblur.config.rules import Problems

#: BatchNorm in MSFS-Net's re-encoding passes (``loss.reencode_batchnorm``)
REENCODE_BATCHNORM = ("batch", "frozen")
#: MSFS-Net's positive of the contrastive term (``loss.positive``)
POSITIVES = ("output", "target")


def _weights(*keys: str, eps: bool = False) -> Any:
    """Rules: each of ``keys`` a number >= 0; with ``eps``, ``loss.eps`` a number > 0."""

    def rules(loss: Mapping[str, Any]) -> list[str]:
        problems = Problems()
        for key in keys:
            problems.number(loss, "loss", key, lambda v: v >= 0, "a number >= 0")
        if eps:
            problems.number(loss, "loss", "eps", lambda v: v > 0, "a number > 0")
        return problems.lines

    return rules


@dataclass
class MSFSLossConfig:
    """Eq. 7 of MSFS-Net; see ``deblur.losses.msfs`` for the positive/detach options."""

    name: str = "msfs"
    lambda_high: float = 0.005
    lambda_low: float = 0.005
    positive: str = "output"
    detach_positive: bool = True
    detach_negative: bool = True
    eps: float = 1e-7
    # BatchNorm in the re-encoding passes: batch (own batch statistics, running estimates updated) |
    # frozen (the blurry pass's statistics, running estimates untouched); docs/models.md
    reencode_batchnorm: str = "batch"


def msfs_loss_rules(loss: Mapping[str, Any]) -> list[str]:
    """MSFS-Net's loss: weights >= 0, eps > 0, ``positive`` and ``reencode_batchnorm`` from their options."""
    problems = Problems()
    problems.lines += _weights("lambda_high", "lambda_low", eps=True)(loss)
    problems.choice(loss, "loss", "positive", POSITIVES)
    problems.choice(loss, "loss", "reencode_batchnorm", REENCODE_BATCHNORM)
    return problems.lines


@dataclass
class FDDNLossConfig:
    """Eq. 14 of FDDN: MSE + lambda * VGG16 relu3_3 perceptual loss."""

    name: str = "fddn"
    lambda_perceptual: float = 0.1
    pretrained: bool = True
    weights_path: str | None = None


@dataclass
class PSNRLossConfig:
    """NAFNet's PSNR loss: ``10 * log10(MSE + eps)`` per image, averaged (``deblur.losses.psnr``)."""

    name: str = "psnr"
    eps: float = 1e-8


@dataclass
class L1LossConfig:
    """``mean |pred - target|`` (``deblur.losses.pixel``); the default of a ``_target_`` network."""

    name: str = "l1"


@dataclass
class CharbonnierLossConfig:
    """``mean sqrt((pred - target)^2 + eps^2)`` (``deblur.losses.pixel``)."""

    name: str = "charbonnier"
    eps: float = 1e-3


@dataclass
class FFTLossConfig:
    """MIMO-UNet's L1 + ``fft_weight`` x L1 between the images' 2-D FFTs (``deblur.losses.pixel``)."""

    name: str = "fft"
    fft_weight: float = 0.1


fddn_loss_rules = _weights("lambda_perceptual")
eps_rules = _weights(eps=True)
fft_loss_rules = _weights("fft_weight")

# CLM and consistency re-encode the output with MSFS-Net's own encoder: no other network has one
register_loss("msfs", config=MSFSLossConfig, builder="deblur.losses.msfs:MSFSLoss", rules=msfs_loss_rules,
              networks=("msfs",))  # fmt: skip
register_loss("fddn", config=FDDNLossConfig, builder="deblur.losses.perceptual:FDDNLoss",
              rules=fddn_loss_rules)  # fmt: skip
register_loss("psnr", config=PSNRLossConfig, builder="deblur.losses.psnr:PSNRLoss", rules=eps_rules)
register_loss("l1", config=L1LossConfig, builder="deblur.losses.pixel:L1Loss")
register_loss("charbonnier", config=CharbonnierLossConfig, builder="deblur.losses.pixel:CharbonnierLoss",
              rules=eps_rules)  # fmt: skip
register_loss("fft", config=FFTLossConfig, builder="deblur.losses.pixel:FFTLoss", rules=fft_loss_rules)
