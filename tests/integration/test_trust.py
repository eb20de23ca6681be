"""Trust in deblur-train (docs/trust.md): no run that trains nothing or diverges reports success, no run
loses what an earlier part recorded, every stop and every resume says what happened, every bad value names
its key."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import lightning as L
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from deblur.cli.train import _train_job
from deblur.config.checks import check_train_config
from deblur.config.choices import check_group_choices, flat_name, group_options
from deblur.data.datamodule import DeblurDataModule
from deblur.data.validate import DatasetError
from deblur.errors import UserError
from deblur.paths import CONF_DIR
from deblur.sweeps import SweepSummary
from deblur.training import (
    TrainingDiverged,
    route_logs_to_run_file,
    train,
    unwrap_worker_error,
)
from tests.integration.conftest import TINY_TRAIN
from tests.unit.test_datasets import blurry_image, sharp_image

#: 3 steps per epoch, a validation and last.ckpt after each epoch
LIMIT = ["debug=limit", "callbacks.frequency_gap=null", *TINY_TRAIN]
TINY_MODEL = TINY_TRAIN[:5]


def _add_callback(cfg, name: str, target: str, **kwargs) -> None:
    with open_dict(cfg):
        cfg.callbacks[name] = {"_target_": target, **kwargs}


def _pairs_dataset(root: Path, good: int, bad: int = 0) -> Path:
    """data=pairs folders with ``good`` pairs of 32x32 images and ``bad`` pairs whose sizes differ."""
    for i in range(good + bad):
        h = 32 if i < good else 40
        for side, image in (("blurry", blurry_image(i, 32, 32)), ("sharp", sharp_image(i, h, 32))):
            (root / side).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / side / f"{i:03d}.png"), image[:, :, ::-1])
    return root


def _pairs_overrides(root: Path, *extra: str) -> list[str]:
    return [
        "data=pairs", f"data.root={root}", "data.crop_size=16", "data.val_crop_size=16", "data.num_workers=0",
        "data.persistent_workers=false", "data.pin_memory=false", *TINY_MODEL, *extra,
    ]  # fmt: skip


# ---------------------------------------------------------------- 3: a run that trains nothing fails
def test_fewer_pairs_than_one_batch_fail_naming_the_count_and_the_batch_size(compose_train, tmp_path):
    root = _pairs_dataset(tmp_path / "data", good=1)
    out = tmp_path / "run"
    cfg = compose_train(
        *_pairs_overrides(root, "data.batch_size=2"), "debug=limit", f"paths.output_dir={out}"
    )
    with pytest.raises(DatasetError, match=r"1 training pair\(s\) fill no batch of data.batch_size=2"):
        train(cfg)
    assert not (out / "metrics.json").exists()
    assert not (out / "checkpoints" / "last.ckpt").exists()


def test_bad_pairs_skipped_below_one_batch_fail_too(tmp_path):
    root = _pairs_dataset(tmp_path / "data", good=1, bad=2)
    data = {"name": "pairs", "root": str(root), "crop_size": 16, "batch_size": 2, "on_bad_pair": "skip"}
    module = DeblurDataModule(data)
    with pytest.raises(DatasetError, match=r"1 training pair\(s\) \(after data.on_bad_pair=skip"):
        module.setup("fit")
    DeblurDataModule({**data, "batch_size": 1}).setup("fit")  # one pair fills a batch of one


def test_a_run_stopped_before_its_first_step_fails(compose_train, tmp_path):
    cfg = compose_train(*LIMIT, "trainer.max_time=00:00:00:00")
    with pytest.raises(UserError, match="0 optimizer steps.*max_time"):
        train(cfg)
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- 4 and 5: resume keeps history, says where
def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_resume_appends_to_the_csv_log_and_the_curve_covers_the_whole_run(compose_train, tmp_path, capsys):
    train(compose_train(*LIMIT, "trainer.max_epochs=1"))
    first = _rows(tmp_path / "csv" / "metrics.csv")
    assert {r["step"] for r in first} >= {"0", "1", "2"}
    resumed = train(compose_train(*LIMIT, "trainer.max_epochs=2", "ckpt_path=last"))
    assert (
        f"resuming from {tmp_path / 'checkpoints' / 'last.ckpt'} (step 3, epoch 0)" in capsys.readouterr().out
    )
    rows = _rows(tmp_path / "csv" / "metrics.csv")
    assert resumed["steps"] == 6 and resumed["resumed_from_step"] == 3
    kept = [{k: v for k, v in r.items() if v} for r in rows[: len(first)]]
    assert kept == [{k: v for k, v in r.items() if v} for r in first]  # the first part's rows, unchanged
    assert any(r["step"] == "5" and r["train/loss"] for r in rows[len(first) :])  # then the new ones
    history = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert [step for step, _, _ in history["TrainingFigures"]["history"]] == [3, 6]


def test_ckpt_path_last_without_a_checkpoint_names_the_folder_and_the_fix(compose_train, tmp_path):
    for which in ("last", "best"):
        with pytest.raises(
            UserError, match=rf"no checkpoint to resume in this run's folder {tmp_path}"
        ) as err:
            train(compose_train(*LIMIT, f"ckpt_path={which}"))
        assert f"hydra.run.dir=<run folder> ckpt_path={which}" in str(err.value) and "resume=true" in str(
            err.value
        )
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*nothing.ckpt"):
        train(compose_train(*LIMIT, f"ckpt_path={tmp_path / 'nothing.ckpt'}"))


def test_a_new_run_never_overwrites_a_folder_that_holds_a_run(compose_train, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"a run's checkpoint")
    with pytest.raises(UserError, match="already holds a run.*ckpt_path=last"):
        train(compose_train(*LIMIT))
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"a run's checkpoint"


# ---------------------------------------------------------------- 6: why a run stopped
class Slow(L.Callback):
    """Makes every training step last ``seconds`` longer (a run that max_time cuts short)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)


