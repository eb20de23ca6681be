"""A user's own network by ``_target_`` (docs/own_network.md): built, checked, trained with the default
pixel loss, restored from its checkpoint alone; and the docs page's walk run from outside the package."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

import deblur
from deblur.checkpoints import CheckpointError
from deblur.config.checks import check_train_config
from deblur.errors import UserError
from deblur.losses.build import with_default_loss
from tests.integration.conftest import TINY_TRAIN
from tests.own_net import ResidualNet
from tests.tiny import save_tiny_checkpoint

OWN = {"_target_": "tests.own_net.ResidualNet", "width": 4}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "own_network.md"


def test_build_model_calls_the_target_with_the_other_keys():
    net = deblur.build_model(dict(OWN))
    assert isinstance(net, ResidualNet) and net.body[0].out_channels == 4
    assert not hasattr(net, "multiple")
    assert deblur.build_model(OWN, depth=3).body[2].in_channels == 4  # overrides apply to a _target_ too


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"_target_": "no_such_module_xyz.Net"}, r"model\._target_='no_such_module_xyz\.Net': cannot import"),
        ({"_target_": "tests.own_net.NoSuchNet"}, r"model\._target_=.*has no class 'NoSuchNet'"),
        ({"_target_": "tests.own_net.ResidualNet", "widht": 4},
         r"model\.widht is not an argument of tests\.own_net\.ResidualNet; its arguments: width, depth"),
    ],
)  # fmt: skip
def test_config_check_names_the_target_or_the_bad_key(model, message):
    with pytest.raises(UserError, match=message):
        check_train_config(OmegaConf.create({"model": model}))
    with pytest.raises(UserError, match=message):
        deblur.build_model(model)


def test_a_value_the_network_refuses_is_a_user_error_naming_the_target():
    refused = r"model\._target_='tests\.own_net\.ResidualNet' refused its arguments \(width=0\): width=0 must"
    with pytest.raises(UserError, match=refused):
        deblur.build_model({"_target_": "tests.own_net.ResidualNet", "width": 0})


def test_a_target_that_builds_no_module_is_refused():
    with pytest.raises(UserError, match=r"model\._target_='tests\.own_net\.not_a_network' built a int"):
        deblur.build_model({"_target_": "tests.own_net.not_a_network"})


def test_a_target_network_without_a_loss_gets_l1(compose_train):
    cfg = compose_train(*TINY_TRAIN[5:])
    with open_dict(cfg):
        cfg.model = OmegaConf.create(OWN)
        del cfg["loss"]
    assert with_default_loss(cfg) and cfg.loss.name == "l1"
    preset = compose_train()
    assert not with_default_loss(preset) and preset.loss.name == "msfs"  # a preset keeps its paper's loss


def test_the_loss_options_compose_with_their_defaults(compose_train):
    assert compose_train("loss=l1").loss.name == "l1"
    assert compose_train("loss=charbonnier").loss.eps == pytest.approx(1e-3)
    assert compose_train("loss=fft").loss.fft_weight == pytest.approx(0.1)
    with pytest.raises(UserError, match=r"loss\.fft_weight=-1.0: a number >= 0"):
        check_train_config(compose_train("loss=fft", "loss.fft_weight=-1"))


def test_a_user_config_folder_model_composes(compose_train, tmp_path):
    (tmp_path / "extra" / "model").mkdir(parents=True)
    (tmp_path / "extra" / "model" / "mynet.yaml").write_text(
        "_target_: tests.own_net.ResidualNet\nwidth: 4\n"
    )
    search = f"hydra.searchpath=[file://{tmp_path / 'extra'}]"
    cfg = compose_train(search, "model=mynet", "model.width=6", "+loss=fft")
    assert dict(cfg.model) == {"_target_": "tests.own_net.ResidualNet", "width": 6}
    assert cfg.loss.name == "fft"
    check_train_config(cfg)


def test_a_target_checkpoint_alone_restores_the_network(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "own.ckpt", model=dict(OWN))
    net, cfg = deblur.load_model(path)
    assert isinstance(net, ResidualNet) and cfg == OWN and not net.training
    with pytest.raises(CheckpointError, match=r"holds model 'tests\.own_net\.ResidualNet'.*differs in name"):
        deblur.load_model(path, model="msfs_small")


def test_a_target_network_trains_and_its_run_records_it(compose_train, tmp_path):
    cfg = compose_train("debug=limit", "trainer.max_epochs=1", "speed=fixed", *TINY_TRAIN[5:])
    with open_dict(cfg):
        cfg.model = OmegaConf.create(OWN)
        del cfg["loss"]
    from deblur.training import train

    payload = train(cfg)
    assert payload["model"] == "tests.own_net.ResidualNet" and payload["global_step"] == 3
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["config"]["loss"] == {"name": "l1"}
    net, saved = deblur.load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert isinstance(net, ResidualNet) and saved == OWN


def _doc_files(text: str) -> dict[str, str]:
    """The fenced blocks of the docs page whose info string names a file: ``{path: content}``."""
    return dict(re.findall(r"```\w+ (\S+)\n(.*?)```", text, flags=re.S))


@pytest.mark.slow
def test_the_docs_walk_runs_from_outside_the_package(tmp_path, monkeypatch):
    files = _doc_files(DOCS.read_text())
    assert set(files) == {"my_nets.py", "conf_extra/model/mynet.yaml"}
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    run = tmp_path / "run"
    tiny = ["debug=limit", "trainer.max_epochs=1", "speed=fixed", *TINY_TRAIN[5:], f"hydra.run.dir={run}"]
    done = subprocess.run(
        [sys.executable, "-m", "deblur.cli.train", "--config-dir", str(tmp_path / "conf_extra"),
         "model=mynet", *tiny],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "my_nets.TinyNet" and metrics["config"]["loss"]["name"] == "l1"

    monkeypatch.syspath_prepend(str(tmp_path))
    net, cfg = deblur.load_model(ckpt)
    assert type(net).__name__ == "TinyNet" and cfg == {"_target_": "my_nets.TinyNet", "width": 8, "depth": 2}

    from PIL import Image

    pixels = (torch.rand(20, 28, 3) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    done = subprocess.run(
        [sys.executable, "-m", "deblur.cli.predict", f"ckpt_path={ckpt}", f"input={tmp_path / 'photo.png'}",
         f"output={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'predict'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "photo.png").exists()
