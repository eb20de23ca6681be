"""Launcher, sweeper and strategy configs compose: SLURM (submitit) maps trainer.devices / num_nodes to
tasks per node / nodes, joblib runs local jobs in parallel, Optuna searches lambda1, lambda2 and lr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from deblur.config import register_configs
from deblur.paths import CONF_DIR
from deblur.training import build_strategy


def _compose_with_hydra(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_follows_devices_and_nodes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose_with_hydra("hydra/launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)


@pytest.mark.slow
def test_slurm_launcher_config_prints_with_cfg_hydra():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cmd = [sys.executable, "-m", "deblur.cli.train", "hydra/launcher=slurm", "trainer.devices=4",
           "trainer.num_nodes=2", "--cfg", "hydra", "-p", "hydra.launcher"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = OmegaConf.create(result.stdout.split("\n", 1)[1])  # after "# @package hydra.launcher"
    root = OmegaConf.create({"trainer": {"devices": 4, "num_nodes": 2}, "launcher": printed})
    assert root.launcher.tasks_per_node == 4 and root.launcher.nodes == 2 and root.launcher.gpus_per_node == 4


def test_joblib_launcher_and_study_sweep_dir():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    cfg = _compose_with_hydra("hydra/launcher=parallel", "study=msfs_ablation")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.sweep.dir.endswith("train/multiruns/msfs_ablation")
    assert "study" in cfg.hydra.job.config.override_dirname.exclude_keys


def test_optuna_search_maximises_validation_psnr_over_lambdas_and_lr():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = _compose_with_hydra("hparams_search=msfs_optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"loss.lambda_high", "loss.lambda_low", "optim.lr"}
    assert cfg.study == "msfs_optuna"


@pytest.mark.parametrize("name", ["auto", "ddp", "ddp_find_unused", "ddp_spawn", "ddp_cpu", "fsdp"])
def test_every_strategy_option_builds(name):
    cfg = _compose_with_hydra(f"strategy={name}")
    strategy = build_strategy(cfg)
    assert strategy == "auto" if name == "auto" else type(strategy).__name__.endswith("Strategy")
    if name == "ddp_spawn":
        assert strategy._start_method == "spawn"


@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    tiny = [
        "debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
        "callbacks=none", "model.width=8", "model.encoder_blocks=1", "model.latent_blocks=1",
        "model.decoder_blocks=1", "data.crop_size=32", "data.val_crop_size=32", "data.pairs_per_photo=1",
        "data.val_pairs_per_photo=1", "data.max_side=96", "data.repeats=1",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "deblur.cli.train", "-m", "hydra/launcher=parallel", "study=parallel",
           "hydra.sweep.subdir=job${hydra.job.num}", "seed=1,2", *tiny]  # fmt: skip
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    sweep = tmp_path / "logs" / "debug" / "multiruns" / "parallel"  # debug presets: their own root
    jobs = [json.loads(p.read_text()) for p in sweep.glob("job*/metrics.json")]
    assert sorted(job["config"]["seed"] for job in jobs) == [1, 2]
    # the two parallel jobs train alike: one decision for the study, made by one of them under a lock
    assert len({(job["precision"], job["channels_last"], job["settings_chosen_by"]) for job in jobs}) == 1
    assert (sweep / "training_settings.json").is_file()
    logs = "\n".join(p.read_text() for p in sweep.glob("job*/*.log"))
    assert logs.count("decided by this job") == 1 and logs.count("decided by an earlier job") == 1
