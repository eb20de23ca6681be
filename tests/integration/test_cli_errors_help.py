"""Command-line errors and help (issue 18, items 7-9): a wrong override is one message naming the key and
its nearest valid keys (exit 2, before Hydra runs); a user error is printed once; ``--help`` says what a
command does, its required keys and examples, and lists its options without ``*_schema`` nodes."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys

import pytest

from deblur.cli.common import user_errors
from deblur.config.overrides import check_overrides
from deblur.errors import UserError

COMMANDS = ("train", "predict", "eval", "score", "analyze", "prepare", "convert", "bench")


@pytest.mark.parametrize(
    ("command", "override", "named"),
    [
        ("train", "trainer.max_step=10", "nearest valid keys: trainer.max_steps"),
        ("train", "model.width=abc", "model.width=abc: Value 'abc'"),
        ("predict", "tile_overlp=8", "nearest valid keys: tile_overlap"),
        ("score", "pred_dirr=x", "nearest valid keys: pred_dir"),
        ("bench", "tiling.enabld=false", "nearest valid keys: tiling.enabled"),
        ("eval", "model=fddx", "model='fddx' is not an option of 'model'; options: fddn,"),
        ("analyze", "hydra/launcher=nope", "options: basic, joblib, parallel"),
    ],
)
def test_a_wrong_override_is_one_message_naming_the_nearest_keys(
    command, override, named, monkeypatch, capsys
):
    module = importlib.import_module(f"deblur.cli.{command}")
    monkeypatch.setattr(sys, "argv", [f"deblur-{command}", override])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deblur-{command}: error: ") and named in err, err
    assert len(err.strip().splitlines()) == 1 and "To append" not in err and "_schema" not in err


def test_every_value_of_a_multirun_is_checked_before_any_job_runs():
    with pytest.raises(UserError, match=r"model\.width=abc: Value 'abc'"):
        check_overrides("train", ["model.width=8,abc", "seed=1,2,3"], multirun=True)
    with pytest.raises(UserError, match="nearest valid keys: trainer.max_steps"):
        check_overrides("train", ["trainer.max_step=5,10"], multirun=True)
    # Hydra's own forms stay: adding keys, forcing, deleting, hydra keys, sweeps Hydra's sweepers expand
    check_overrides(
        "train",
        ["+trainer.foo=1", "++seed=3", "~speed", "hydra.run.dir=x", "model=msfs_small,fddn_small",
         "optim.lr=interval(0.001,0.01)"],
        multirun=True,
    )  # fmt: skip


def test_a_user_error_is_printed_once_and_kept_in_the_run_log(tmp_path, capsys):
    root = logging.getLogger()
    console, logfile = logging.StreamHandler(sys.stdout), logging.FileHandler(tmp_path / "train.log")
    root.addHandler(console)
    root.addHandler(logfile)

    @user_errors("deblur-x")
    def task() -> None:
        raise UserError("data.root=/nowhere: not a folder")

    try:
        with pytest.raises(SystemExit):
            task()
    finally:
        root.removeHandler(console)
        root.removeHandler(logfile)
        logfile.close()
    out, err = capsys.readouterr()
    assert "not a folder" not in out and err.count("not a folder") == 1
    assert "UserError: data.root=/nowhere: not a folder" in (tmp_path / "train.log").read_text()


def test_a_missing_dataset_root_is_reported_before_the_speed_probe(compose_train, tmp_path, monkeypatch):
    import deblur.training as training
    from deblur.data.validate import DatasetError

    def probe(cfg, given):
        raise AssertionError("the speed probe ran before the dataset root was checked")

    monkeypatch.setattr("deblur.training_settings.probe_settings", probe)  # what train() decides through
    cfg = compose_train("data=pairs", f"data.root={tmp_path / 'nowhere'}", "speed=probe")
    with pytest.raises(DatasetError, match=r"dataset root does not exist: .*nowhere \(data\.root="):
        training.train(cfg)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    environment.pop("HYDRA_FULL_ERROR", None)  # as a user runs it
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=environment,
                          timeout=120)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_help_starts_with_what_the_command_does_its_required_keys_and_examples(command):
    result = _run(f"deblur.cli.{command}", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    head = text.split("== Configuration groups", 1)[0]
    assert text.startswith(f"deblur-{command}: ") and "\nRequired keys: " in head
    assert f"    deblur-{command}" in head  # an example
    assert "_schema" not in text and "powered by Hydra" not in text
    assert "== Flags ==" in text and "-sc install=bash" in text


@pytest.mark.slow
def test_a_wrong_override_from_the_shell_is_one_line_exit_2_and_completion_offers_no_schema(tmp_path):
    bad = _run("deblur.cli.train", "trainer.max_step=10", f"hydra.run.dir={tmp_path / 'run'}")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        "deblur-train: error: trainer.max_step=10: 'trainer' has no key 'max_step'; "
        "nearest valid keys: trainer.max_steps, trainer.max_time, trainer.min_steps"
    )
    assert not (tmp_path / "run").exists()
    line = "deblur-predict model="
    done = _run("deblur.cli.predict", "-sc", "query=bash", COMP_LINE=line, COMP_POINT=str(len(line)))
    assert done.returncode == 0 and "model=msfs_small" in done.stdout and "_schema" not in done.stdout


def test_a_failed_sweep_job_is_listed_in_jobs_md_next_to_the_finished_ones(tmp_path):
    import json

    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from deblur.sweeps import JobFailed, SweepSummary

    sweep = tmp_path / "sweep"
    (sweep / "0_seed=1").mkdir(parents=True)
    metrics = {"val/psnr": 25.0, "val/ssim": 0.8, "val/psnr_gain": 1.0, "steps": 6, "planned_steps": 6,
               "stopped_by": "max_steps", "model": "msfs", "config": {}}  # fmt: skip
    (sweep / "0_seed=1" / "metrics.json").write_text(json.dumps(metrics))
    failed = JobReturn(status=JobStatus.FAILED, _return_value=JobFailed("data.root=/x: not a folder"))
    failed.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(sweep / "1_seed=2")}}})
    SweepSummary().on_job_end(OmegaConf.create({}), failed)
    report = (sweep / "jobs.md").read_text()
    assert "| 0_seed=1 | 25.00 |" in report and "- 1_seed=2: data.root=/x: not a folder" in report


@pytest.mark.slow
def test_a_sweep_goes_on_after_a_failing_job_and_exits_2(tmp_path):
    from tests.integration.conftest import TINY_TRAIN

    tiny = ["debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "callbacks=none", "logger=none", "speed=fixed",
            *TINY_TRAIN]  # fmt: skip
    done = _run("deblur.cli.train", "-m", "study=failing", "trainer.max_steps=0,2", *tiny,
                PROJECT_ROOT=str(tmp_path), WANDB_MODE="disabled")  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("trainer.max_steps=0: an integer >= 1") == 1  # printed once
    report = (tmp_path / "logs" / "debug" / "multiruns" / "failing" / "jobs.md").read_text()
    assert "| 1_" in report and "max_steps |" in report  # the job after the failed one ran
    assert "Failed jobs" in report and "trainer.max_steps=0: an integer >= 1" in report
