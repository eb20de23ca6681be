"""One source for every default: each data option's YAML states its schema's defaults, never others, and
the config package imports without a cycle."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml

from deblur.config.data_schema import DATASET_SCHEMAS
from deblur.paths import CONF_DIR


def schema_defaults(cls: type) -> dict:
    """A dataclass's field defaults (factories called), by field name."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("name", sorted(DATASET_SCHEMAS))
def test_data_yaml_repeats_its_schema_defaults_exactly(name):
    node = yaml.safe_load((CONF_DIR / "data" / f"{name}.yaml").read_text())
    schema = schema_defaults(DATASET_SCHEMAS[name])
    drift = {k: (v, schema[k]) for k, v in node.items() if k in schema and v != schema[k]}
    assert not drift, f"conf/data/{name}.yaml differs from its schema (yaml, schema): {drift}"
    unknown = set(node) - set(schema) - {"defaults"}
    assert not unknown, unknown


def test_config_modules_import_in_any_order_without_a_cycle():
    for first in ("deblur.config.data_schema", "deblur.config.schema"):
        code = f"import {first}; import deblur.config"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
