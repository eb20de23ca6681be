"""Build a network from its config node (``cfg.model``): ``name`` picks a declared network
(:mod:`deblur.config.registry`), the rest are its arguments; ``_target_`` names a user's own class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from deblur.config.registry import component, components
from deblur.config.target import TARGET, is_target_config, named_target_problem


def model_config(name_or_cfg: str | Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A network's full config: a ``conf/model`` preset name (``"msfs_small"``) or a config mapping, with
    ``overrides`` applied on top (``width=8``). Preset names are composed from ``conf/model`` with their
    schema defaults, so the result equals ``cfg.model`` of ``deblur-train model=<name>``.

    Raises:
        ValueError: an unknown preset name (listing the presets) or an unknown override key.
    """
    if isinstance(name_or_cfg, str):
        from deblur.config.choices import group_options
        from deblur.config.compose import compose
        from deblur.paths import CONF_DIR

        presets = [p for p in group_options(CONF_DIR, "model") if not p.endswith("_schema")]
        if name_or_cfg not in presets:
            raise ValueError(f"model={name_or_cfg!r} is not a model preset; options: {', '.join(presets)}")
        from omegaconf import OmegaConf

        node = compose("train", [f"model={name_or_cfg}"]).model
        cfg: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    elif isinstance(name_or_cfg, Mapping):
        cfg = {str(k): v for k, v in name_or_cfg.items()}
        if not isinstance(name_or_cfg, dict):  # a DictConfig
            from omegaconf import DictConfig, OmegaConf

            if isinstance(name_or_cfg, DictConfig):
                cfg = OmegaConf.to_container(name_or_cfg, resolve=True)  # type: ignore[assignment]
    else:
        raise ValueError(f"model must be a preset name or a config mapping, got {type(name_or_cfg).__name__}")
    if overrides:
        if isinstance(name_or_cfg, str):
            unknown = sorted(set(overrides) - set(cfg))
            if unknown:
                raise ValueError(f"model={name_or_cfg} has no option(s) {unknown}; options: {sorted(cfg)}")
        cfg.update(overrides)
    if cfg.get("name") is not None:  # a preset network is picked by name; a _target_ config keeps its target
        cfg.pop("_target_", None)
    return cfg


def build_model(name_or_cfg: str | Mapping[str, Any], **overrides: Any) -> nn.Module:
    """The network of a ``conf/model`` preset name or a config mapping (``{"name": "msfs", "width": 16}``).

    ``name`` in the config picks the class, the other keys are its arguments; ``overrides`` replace keys.
    Unknown network names fail listing the options. A config with ``_target_: module.Class`` and no
    ``name`` is a user's own network (:mod:`deblur.models.custom`): ``Class(**other keys)``.

    Examples:
        >>> net = build_model("fddn_small", width=4)
        >>> type(net).__name__, net.training
        ('FDDN', True)
    """
    args = model_config(name_or_cfg, **overrides)
    if is_target_config(args):
        from deblur.models.custom import build_target

        return build_target(args)
    name = args.pop("name", None)
    network = component("model", name)
    if network is None and isinstance(name_or_cfg, Mapping) and TARGET in name_or_cfg:  # dropped by its name
        raise ValueError(named_target_problem({**name_or_cfg}))
    if network is None:
        options = sorted(components("model"))
        raise ValueError(f"model.name={name!r} is not a known network; options: {options}")
    return network.build(**args)
