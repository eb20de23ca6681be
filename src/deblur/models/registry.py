"""Build a network from its config node (``cfg.model``): ``name`` picks the class, the rest are arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn


def _msfs(**kwargs: Any) -> nn.Module:
    from deblur.models.msfs_net import MSFSNet

    if "csffm_init" in kwargs:
        kwargs["csffm_init"] = tuple(kwargs["csffm_init"])
    return MSFSNet(**kwargs)


def _fddn(**kwargs: Any) -> nn.Module:
    from deblur.models.fddn import FDDN

    return FDDN(**kwargs)


MODELS: dict[str, Callable[..., nn.Module]] = {"msfs": _msfs, "fddn": _fddn}


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """``{"name": "msfs", "width": 16, ...}`` -> the network. Unknown names fail listing the options."""
    args = dict(cfg)
    name = args.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"model.name={name!r} is not a known network; options: {sorted(MODELS)}")
    return MODELS[name](**args)
