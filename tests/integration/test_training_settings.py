"""Training settings (precision, memory format) are decided once per run, per study and per resumed run,
stored in training_settings.json and recorded in metrics.json, jobs.md and the study tables."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from deblur.errors import UserError
from deblur.speed import training_probe
from deblur.speed.options import TrainingOptions
from deblur.speed.training_probe import TrainingSpeed
from deblur.training import train
from deblur.training_settings import (
    LOCK_FILE,
    SETTINGS_FILE,
    TrainingSettings,
    decide_training_settings,
    read_settings,
    shared_decision,
    write_settings,
)
from tests.integration.conftest import TINY_TRAIN

#: a job = 2 training steps and one validation batch; no callbacks or loggers
DEBUG = [
    "debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
    "callbacks=none", "logger=none",
]  # fmt: skip


class FakeProbe:
    """Stands in for :func:`deblur.speed.training_probe.choose_training_speed`: counts its calls and
    "chooses" NCHW fp32 (not the fixed rule's channels_last, so that a test sees where a value came from)."""

    def __init__(self, options: TrainingOptions | None = None) -> None:
        self.calls: list[dict] = []
        self.options = options or TrainingOptions(False, "32-true")

    def __call__(self, model_cfg, loss_cfg, device, **kwargs) -> TrainingSpeed:
        self.calls.append(kwargs)
        pinned = {k: kwargs[k] for k in ("channels_last", "precision") if kwargs.get(k) is not None}
        options = TrainingOptions(**{**self.options.as_dict(), **pinned})
        return TrainingSpeed(options, "probe", {options.label(): {"min_ms": 1.0}})


def _no_probe(*args, **kwargs):
    raise AssertionError("the training speed probe must not run here")


def test_metrics_json_names_the_resolved_precision_layout_device_and_how_chosen(compose_train, tmp_path):
    train(compose_train("debug=fdr", *TINY_TRAIN))  # a crop below the probe's minimum: the fixed rule
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["precision"] == "32-true" and metrics["channels_last"] is True
    assert metrics["settings_chosen_by"] == "rule" and metrics["torch"] == torch.__version__
    assert "(cpu" in metrics["device"]
    assert read_settings(tmp_path / SETTINGS_FILE).precision == "32-true"  # the run's stored decision


def test_given_settings_win_and_say_so(compose_train, tmp_path, monkeypatch):
    monkeypatch.setattr(training_probe, "choose_training_speed", _no_probe)
    cfg = compose_train("channels_last=false", "trainer.precision=32-true", *TINY_TRAIN)
    settings = decide_training_settings(cfg, tmp_path)
    assert (settings.precision, settings.channels_last, settings.chosen_by) == ("32-true", False, "given")


def test_a_resumed_run_keeps_its_settings_unless_given(compose_train, tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"hyper_parameters": {"channels_last": False}}, ckpt)
    started = TrainingSettings("bf16-mixed", False, "probe", "some cpu", torch.__version__)
    write_settings(run / SETTINGS_FILE, started)
    monkeypatch.setattr(training_probe, "choose_training_speed", _no_probe)
    kept = decide_training_settings(compose_train(*TINY_TRAIN), run, str(ckpt))
    assert (kept.precision, kept.channels_last, kept.chosen_by) == ("bf16-mixed", False, "probe")
    assert kept.decided_in == "resumed run"
    told = decide_training_settings(compose_train("trainer.precision=32-true", *TINY_TRAIN), run, str(ckpt))
    assert (told.precision, told.channels_last) == ("32-true", False)

    # a checkpoint from before the settings file: its channels_last is kept, the precision decided again
    (run / SETTINGS_FILE).unlink()
    probe = FakeProbe(TrainingOptions(True, "32-true"))
    monkeypatch.setattr(training_probe, "choose_training_speed", probe)
    older = decide_training_settings(compose_train(*TINY_TRAIN), run, str(ckpt))
    assert older.channels_last is False and probe.calls[0]["channels_last"] is False


