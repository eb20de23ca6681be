"""Which ``conf/model`` preset a run's model config came from (``metrics.json``'s ``model_preset``).

``model`` in ``metrics.json`` is the network (``msfs``, ``fddn``): what the study tables group by. The
preset (``msfs_small``, ``fddn``, ...) is Hydra's choice of the ``model`` group when the run is a Hydra job
(``deblur-train``); otherwise (``deblur.compose`` then ``deblur.train``) the preset whose values the config
equals, or None when keys were overridden so that no preset matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from deblur.paths import CONF_DIR


def _hydra_choice() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("model")
    return str(choice) if choice else None


def preset_values(name: str) -> dict[str, Any]:
    """The model config ``conf/model/<name>.yaml`` composes to (its schema's defaults under its keys)."""
    from hydra.core.config_store import ConfigStore

    from deblur.config.schema import register_configs

    register_configs()
    node = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    defaults = [d for d in node.pop("defaults", []) if isinstance(d, str) and d != "_self_"]
    store = ConfigStore.instance()
    schemas = [store.load(f"model/{d}.yaml").node for d in defaults]
    return OmegaConf.to_container(OmegaConf.merge(*schemas, node), resolve=True)


def model_preset(model: Mapping[str, Any]) -> str | None:
    """The ``conf/model`` preset of a composed model config (see the module docstring)."""
    choice = _hydra_choice()
    if choice is not None:
        return choice
    given = OmegaConf.to_container(OmegaConf.create(dict(model)), resolve=True)
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        if preset_values(path.stem) == given:
            return path.stem
    return None
