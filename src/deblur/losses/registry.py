"""Build a training loss from its config node (``cfg.loss``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn


def _msfs(**kwargs: Any) -> nn.Module:
    from deblur.losses.msfs import MSFSLoss

    return MSFSLoss(**kwargs)


def _fddn(**kwargs: Any) -> nn.Module:
    from deblur.losses.perceptual import FDDNLoss

    return FDDNLoss(**kwargs)


def _psnr(**kwargs: Any) -> nn.Module:
    from deblur.losses.psnr import PSNRLoss

    return PSNRLoss(**kwargs)


LOSSES: dict[str, Callable[..., nn.Module]] = {"msfs": _msfs, "fddn": _fddn, "psnr": _psnr}


def build_loss(cfg: Mapping[str, Any]) -> nn.Module:
    """``{"name": "msfs", "lambda_high": 0.005, ...}`` -> the loss module. Unknown names list the options."""
    args = dict(cfg)
    name = args.pop("name", None)
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is not a known loss; options: {sorted(LOSSES)}")
    return LOSSES[name](**args)