def test_ddp_ranks_above_zero_read_rank_zeros_decision(compose_train, tmp_path, monkeypatch):
    monkeypatch.setattr(training_probe, "choose_training_speed", _no_probe)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr("deblur.training_settings.RANK_WAIT_S", 0.2)
    with pytest.raises(UserError, match="rank 0 decides"):
        decide_training_settings(compose_train(*TINY_TRAIN), tmp_path)
    write_settings(tmp_path / SETTINGS_FILE, TrainingSettings("bf16-mixed", False, "probe", "x", "y"))
    settings = decide_training_settings(compose_train(*TINY_TRAIN), tmp_path)
    assert (settings.precision, settings.channels_last) == ("bf16-mixed", False)
    assert settings.decided_in == "rank 0"


def _decide_in_a_process(folder: str, counter: str) -> None:
    def decide() -> TrainingSettings:
        with open(counter, "a") as f:
            f.write("probe\n")
        time.sleep(0.5)  # long enough for the other process to reach the lock
        return TrainingSettings("32-true", False, "probe", "cpu", torch.__version__)

    shared_decision(Path(folder), decide)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_parallel_jobs_of_a_sweep_decide_once(tmp_path):
    counter = tmp_path / "probes.txt"
    context = multiprocessing.get_context("fork")
    args = (str(tmp_path), str(counter))
    jobs = [context.Process(target=_decide_in_a_process, args=args) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(30)
        assert job.exitcode == 0
    assert counter.read_text().splitlines() == ["probe"]
    assert read_settings(tmp_path / SETTINGS_FILE).channels_last is False
    assert not (tmp_path / LOCK_FILE).exists()  # the sweep folder keeps no lock file


def _enter_the_lock_repeatedly(folder: str) -> None:
    from deblur.training_settings import _locked

    inside = Path(folder) / "inside"
    for _ in range(20):
        with _locked(Path(folder)):
            inside.touch(exist_ok=False)  # FileExistsError: another process is inside at the same time
            time.sleep(0.002)
            inside.unlink()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_the_self_removing_lock_still_admits_one_job_at_a_time(tmp_path):
    context = multiprocessing.get_context("fork")
    jobs = [context.Process(target=_enter_the_lock_repeatedly, args=(str(tmp_path),)) for _ in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
        assert job.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_broken_settings_file_is_one_message_naming_it(tmp_path):
    (tmp_path / SETTINGS_FILE).write_text("{not json")
    with pytest.raises(UserError, match=SETTINGS_FILE):
        read_settings(tmp_path / SETTINGS_FILE)


def test_jobs_table_and_study_table_name_precision_and_device(tmp_path):
    from deblur.analysis.tables import ablation_table, msfs_components, msfs_variant, summarize
    from deblur.sweeps import sweep_table

    for job, precision in (("job0", "32-true"), ("job1", "bf16-mixed")):
        (tmp_path / job).mkdir()
        payload = {
            "val/psnr": 20.0, "val/ssim": 0.5, "val/psnr_input": 18.0, "val/ssim_input": 0.4,
            "parameters": 10, "size_mb": 0.1, "val/psnr_gain": 2.0, "steps": 2, "stopped_by": "max_steps",
            "model": "msfs",
            "precision": precision, "channels_last": True, "device": "Some CPU (cpu, 2 threads)",
            "settings_chosen_by": "probe", "config": {"model": {"name": "msfs"}, "loss": {}},
        }  # fmt: skip
        (tmp_path / job / "metrics.json").write_text(json.dumps(payload))
    table = sweep_table(tmp_path)
    assert "| precision | device |" in table
    assert "| 32-true, channels_last (probe) | Some CPU (cpu, 2 threads) |" in table
    runs = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/metrics.json"))]
    one = ablation_table(summarize(runs[:1], msfs_components, msfs_variant), {}, "t")
    assert "Trained with precision 32-true, channels_last on Some CPU (cpu, 2 threads)" in one
    both = ablation_table(summarize(runs, msfs_components, msfs_variant), {}, "t")
    assert "Training settings differ between jobs" in both and "bf16-mixed" in both
    recipe = {"ema_decay": 0.999, "progressive": {"stages": [{"crop_size": 128}, {"crop_size": 160}]}}
    ema = ablation_table(summarize([{**runs[0], **recipe}, runs[0]], msfs_components, msfs_variant), {}, "t")
    said = "EMA of the weights (ema.decay=0.999), progressive patches (data.progressive, crop 128->160)"
    assert said in ema
    assert "Training settings differ between jobs" in ema  # an EMA job beside a plain one is said


@pytest.mark.slow
def test_a_two_job_multirun_probes_once_and_trains_both_jobs_alike(tmp_path, monkeypatch):
    """One in-process multirun (Hydra's basic launcher), the probe replaced by a counting stand-in."""
    from deblur.cli import train as train_cli

    probe = FakeProbe()
    monkeypatch.setattr(training_probe, "choose_training_speed", probe)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    argv = ["deblur-train", "-m", "study=settings", "hydra.sweep.subdir=job${hydra.job.num}", "seed=1,2",
            *DEBUG, *TINY_TRAIN]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    train_cli.main()
    sweep = tmp_path / "logs" / "debug" / "multiruns" / "settings"
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.glob("job*/metrics.json"))]
    assert len(jobs) == 2 and len(probe.calls) == 1
    for job in jobs:
        assert (job["precision"], job["channels_last"]) == ("32-true", False)
        assert job["settings_chosen_by"] == "probe"
    study = read_settings(sweep / SETTINGS_FILE)
    assert (study.precision, study.channels_last) == ("32-true", False)
    assert "| 32-true, NCHW (probe) |" in (sweep / "jobs.md").read_text()

    # a resume=true rerun whose job 1 starts again from nothing reads the study's decision: no new probe
    for name in ("metrics.json", "checkpoints", SETTINGS_FILE):
        target = sweep / "job1" / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    monkeypatch.setattr(sys, "argv", [*argv, "resume=true"])
    train_cli.main()
    again = json.loads((sweep / "job1" / "metrics.json").read_text())
    assert len(probe.calls) == 1 and (again["channels_last"], again["settings_chosen_by"]) == (False, "probe")


