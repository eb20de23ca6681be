"""Your own network on the command line (docs/own_network.md): with ``--config-dir`` a wrong override is
still one message naming the key, exit code 2, before Hydra runs; the user's presets count as options."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.fixture
def conf_extra(tmp_path):
    """A user's config folder with ``model/mynet.yaml`` naming a network by ``_target_``."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mynet.yaml").write_text("_target_: torch.nn.Identity\n")
    return tmp_path


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.foo=1", "model.foo=1: 'model' has no key 'foo'"),
        ("trainer.max_step=10", "nearest valid keys: trainer.max_steps"),
        ("model=mynett", "model='mynett' is not an option of 'model'; options: fddn,"),
    ],
)
def test_with_config_dir_a_wrong_override_is_one_message_before_hydra(
    conf_extra, override, named, monkeypatch, capsys
):
    train = importlib.import_module("deblur.cli.train")
    argv = ["deblur-train", "--config-dir", str(conf_extra), "model=mynet", override]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        train.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("deblur-train: error: ") and named in err, err
    assert len(err.strip().splitlines()) == 1 and "To append" not in err
    if override.startswith("model="):
        assert "mynet" in err  # the user's own preset is listed among the options


def test_with_config_dir_the_users_presets_pass_the_check(conf_extra):
    from deblur.config.overrides import check_overrides

    check_overrides("train", ["model=mynet", "+loss=fft"], config_dir=str(conf_extra))
    check_overrides("train", ["model=mynet,msfs_small"], multirun=True, config_dir=str(conf_extra))


def test_help_lists_the_presets_of_the_config_dir_with_the_suites(conf_extra):
    from omegaconf import OmegaConf

    from deblur.config.choices import group_lines

    sources = [{"path": "/work/conf", "schema": "file", "provider": "main"},
               {"path": str(conf_extra), "schema": "file", "provider": "command-line"}]  # fmt: skip
    runtime = {"choices": {"model": "mynet"}, "config_sources": sources}
    root = OmegaConf.create({"hydra": {"runtime": runtime}})
    line = next(line for line in group_lines(root) if line.startswith("  model: "))
    assert "msfs_small" in line and "mynet" in line.split("(now:")[0], line


def test_a_primary_config_in_the_config_dir_is_composed_from_there(tmp_path):
    from deblur.config.overrides import check_overrides
    from deblur.errors import UserError

    (tmp_path / "mytrain.yaml").write_text("defaults:\n  - train\n  - _self_\nseed: 7\n")
    check_overrides("mytrain", ["model=fddn_small"], config_dir=str(tmp_path))  # --config-name mytrain
    with pytest.raises(UserError, match="nearest valid keys: trainer.max_steps"):
        check_overrides("mytrain", ["trainer.max_step=1"], config_dir=str(tmp_path))