def test_max_time_stop_is_recorded_said_and_resumable_only_with_more_time(compose_train, tmp_path, capsys):
    overrides = [*LIMIT, "trainer.max_time=00:00:00:02", "resume=true"]
    cfg = compose_train(*overrides)
    _add_callback(cfg, "slow", f"{__name__}.Slow", seconds=1.1)
    payload = train(cfg)
    assert payload["stopped_by"] == "max_time" and payload["planned_steps"] == 6
    steps = payload["steps"]
    assert 1 <= steps < 6
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert (stored["stopped_by"], stored["steps"]) == ("max_time", steps)
    out = capsys.readouterr().out
    assert f"stopped by max_time at step {steps} of 6" in out and "raise trainer.max_time" in out

    # the same time limit: the sweep skips the job, saying which key to raise; ckpt_path=last refuses
    assert train(compose_train(*overrides)) == stored
    assert "skipping" in capsys.readouterr().out
    with pytest.raises(UserError, match="raise trainer.max_time"):
        train(compose_train(*LIMIT, "trainer.max_time=00:00:00:02", "ckpt_path=last"))
    # more time: the job continues from last.ckpt and completes
    done = train(compose_train(*LIMIT, "trainer.max_time=00:01:00:00", "resume=true"))
    assert (done["stopped_by"], done["steps"], done["resumed_from_step"]) == ("max_epochs", 6, steps)
    assert "stopped by max_epochs at step 6 of 6" in capsys.readouterr().out


