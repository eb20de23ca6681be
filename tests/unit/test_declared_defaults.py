"""One value per default: a declared component's schema defaults equal its builder's defaults, and its
``conf/<group>/<name>.yaml`` (the loss options, the paper presets msfs / fddn / nafnet) repeats them
exactly, as ``test_config_defaults`` checks for the data options. Each value is written three times (the
YAML documents it, the constructor runs without a config), so these tests are what keeps them one."""

from __future__ import annotations

import inspect

import pytest
import yaml

import deblur  # noqa: F401 - declares the built-in components
from deblur.config import registry
from deblur.paths import CONF_DIR
from tests.unit.test_config_defaults import schema_defaults

DECLARED = [(g, n) for g in registry.GROUPS for n in registry.components(g)]


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, list | tuple) and isinstance(b, list | tuple) else a == b


@pytest.mark.parametrize(("group", "name"), DECLARED)
def test_the_schema_defaults_are_the_builders_defaults(group, name):
    entry = registry.component(group, name)
    schema = schema_defaults(entry.config)
    params = inspect.signature(entry.factory()).parameters
    built = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    drift = {k: (schema[k], v) for k, v in built.items() if k in schema and not _same(schema[k], v)}
    assert not drift, f"{group}={name}: schema and constructor defaults differ (schema, constructor): {drift}"


@pytest.mark.parametrize(("group", "name"), DECLARED)
def test_the_yaml_named_like_the_component_repeats_its_schema_defaults(group, name):
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"no conf/{group}/{name}.yaml")
    node = yaml.safe_load(path.read_text())
    schema = schema_defaults(registry.component(group, name).config)
    node.pop("defaults", None)
    drift = {k: (v, schema.get(k)) for k, v in node.items() if not _same(v, schema.get(k))}
    assert not drift, f"conf/{group}/{name}.yaml differs from its schema (yaml, schema): {drift}"
