"""The declare-once registry: a network or loss declared in one place appears in the schemas, the config
checks, ``--help``, the API and the checkpoint rules; its value rules give one message from its
constructor and from ``check_train_config``; ``config/`` is a base layer."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from torch import nn

import deblur
from deblur.checkpoints import architecture_differences, architecture_keys
from deblur.config import registry
from deblur.config.checks import check_train_config
from deblur.config.choices import component_lines
from deblur.config.rules import Problems
from deblur.config.schema import register_configs
from deblur.errors import UserError

SRC = Path(deblur.__file__).resolve().parent


# ---------------------------------------------------------------- a component declared in a test
@dataclasses.dataclass
class FakeConfig:
    name: str = "fake_net"
    width: int = 4


def fake_rules(model):
    problems = Problems()
    problems.int_at_least(model, "model", "width", 2)
    return problems.lines


class FakeNet(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.width = width


@pytest.fixture
def fake_net():
    entry = registry.register_model(
        "fake_net", config=FakeConfig, builder=f"{__name__}:FakeNet", rules=fake_rules,
        architecture_keys=("width",),
    )  # fmt: skip
    yield entry
    registry.unregister("model", "fake_net")


def test_a_declared_network_appears_in_the_schemas_checks_help_api_and_checkpoint_rules(fake_net):
    register_configs()
    assert "fake_net_schema.yaml" in ConfigStore.instance().list("model")
    check_train_config({"model": {"name": "fake_net", "width": 8}})  # its name and keys are known
    with pytest.raises(UserError, match=r"^model\.width=1: an integer >= 2$"):
        check_train_config({"model": {"name": "fake_net", "width": 1}})
    with pytest.raises(UserError, match=r"model\.depth is not an option of model=fake_net; options: width"):
        check_train_config({"model": {"name": "fake_net", "depth": 3}})
    assert "fake_net" in component_lines("model")[0]
    net = deblur.build_model({"name": "fake_net", "width": 6})
    assert isinstance(net, FakeNet) and net.width == 6
    assert architecture_keys({"name": "fake_net"}) == ("width",)
    saved, asked = {"name": "fake_net", "width": 4}, {"name": "fake_net", "width": 6}
    assert architecture_differences(saved, asked) == ["width"]


def test_an_undeclared_network_is_refused_listing_the_declared_ones():
    with pytest.raises(UserError, match=r"model\.name='fake_net': one of fddn, msfs, nafnet"):
        check_train_config({"model": {"name": "fake_net"}})
    assert "fake_net" not in component_lines("model")[0]


def test_a_schema_whose_name_default_is_not_the_component_name_is_refused():
    with pytest.raises(ValueError, match="name: str = 'other'"):
        registry.register_model("other", config=FakeConfig, builder=f"{__name__}:FakeNet")


# ---------------------------------------------------------------- value rules written once
BAD_VALUES = [
    ("model", "msfs", {"width": 3}),
    ("model", "msfs", {"csffm_init": [1.0]}),
    ("model", "fddn", {"ratio": 1.5}),
    ("model", "fddn", {"variant": "resnet"}),
    ("model", "nafnet", {"encoder_blocks": [1, 1], "decoder_blocks": [1]}),
    ("loss", "msfs", {"positive": "blurry"}),
    ("loss", "fddn", {"lambda_perceptual": -1.0}),
    ("loss", "psnr", {"eps": 0.0}),
    ("loss", "charbonnier", {"eps": -1.0}),
    ("loss", "fft", {"fft_weight": -0.5}),
]


@pytest.mark.parametrize(("group", "name", "bad"), BAD_VALUES)
def test_a_broken_value_rule_reads_the_same_from_the_constructor_and_the_config_check(group, name, bad):
    with pytest.raises(UserError) as checked:
        check_train_config({group: {"name": name, **bad}})
    with pytest.raises(ValueError) as built:
        registry.component(group, name).build(**bad)
    assert str(built.value) == str(checked.value)


@pytest.mark.parametrize(
    ("group", "name"), [(g, n) for g in registry.GROUPS for n in registry.components(g)]
)
def test_every_declared_schema_holds_exactly_its_builders_arguments(group, name):
    entry = registry.component(group, name)
    params = inspect.signature(entry.factory()).parameters
    named = [p for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # no __init__ of its own (L1Loss)
        assert entry.options() == []
        return
    assert entry.options() == [p.name for p in named]


# ---------------------------------------------------------------- config/ is a base layer
#: packages config/ must never import (they sit above it)
ABOVE_CONFIG = (
    "deblur.models", "deblur.losses", "deblur.lit", "deblur.analysis", "deblur.data", "deblur.training",
    "deblur.checkpoints", "deblur.components", "lightning", "torch",
)  # fmt: skip


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "config").glob("*.py")), ids=lambda p: p.name)
def test_the_config_package_imports_nothing_above_it(path):
    above = sorted(n for n in _imports(path) if n.startswith(ABOVE_CONFIG))
    assert above == []


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_models_config_and_losses_import_each_other_without_a_circle():
    files = [p for d in ("models", "config", "losses") for p in (SRC / d).rglob("*.py")]
    modules = {_module(p): p for p in files}
    faces = {"deblur.models", "deblur.config", "deblur.losses"}  # packages' __init__: not followed
    graph = {m: {n for n in _imports(p) if n in modules and n not in faces} - {m} for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for n in graph[start]:
            if n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert circles == []


def test_import_deblur_declares_the_networks_without_loading_their_code():
    code = (
        "import sys, deblur; from deblur.config.registry import components; "
        "print(sorted(components('model')), sorted(components('loss'))); "
        "print([m for m in ('lightning', 'torchvision', 'deblur.models.msfs.net', 'deblur.models.fddn.net', "
        "'deblur.models.nafnet.net', 'deblur.losses.perceptual') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "['fddn', 'msfs', 'nafnet'] ['charbonnier', 'fddn', 'fft', 'l1', 'msfs', 'psnr']", "[]"
    ]


def fake_whole_config_check(cfg):
    return ["fake.key=1: a check declared above config/"] if cfg.get("fake") else []


def test_checks_declared_above_config_run_in_check_train_config(monkeypatch):
    monkeypatch.setattr(registry, "_CONFIG_CHECKS", [f"{__name__}:fake_whole_config_check"])
    with pytest.raises(UserError, match=r"^fake\.key=1: a check declared above config/$"):
        check_train_config({"fake": {"key": 1}})
    check_train_config({"model": {"name": "msfs", "width": 8}})
    monkeypatch.setattr(registry, "_GROUP_CHECKS", {"augment": ["deblur.data.augment:make_pipeline"]})
    with pytest.raises(UserError, match="augment"):
        check_train_config({"augment": {"train": {"no_such_transform": {}}}})
