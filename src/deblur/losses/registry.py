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


def _pixel(cls_name: str) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        from deblur.losses import pixel

        return getattr(pixel, cls_name)(**kwargs)

    return build


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "msfs": _msfs, "fddn": _fddn, "psnr": _psnr,
    "l1": _pixel("L1Loss"), "charbonnier": _pixel("CharbonnierLoss"), "fft": _pixel("FFTLoss"),
}  # fmt: skip

#: the loss of a network that brings none (a ``_target_`` model config without a ``loss`` group)
DEFAULT_LOSS = "l1"


def with_default_loss(cfg: Any) -> bool:
    """Give a composed train config whose ``model`` is a ``_target_`` network and which has no ``loss``
    the pixel loss :data:`DEFAULT_LOSS` (``loss.name=l1``); True when it did. The presets select their
    paper's loss in their ``conf/model`` file, so their configs always hold one."""
    from omegaconf import OmegaConf, open_dict

    from deblur.models.custom import is_target_config

    model = cfg.get("model")
    if cfg.get("loss") is not None or model is None or not is_target_config(model):
        return False
    with open_dict(cfg):
        cfg.loss = OmegaConf.create({"name": DEFAULT_LOSS})
    return True


def build_loss(cfg: Mapping[str, Any]) -> nn.Module:
    """``{"name": "msfs", "lambda_high": 0.005, ...}`` -> the loss module. Unknown names list the options."""
    args = dict(cfg)
    name = args.pop("name", None)
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is not a known loss; options: {sorted(LOSSES)}")
    return LOSSES[name](**args)