# ---------------------------------------------------------------- 8: NaN keeps the last finite state
class Poison(L.Callback):
    """Sets every weight to NaN after optimizer step ``step`` (before that step's validation)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_nan_keeps_the_last_finite_checkpoint_and_names_its_step(compose_train, tmp_path):
    cfg = compose_train(*LIMIT, "trainer.max_epochs=3")
    _add_callback(cfg, "poison", f"{__name__}.Poison", step=6)
    with pytest.raises(TrainingDiverged, match="stopped by nan.*global step 6.*kept from step 3") as err:
        train(cfg)
    assert isinstance(err.value, FloatingPointError)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3  # not the NaN state of the validation at 6, nor of the error at 7
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point())
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- 12: user errors are one message
def test_train_command_prints_a_user_error_as_one_message_with_exit_code_2(compose_train, tmp_path, capsys):
    missing = f"data.root={tmp_path / 'missing'}"
    cfg = compose_train("data=pairs", missing, "data.num_workers=0", "speed=fixed", *TINY_MODEL)
    with pytest.raises(SystemExit) as exit_:
        _train_job(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("deblur-train: error: data=pairs: dataset root does not exist")
        and "Traceback" not in err
    )


def test_a_user_error_raised_in_a_loader_worker_comes_back_as_its_message(tmp_path):
    from deblur.data.on_disk import FilePairDataset

    good = tmp_path / "good.png"
    assert cv2.imwrite(str(good), sharp_image(0))
    missing = tmp_path / "gone.png"  # removed after listing: read_rgb raises DatasetError in the worker
    loader = torch.utils.data.DataLoader(FilePairDataset([(missing, good, "gone.png")]), num_workers=1)
    with pytest.raises(DatasetError) as raised:
        next(iter(loader))
    assert raised.value.args[0].startswith("Caught DatasetError in DataLoader worker process 0")
    unwrapped = unwrap_worker_error(raised.value)
    assert isinstance(unwrapped, DatasetError)
    assert str(unwrapped) == f"cannot read image file {missing} (missing, unreadable or corrupt)"
    bug = ValueError(
        "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "/usr/lib/python3/site-packages/numpy/x.py", line 1, in f\nValueError: bad'
    )
    assert unwrap_worker_error(bug) is bug  # not ours: a bug keeps its traceback
    import deblur.data.augment

    ours = ValueError(  # raised by the suite's own code anywhere in the package, not only in training/
        "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        f'last):\n  File "{deblur.data.augment.__file__}", line 1, in f\nValueError: bad crop'
    )
    unwrapped = unwrap_worker_error(ours)
    assert type(unwrapped) is UserError and str(unwrapped) == "bad crop"


# ---------------------------------------------------------------- 13: bad values name their key
@pytest.mark.parametrize(
    "override, message",
    [
        ("+model.foo=1", "model.foo is not an option of model=msfs; options: in_channels, width,"),
        ("model.width=3", "model.width=3: MSFSNet needs an even integer >= 2"),
        ("data.crop_size=-1", "data.crop_size=-1: an integer >= 1 or null"),
        ("optim.lr=-1", "optim.lr=-1.0: a learning rate > 0"),
        ("data.batch_size=0", "data.batch_size=0: an integer >= 1"),
        ("trainer.max_steps=0", "trainer.max_steps=0: an integer >= 1, or -1"),
        ("trainer.max_time=8h", "trainer.max_time='8h': DD:HH:MM:SS"),
        ("+loss.lambda_hi=0.1", "loss.lambda_hi is not an option of loss=msfs"),
    ],
)
def test_bad_values_name_their_key_before_anything_is_built(compose_train, tmp_path, override, message):
    with pytest.raises(UserError) as err:
        train(compose_train(override))
    assert message in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing built, nothing written


def test_every_problem_is_listed_in_one_message(compose_train):
    with pytest.raises(UserError, match=r"2 bad config values:\n  model.width=3: .*\n  optim.lr=0.0"):
        check_train_config(compose_train("model.width=3", "optim.lr=0"))
    check_train_config(compose_train("experiment=msfs_gopro", "data.root=/data"))  # the paper recipes pass
    check_train_config(compose_train("experiment=fddn_gopro", "data.root=/data"))


# ---------------------------------------------------------------- 15: schema nodes are no option
def test_group_choices_hide_schema_nodes_and_catch_typos_in_sweeps():
    assert "fddn_schema" not in group_options(CONF_DIR, "model") and "fddn_small" in group_options(
        CONF_DIR, "model"
    )
    for override in ("model=fddx", "model=msfs,fddx", "model=choice(msfs, fddx)"):
        with pytest.raises(ValueError, match="model='fddx' is not an option of 'model'") as err:
            check_group_choices([override], CONF_DIR)
        assert "_schema" not in str(err.value) and "msfs_small" in str(err.value)
    check_group_choices(["model=choice(msfs,fddn)", "model=glob(*)"], CONF_DIR)


# ---------------------------------------------------------------- 18: train.log holds the run's log
def test_the_run_log_file_gets_lightnings_messages_and_the_final_table(compose_train, tmp_path):
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "train.log")  # what Hydra's job logging adds
    root.addHandler(handler)
    try:
        train(compose_train("debug=fdr", *TINY_TRAIN))
    finally:
        root.removeHandler(handler)
        handler.close()
        route_logs_to_run_file()  # detaches the closed handler again
    text = (tmp_path / "train.log").read_text()
    assert "Final validation (1 steps" in text and "stopped by fast_dev_run at step 1" in text
    assert "`Trainer.fit` stopped" in text or "Running in `fast_dev_run` mode" in text  # Lightning's own
    assert handler not in logging.getLogger("lightning.pytorch").handlers


# ---------------------------------------------------------------- 19: flat job folders, the sweep's table
def test_job_folder_names_are_flat_and_the_sweep_prints_its_table(compose_train, tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    assert flat_name("ablation=msfs/full,seed=1") == "ablation=msfs-full,seed=1"
    assert len(flat_name("data.root=/" + "x" * 300)) == 120 and "/" not in flat_name("a/" * 100)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["ablation=msfs/full"], return_hydra_config=True)
    cfg.hydra.job.num, cfg.hydra.job.override_dirname = 3, "ablation=msfs/full"
    assert cfg.hydra.sweep.subdir == "3_ablation=msfs-full"

    sweep = tmp_path / "msfs_ablation"  # study=msfs_ablation: its collector writes Table 4 too
    for job, psnr, lambda_high in (
        ("0_ablation=msfs-full", 25.0, 0.005),
        ("1_ablation=msfs-no_clm", 24.5, 0.0),
    ):
        (sweep / job).mkdir(parents=True)
        config = {"model": {"name": "msfs"}, "loss": {"lambda_high": lambda_high, "lambda_low": 0.005}}
        metrics = {"val/psnr": psnr, "val/ssim": 0.8, "val/psnr_input": 24.0, "val/ssim_input": 0.7,
                   "val/psnr_gain": psnr - 24.0, "model": "msfs", "parameters": 1000, "size_mb": 0.004,
                   "steps": 6, "planned_steps": 6, "stopped_by": "max_steps", "config": config}  # fmt: skip
        (sweep / job / "metrics.json").write_text(json.dumps(metrics))
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    table = (sweep / "jobs.md").read_text()
    assert "| 0_ablation=msfs-full | 25.00 | 0.8000 | +1.00 | 6 / 6 | max_steps |" in table
    out = capsys.readouterr().out
    assert table in out and "| msfs/no_clm |" in out and (sweep / "results.md").exists()


@pytest.mark.slow
def test_train_command_user_error_and_a_flat_sweep_from_the_shell(tmp_path):
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "deblur.cli.train"]
    missing = subprocess.run(
        [*base, "data=pairs", f"data.root={tmp_path / 'nowhere'}", "speed=fixed",
         f"hydra.run.dir={tmp_path / 'bad'}"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) < 12
    assert "deblur-train: error: data=pairs: dataset root does not exist" in missing.stderr
    assert not (tmp_path / "bad").exists()  # the failed run's stub folder (.hydra/, train.log) is removed

    tiny = ["debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "callbacks=none", "logger=none", *TINY_TRAIN]  # fmt: skip
    sweep = subprocess.run(
        [*base, "-m", "study=flat", "ablation=msfs/full,msfs/no_clm", *tiny],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    folder = tmp_path / "logs" / "debug" / "multiruns" / "flat"  # debug presets: their own root
    jobs = sorted(p.parent.name for p in folder.glob("*/metrics.json"))
    assert (
        len(jobs) == 2
        and jobs[0].startswith("0_ablation=msfs-full,")
        and jobs[1].startswith("1_ablation=msfs-no_clm,")
    )
    assert f"Jobs of {folder} (2 with metrics.json)" in sweep.stdout and (folder / "jobs.md").exists()
    assert "Final validation" in (folder / jobs[0] / "train.log").read_text()


def test_weights_poisoned_at_the_last_step_leave_no_image_figure_or_checkpoint(compose_train, tmp_path):
    cfg = compose_train(*TINY_TRAIN, "speed=fixed", "trainer.max_steps=3", "trainer.val_check_interval=100")
    _add_callback(cfg, "poison", f"{__name__}.Poison", step=3)  # then the final validation (ValidateAtEnd)
    with pytest.raises(TrainingDiverged):  # not FrequencyGap's ValueError about NaN entropies
        train(cfg)
    written = {p.name for p in tmp_path.rglob("*.png")}
    assert not written and not (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "metrics.json").exists()
