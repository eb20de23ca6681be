"""The components the suite builds by name, each declared once: networks (``model.name``) and losses
(``loss.name``).

A component declares, in its own package (``deblur.models.msfs.config``, ``deblur.losses.configs``):

* its ``name`` (the value of ``model.name`` / ``loss.name``);
* its config dataclass: the Hydra schema, stored as ``model/<name>_schema`` (``loss/<name>_schema``) by
  :func:`deblur.config.schema.register_configs`; its fields are the options ``check_train_config`` accepts;
* its value rules (:data:`deblur.config.rules.Rules`), called by its constructor and by config checking;
* its builder, as an import path ``"package.module:Class"`` (imported when first built, so declaring
  costs no import of the network's code);
* for a network, its checkpoint facts: the keys that decide the shapes of its weights, and the foreign
  weights formats it reads (``"package.module:FORMAT"``, a :class:`WeightsFormat`).

This module imports nothing of the suite's models, losses or Lightning code: everything above reads it.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class TinyConfig:
    ...     name: str = "tiny_doc"
    ...     width: int = 4
    >>> entry = register_model("tiny_doc", config=TinyConfig, builder="torch.nn:Identity")
    >>> entry.options(), "tiny_doc" in components("model")
    (['width'], True)
    >>> unregister("model", "tiny_doc")
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deblur.config.rules import Rules

GROUPS = ("model", "loss")


@dataclass(frozen=True)
class WeightsFormat:
    """A weights file from outside the suite that a network reads (e.g. the authors' released files).

    recognise: the file's contents (a mapping) -> True when it is this format.
    read: the contents -> ``(state dict in the network's key names, model config)``; ``ValueError`` for a
        file of this format that is broken.
    label: how messages name the format.
    only_preset: the ``conf/model`` preset these weights fit alone: any other asked model (differing in a
        key outside ``free_keys``) is refused naming it; None: an asked model is compared as any checkpoint.
    """

    label: str
    recognise: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
    only_preset: str | None = None
    free_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Component:
    """One declared network or loss (see the module docstring). ``networks``, of a loss: the
    ``model.name`` values it trains (it reads more than the network's output, e.g. MSFS-Net's encoder);
    empty: any network, a ``_target_`` one included."""

    group: str
    name: str
    config: type
    builder: str
    rules: Rules | None = None
    architecture_keys: tuple[str, ...] = ()
    weights_formats: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()

    def options(self) -> list[str]:
        """The config keys besides ``name``, in the schema's order."""
        return [f.name for f in dataclasses.fields(self.config) if f.name != "name"]

    def problems(self, node: Mapping[str, Any]) -> list[str]:
        """The value rules' lines for ``node`` (only the keys it holds are checked)."""
        return self.rules(node) if self.rules is not None else []

    def factory(self) -> Callable[..., Any]:
        """The builder, imported."""
        return resolve(self.builder)

    def build(self, **arguments: Any) -> Any:
        """``builder(**arguments)``."""
        return self.factory()(**arguments)

    def formats(self) -> list[WeightsFormat]:
        """The foreign weights formats, imported."""
        return [resolve(path) for path in self.weights_formats]


_COMPONENTS: dict[str, dict[str, Component]] = {group: {} for group in GROUPS}
#: extra group checks: group -> import paths of callables that raise ValueError for a bad node
_GROUP_CHECKS: dict[str, list[str]] = {}
#: checks of the whole config: import paths of callables returning problem lines
_CONFIG_CHECKS: list[str] = []
#: other schemas to store: (group, name) -> dataclass
_SCHEMAS: dict[tuple[str, str], type] = {}


def resolve(path: str) -> Any:
    """The object ``"package.module:attribute"`` names."""
    module, _, attribute = path.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        value = getattr(value, part)
    return value


def register(component: Component) -> Component:
    """Declare ``component``; declaring the same name again replaces it (a module reloaded).

    Raises:
        ValueError: an unknown group, a config that is no dataclass, or a schema whose ``name`` default is
            not the component's name.
    """
    if component.group not in GROUPS:
        raise ValueError(f"component group must be one of {', '.join(GROUPS)}, got {component.group!r}")
    if not dataclasses.is_dataclass(component.config):
        raise ValueError(f"{component.group}={component.name}: config must be a dataclass")
    fields = {f.name: f for f in dataclasses.fields(component.config)}
    if "name" not in fields or fields["name"].default != component.name:
        raise ValueError(
            f"{component.group}={component.name}: its config dataclass needs a field name: str = "
            f"{component.name!r} (the value that picks it)"
        )
    _COMPONENTS[component.group][component.name] = component
    return component


def register_model(
    name: str,
    *,
    config: type,
    builder: str,
    rules: Rules | None = None,
    architecture_keys: tuple[str, ...] = (),
    weights_formats: tuple[str, ...] = (),
) -> Component:
    """Declare a network (``model.name=<name>``); see :class:`Component`."""
    return register(Component("model", name, config, builder, rules, architecture_keys, weights_formats))


def register_loss(
    name: str, *, config: type, builder: str, rules: Rules | None = None, networks: tuple[str, ...] = ()
) -> Component:
    """Declare a loss (``loss.name=<name>``); ``networks``: the only networks it trains (empty: any); see
    :class:`Component`."""
    return register(Component("loss", name, config, builder, rules, networks=tuple(networks)))


def unregister(group: str, name: str) -> None:
    """Forget a component (tests)."""
    _COMPONENTS[group].pop(name, None)


def components(group: str) -> dict[str, Component]:
    """The declared components of ``group`` (``model`` or ``loss``) by name, in declaration order."""
    return dict(_COMPONENTS[group])


def component(group: str, name: Any) -> Component | None:
    """The component ``group.name=<name>`` picks, or None."""
    return _COMPONENTS[group].get(name) if isinstance(name, str) else None


def register_group_check(group: str, check: str) -> None:
    """Have ``check_train_config`` call ``check`` (an import path of a callable taking the group's node and
    raising ``ValueError`` with a message naming the key) on the ``group`` node; idempotent."""
    paths = _GROUP_CHECKS.setdefault(group, [])
    if check not in paths:
        paths.append(check)


def group_checks() -> dict[str, list[str]]:
    """The extra group checks (:func:`register_group_check`)."""
    return {group: list(paths) for group, paths in _GROUP_CHECKS.items()}


def register_config_check(check: str) -> None:
    """Have ``check_train_config`` call ``check`` (an import path of a callable taking the whole config and
    returning ``key=value: expectation`` lines) on every config; idempotent."""
    if check not in _CONFIG_CHECKS:
        _CONFIG_CHECKS.append(check)


def config_checks() -> list[str]:
    """The whole-config checks (:func:`register_config_check`)."""
    return list(_CONFIG_CHECKS)


def register_schema(group: str, name: str, node: type) -> None:
    """Store ``node`` as ``<group>/<name>`` in Hydra's ConfigStore with the other schemas (a command's
    own settings, e.g. ``analysis/analysis_schema``)."""
    _SCHEMAS[(group, name)] = node


def schemas() -> dict[tuple[str, str], type]:
    """The other schemas (:func:`register_schema`)."""
    return dict(_SCHEMAS)
