"""The public Python API: the README's example runs, `import deblur` exposes the documented names, the
public functions' examples run as doctests, and no library module imports the commands."""

from __future__ import annotations

import ast
import doctest
import importlib
import re

import pytest

import deblur
from deblur.paths import CONF_DIR, REPO_ROOT

PUBLIC = ["compose", "build_model", "load_model", "restore", "score", "score_folders", "analyze", "datasets",
          "train", "evaluate", "predict_images", "prepare_network", "InferenceSettings"]  # fmt: skip
#: modules whose public functions carry runnable examples
DOCTESTED = ["deblur.config.compose", "deblur.models.build", "deblur.checkpoints", "deblur.inference",
             "deblur.metrics.scoring", "deblur.analysis.analyzer", "deblur.datasets", "deblur.io",
             "deblur.utils.device", "deblur.config.registry", "deblur.config.rules", "deblur.models.size",
             "deblur.config.checks"]  # fmt: skip


def test_import_deblur_exposes_the_public_names():
    for name in PUBLIC:
        assert name in dir(deblur) and getattr(deblur, name) is not None, name
    assert callable(deblur.datasets.open)
    with pytest.raises(AttributeError):
        deblur.no_such_name  # noqa: B018


def test_the_readme_python_api_example_runs(capsys):
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out
    assert "(96, 128, 3) uint8" in out and "'psnr'" in out and "'1/2'" in out
    # the analysis takes 8 distinct photos (not 2 blurs of one: JS ~0.99), and says they are few
    js_full_scale = float(re.search(r"^8 \{'1': ([0-9.]+)", out, re.M).group(1))
    assert 0.05 < js_full_scale < 0.5 and "only 8 distinct image(s) (minimum 16)" in out


def test_plain_hydra_compose_works_after_import_deblur():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=msfs_small"])
    assert cfg.model.width == 24 and cfg.trainer.accelerator == "auto"


@pytest.mark.parametrize("module", DOCTESTED)
def test_public_examples_run_as_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{module} has no example"
    assert result.failed == 0


def test_no_library_module_imports_the_commands():
    offenders = []
    for path in sorted((REPO_ROOT / "src" / "deblur").rglob("*.py")):
        if "cli" in path.relative_to(REPO_ROOT / "src" / "deblur").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[:2] == ["deblur", "cli"]]
    assert not offenders


def test_notebooks_use_only_the_public_api():
    for path in sorted((REPO_ROOT / "notebooks").glob("*.py")):
        assert "deblur.cli" not in path.read_text(), path.name


def test_commands_are_thin():
    for path in sorted((REPO_ROOT / "src" / "deblur" / "cli").glob("*.py")):
        if path.name == "__init__.py":
            continue
        assert len(path.read_text().splitlines()) <= 80, path.name