def test_a_study_decision_records_what_it_was_made_for_and_a_job_that_differs_says_so(
    compose_train, tmp_path, monkeypatch, caplog
):
    # the study's stored decision names the network, crop and batch it was made for; a later job of the
    # same study with another crop and network trains with it (one precision per study) and warns
    import logging

    from deblur import training_settings as ts

    sweep = tmp_path / "study"
    monkeypatch.setattr(ts, "sweep_folder", lambda: sweep)
    probe = FakeProbe()
    monkeypatch.setattr(training_probe, "choose_training_speed", probe)
    first = decide_training_settings(compose_train(*TINY_TRAIN), tmp_path / "job0")
    made_for = read_settings(sweep / SETTINGS_FILE).made_for
    assert made_for["crop_size"] == 32 and made_for["batch_size"] == 2 and "width=8" in made_for["model"]
    assert "(cpu" in made_for["device"] and first.made_for == made_for
    with caplog.at_level(logging.INFO, logger="deblur.training_settings"):
        same = decide_training_settings(compose_train(*TINY_TRAIN), tmp_path / "job1")
    assert "decided for another job" not in caplog.text and "differs_from_decision" not in same.detail
    other = [*TINY_TRAIN, "data.crop_size=64", "model.width=16"]
    with caplog.at_level(logging.WARNING, logger="deblur.training_settings"):
        again = decide_training_settings(compose_train(*other), tmp_path / "job2")
    assert len(probe.calls) == 1 and (again.precision, again.channels_last) == (first.precision, False)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(sweep / SETTINGS_FILE) in warning and "crop_size: decided for 32, this job 64" in warning
    assert "width=8" in warning and "width=16" in warning and "new study= name" in warning
    assert read_settings(tmp_path / "job2" / SETTINGS_FILE).detail["differs_from_decision"]


def test_a_progressive_run_is_decided_for_its_largest_stage_not_the_unused_data_crop(
    compose_train, tmp_path, monkeypatch
):
    probe = FakeProbe()
    monkeypatch.setattr(training_probe, "choose_training_speed", probe)
    stages = "data.progressive=[{step:0,crop_size:32,batch_size:2},{step:9,crop_size:48,batch_size:1}]"
    cfg = compose_train(*TINY_TRAIN, "data.crop_size=256", stages)
    decided = decide_training_settings(cfg, tmp_path / "j")
    assert (probe.calls[0]["size"], probe.calls[0]["batch"]) == (48, 1)  # data.crop_size=256 trains nothing
    assert (decided.made_for["crop_size"], decided.made_for["batch_size"]) == (48, 1)
