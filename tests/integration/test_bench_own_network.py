"""deblur-bench times a user's own network (a ``_target_`` model config in their ``--config-dir`` folder,
docs/own_network.md) like a preset: forward, train step with the loss deblur-train gives it (l1),
default_vs_best and fraction of peak; a name found nowhere or a bad key is one message."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from deblur.bench import networks
from deblur.errors import UserError
from deblur.paths import CONF_DIR

#: the smallest bench of one timed network: every other section off
TINY_OWN_BENCH = [
    "presets=[]", "mac_sizes=[[32,32]]", "forward.size=32", "forward.batch=1", "forward.hd=null",
    "train_step.size=32", "train_step.batch=1", "timing.warmup=0", "timing.repeats=1", "peak.widths=[8]",
    "peak.size=16", "peak.repeats=1", "loader.enabled=false", "analysis.enabled=false",
    "tiling.enabled=false", "precision_run.enabled=false", "gpu.enabled=false", "speed.mode=fixed",
    "targets_preset=mynet",
]  # fmt: skip

THEIR_NET = """import torch
from torch import nn


class TheirNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
"""


def _user_folder(root, yaml: str):
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "mynet.yaml").write_text(yaml)
    return root / "conf"


def _compose_with(folder):
    search = f"hydra.searchpath=[file://{folder}]"  # what --config-dir adds to the search path

    def _compose(overrides):
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            return compose("train", overrides=[search, *overrides])

    return _compose


def test_a_user_folder_network_is_a_preset_with_the_default_loss(tmp_path):
    folder = _user_folder(tmp_path, "_target_: tests.own_net.ResidualNet\nwidth: 4\n")
    model_cfg, loss_cfg = networks.preset_configs("mynet", _compose_with(folder))
    assert model_cfg == {"_target_": "tests.own_net.ResidualNet", "width": 4}
    assert loss_cfg == {"name": "l1"}  # with_default_loss: what deblur-train trains it with
    yaml = "defaults:\n  - /loss@_global_.loss: charbonnier\n  - _self_\n"
    yaml += "_target_: tests.own_net.ResidualNet\n"
    _, loss_cfg = networks.preset_configs("mynet", _compose_with(_user_folder(tmp_path / "named", yaml)))
    assert loss_cfg["name"] == "charbonnier"  # a loss its YAML names is kept


def test_an_unknown_name_or_a_bad_key_is_one_message(tmp_path):
    folder = _user_folder(tmp_path, "_target_: tests.own_net.ResidualNet\nwidht: 4\n")
    with pytest.raises(UserError, match=r"bench preset 'mynett'.*no model config model/mynett\.yaml.*mynet"):
        networks.preset_configs("mynett", _compose_with(folder))
    with pytest.raises(UserError, match=r"bench preset 'mynet': model\.widht is not an argument"):
        networks.preset_configs("mynet", _compose_with(folder))


@pytest.mark.slow
def test_deblur_bench_times_a_network_of_the_users_config_dir(tmp_path):
    (tmp_path / "their_nets.py").write_text(THEIR_NET)
    folder = _user_folder(tmp_path, "_target_: their_nets.TheirNet\nwidth: 4\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "deblur.cli.bench", "--config-dir", str(folder), "timed=[mynet]",
         *TINY_OWN_BENCH, f"output={out}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads((out / "bench.json").read_text())["models"]["mynet"]
    assert entry["model"] == {"_target_": "their_nets.TheirNet", "width": 4}
    assert entry["loss"] == {"name": "l1"}  # the loss deblur-train gives a _target_ network
    assert entry["params"] == 3 * 4 * 9 + 4 + 4 * 3 * 9 + 3
    assert entry["forward"]["fraction_of_peak"] > 0 and 0 < entry["forward"]["default_vs_best"] <= 1
    step = entry["train_step"]
    assert step["fp32"]["fraction_of_peak"] > 0 and 0 < step["default_vs_best"] <= 1
    assert "| mynet |" in (out / "bench.md").read_text()
