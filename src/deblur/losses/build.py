"""Build a training loss from its config node (``cfg.loss``): ``name`` picks a declared loss
(:mod:`deblur.losses.configs`, :mod:`deblur.config.registry`), the rest are its arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from deblur.config.registry import component, components
from deblur.config.target import is_target_config

#: the loss of a network that brings none (a ``_target_`` model config without a ``loss`` group)
DEFAULT_LOSS = "l1"


def with_default_loss(cfg: Any) -> bool:
    """Give a composed train config whose ``model`` is a ``_target_`` network and which has no ``loss``
    the pixel loss :data:`DEFAULT_LOSS` (``loss.name=l1``); True when it did. The presets select their
    paper's loss in their ``conf/model`` file, so their configs always hold one."""
    from omegaconf import OmegaConf, open_dict

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
    loss = component("loss", name)
    if loss is None:
        raise ValueError(f"loss.name={name!r} is not a known loss; options: {sorted(components('loss'))}")
    return loss.build(**args)
