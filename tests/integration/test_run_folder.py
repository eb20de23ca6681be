"""A refusal changes nothing (docs/trust.md, issue 18 item 4): a run folder inside an input folder is refused
before Hydra writes there, a refused run puts back the ``.hydra/`` of the folder it was refused in, and a
failed command leaves no stub run folder (:mod:`deblur.run_folder`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

from deblur.cli.score import main as score_command
from deblur.cli.train import _train_job
from deblur.config import register_configs
from deblur.io import write_image
from deblur.paths import CONF_DIR, REPO_ROOT
from deblur.run_folder import RunFolderGuard, claim_run_folder, undo_run_folder
from tests.integration.conftest import TINY_TRAIN
from tests.unit.test_datasets import make_flat


@pytest.fixture(autouse=True)
def _fresh_hydra_config():
    yield
    undo_run_folder()  # forget any run folder a test left remembered
    HydraConfig.instance().cfg = None


def _with_hydra(config_name: str, *overrides: str) -> DictConfig:
    """The command's config as Hydra hands it to the callbacks (with the ``hydra`` node)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)


def _task_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """What the task function gets: no ``hydra`` node, ``paths.output_dir`` = the run folder."""
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = str(run_dir)
    return cfg


def _hydra_writes(run_dir: Path, log: str, text: str = "new") -> None:
    """What Hydra's run_job does between the callbacks' on_run_start and the task function."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run_dir / ".hydra" / name).write_text(f"{text}: {name}\n")
    with (run_dir / log).open("a") as fh:
        fh.write("a log line\n")


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _score_folders(root: Path) -> tuple[Path, Path]:
    flat = make_flat(root, "pred", "gt")
    return flat / "test" / "pred", flat / "test" / "gt"


def test_a_run_folder_inside_an_input_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    pred, gt = _score_folders(tmp_path / "data")
    before = _tree(tmp_path / "data")
    for run_dir, key in ((pred, "pred_dir"), (pred / "run", "pred_dir"), (gt / "a" / "b", "gt_dir")):
        cfg = _with_hydra("score", f"pred_dir={pred}", f"gt_dir={gt}", f"hydra.run.dir={run_dir}")
        with pytest.raises(SystemExit) as exit_info:
            RunFolderGuard().on_run_start(cfg)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("error:") == 1
        assert f"hydra.run.dir={run_dir} is inside the input folder {key}=" in err
    assert _tree(tmp_path / "data") == before and not (pred / "run").exists()
    # other commands' inputs: data.root (train, also a sweep folder), roots.* (eval), input (predict)
    cfg = _with_hydra("train", "data=pairs", f"data.root={tmp_path / 'data'}", f"hydra.sweep.dir={pred}/s")
    with pytest.raises(SystemExit):
        RunFolderGuard().on_multirun_start(cfg)
    assert "hydra.sweep.dir=" in capsys.readouterr().err
    cfg = _with_hydra("eval", "ckpt_path=x.ckpt", f"roots.pairs={tmp_path / 'data'}", f"hydra.run.dir={gt}")
    with pytest.raises(SystemExit):
        RunFolderGuard().on_run_start(cfg)
    assert "roots.pairs=" in capsys.readouterr().err
    cfg = _with_hydra(
        "predict", "ckpt_path=x", f"input='{pred}/*.png'", "output=o", f"hydra.run.dir={pred}/r"
    )
    with pytest.raises(SystemExit):
        RunFolderGuard().on_run_start(cfg)
    assert "input=" in capsys.readouterr().err
    assert _tree(tmp_path / "data") == before
    # a run folder beside the inputs is fine
    cfg = _with_hydra("score", f"pred_dir={pred}", f"gt_dir={gt}", f"hydra.run.dir={tmp_path / 'run'}")
    RunFolderGuard().on_run_start(cfg)


def test_a_failed_command_leaves_no_stub_run_folder_but_keeps_other_folders(tmp_path, capsys):
    pred, _ = _score_folders(tmp_path / "data")
    for run_dir, extra in ((tmp_path / "new", None), (tmp_path / "busy", "notes.txt")):
        cfg = _with_hydra(
            "score", f"pred_dir={pred}", f"gt_dir={tmp_path / 'nowhere'}", f"hydra.run.dir={run_dir}"
        )
        RunFolderGuard().on_run_start(cfg)
        _hydra_writes(run_dir, "score.log")
        (run_dir / "csv").mkdir()  # an empty folder (e.g. a logger's) holds nothing either
        if extra:
            (run_dir / extra).write_text("written by the run")
        with pytest.raises(SystemExit) as exit_info:
            score_command(_task_config(cfg, run_dir))
        assert exit_info.value.code == 2 and "gt_dir does not exist" in capsys.readouterr().err
        assert run_dir.exists() == bool(extra)  # created here, only .hydra/ and the log: removed


def test_a_refused_training_run_puts_back_the_hydra_files_of_the_run_it_was_refused_in(tmp_path, capsys):
    run = tmp_path / "run"
    _hydra_writes(run, "train.log", text="the earlier run")
    (run / "metrics.json").write_text("{}")
    before = _tree(run)
    cfg = _with_hydra("train", f"hydra.run.dir={run}", "speed=fixed", *TINY_TRAIN)
    RunFolderGuard().on_run_start(cfg)
    _hydra_writes(run, "train.log", text="the refused run")  # today: the earlier run's record is replaced
    with pytest.raises(SystemExit) as exit_info:
        _train_job(_task_config(cfg, run))
    assert exit_info.value.code == 2 and "already holds a run" in capsys.readouterr().err
    assert _tree(run) == before  # .hydra/ byte-identical, train.log as it was

    # a run that claimed its folder (it writes there) keeps what Hydra wrote for it
    RunFolderGuard().on_run_start(cfg)
    _hydra_writes(run, "train.log", text="the resumed run")
    claim_run_folder()
    undo_run_folder()
    assert "the resumed run" in (run / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_score_command_writes_nothing_into_its_inputs_and_leaves_no_stub(tmp_path):
    pred, gt = _score_folders(tmp_path / "data")
    write_image(pred / "extra.png", np.zeros((4, 4, 3), np.uint8))
    before = _tree(tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "deblur.cli.score", f"pred_dir={pred}", f"gt_dir={gt}"]
    inside = subprocess.run(
        [*base, f"hydra.run.dir={pred}"], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )
    assert inside.returncode == 2 and "Traceback" not in inside.stderr
    assert "is inside the input folder pred_dir=" in inside.stderr
    assert _tree(tmp_path / "data") == before and not (pred / ".hydra").exists()
    stub = tmp_path / "stub"
    failed = subprocess.run(
        [*base, f"hydra.run.dir={stub}"], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )  # extra.png has no ground truth: a user error after Hydra wrote .hydra/ and score.log
    assert failed.returncode == 2 and "without ground truth" in failed.stderr
    assert not stub.exists()


def test_sweep_jobs_are_put_back_or_removed_like_single_runs(tmp_path):
    from hydra.types import RunMode

    sweep = tmp_path / "sweep"
    earlier = sweep / "0_ablation=msfs-full"
    _hydra_writes(earlier, "train.log", text="the earlier job")
    (earlier / "metrics.json").write_text("{}")
    before = _tree(earlier)
    cfg = _with_hydra("train", f"hydra.sweep.dir={sweep}")
    RunFolderGuard().on_multirun_start(cfg)
    for job in (earlier, sweep / "1_ablation=msfs-no_clm"):  # a job folder already there, a new one
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.runtime.output_dir = str(job)
        HydraConfig.instance().set_config(cfg)
        _hydra_writes(job, "train.log", text="the refused job")
        RunFolderGuard().on_job_start(cfg)
        undo_run_folder()  # what a user error does
    assert _tree(earlier) == before and not (sweep / "1_ablation=msfs-no_clm").exists()


def test_what_a_run_writes_before_training_still_counts_as_a_stub(tmp_path, capsys):
    pred, _ = _score_folders(tmp_path / "data")
    run_dir = tmp_path / "new"
    cfg = _with_hydra(
        "score", f"pred_dir={pred}", f"gt_dir={tmp_path / 'nowhere'}", f"hydra.run.dir={run_dir}"
    )
    RunFolderGuard().on_run_start(cfg)
    _hydra_writes(run_dir, "score.log")
    (run_dir / "csv").mkdir()
    (run_dir / "csv" / "hparams.yaml").write_text("{}")  # the CSV logger's, written at setup
    (run_dir / "training_settings.json").write_text("{}")  # the precision decision, before training
    with pytest.raises(SystemExit):
        score_command(_task_config(cfg, run_dir))
    capsys.readouterr()
    assert not run_dir.exists()


def test_a_resume_refused_for_its_checkpoint_puts_back_the_runs_hydra_files(tmp_path, capsys):
    run = tmp_path / "run"
    _hydra_writes(run, "train.log", text="the earlier run")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")  # empty: refused naming the file
    before = _tree(run)
    cfg = _with_hydra("train", f"hydra.run.dir={run}", "speed=fixed", "ckpt_path=last", *TINY_TRAIN)
    RunFolderGuard().on_run_start(cfg)
    _hydra_writes(run, "train.log", text="the refused resume")
    with pytest.raises(SystemExit) as exit_info:
        _train_job(_task_config(cfg, run))
    assert exit_info.value.code == 2 and "last.ckpt" in capsys.readouterr().err
    assert _tree(run) == before  # the refusal came before the run claimed the folder
