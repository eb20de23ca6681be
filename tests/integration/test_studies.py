"""Every study of experiments/ end to end on the CPU at debug size: its multirun (one subprocess, the
basic launcher), then its collector's results.md; the cross-dataset study trains on a fake GoPro tree and
scores the checkpoint on fake GoPro, HIDE, RealBlur-J and RealBlur-R trees."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deblur.analysis.methods import MethodMismatch
from deblur.cli.train import train
from deblur.config.inference_settings import InferenceSettings
from deblur.evaluation import evaluate
from deblur.paths import REPO_ROOT
from tests.integration.conftest import TINY_TRAIN
from tests.unit.test_datasets import make_gopro, make_hide, make_realblur

EXPERIMENTS = REPO_ROOT / "experiments"
#: a job = 2 training steps and one validation batch; no callbacks or loggers
DEBUG = [
    "debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
    "callbacks=none", "logger=none",
]  # fmt: skip
FDDN_TINY = ["model=fddn_small", "loss.pretrained=false", "model.num_fdb=1", *TINY_TRAIN[5:]]


def _collector(study: str):
    spec = importlib.util.spec_from_file_location(f"collect_{study}", EXPERIMENTS / study / "collect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _multirun(root: Path, study: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROJECT_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    # job folders by number: the many debug overrides would make a too long override_dirname
    subdir = "hydra.sweep.subdir=job${hydra.job.num}"
    cmd = [sys.executable, "-m", "deblur.cli.train", "-m", f"study={study}", subdir, *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines()[4:] if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


@pytest.mark.slow
def test_msfs_ablation_study_multirun_collects_table4_and_resumes_only_unfinished_jobs(tmp_path):
    ablations = "ablation=msfs/full,msfs/no_clm"
    _multirun(tmp_path, "msfs_ablation", ablations, *DEBUG, *TINY_TRAIN)
    sweep = tmp_path / "logs" / "debug" / "multiruns" / "msfs_ablation"  # fixed by study=
    jobs = sorted(sweep.rglob("metrics.json"))
    assert len(jobs) == 2
    results = _collector("msfs_ablation").collect([sweep])
    rows = _table_rows(results.read_text())
    assert [r[0] for r in rows] == ["msfs/no_clm", "msfs/full"]
    assert rows[0][1:5] == ["✓", "✓", "✗", "✓"] and rows[1][1:5] == ["✓"] * 4
    assert rows[1][-2:] == ["32.73", "0.959"]  # the paper's numbers beside ours
    assert float(rows[1][5]) > 0 and float(rows[1][8]) > 0  # our PSNR, size in MB

    # rerun with resume=true: the finished job is skipped, the unfinished one runs again
    finished, unfinished = jobs
    stamp = finished.stat().st_mtime_ns
    unfinished.unlink()
    result = _multirun(tmp_path, "msfs_ablation", ablations, *DEBUG, *TINY_TRAIN, "resume=true")
    assert "job already finished; skipping" in result.stdout
    assert finished.stat().st_mtime_ns == stamp and unfinished.exists()


@pytest.mark.slow
def test_fddn_ablation_study_multirun_collects_table5(tmp_path):
    _multirun(tmp_path, "fddn_ablation", "ablation=fddn/full,fddn/no_fsb", *DEBUG, *FDDN_TINY)
    sweep = tmp_path / "logs" / "debug" / "multiruns" / "fddn_ablation"
    results = _collector("fddn_ablation").collect([sweep])
    text = results.read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["fddn/no_fsb", "fddn/full"]
    assert rows[0][1:4] == ["✓", "✗", "✗"] and rows[1][1:4] == ["✓", "✓", "✓"]
    assert rows[1][-3:] == ["31.42", "0.923", "8.08"]
    assert "Frequency Distillation Block" in text and "Size (MB)" in text


def test_cross_dataset_study_trains_on_gopro_and_collects_table3(compose_train, tmp_path):
    gopro = make_gopro(tmp_path / "GOPRO_Large", h=32, w=32)
    run = tmp_path / "train"
    train(
        compose_train(
            "data=gopro", f"data.root={gopro}", "data.crop_size=16", "data.batch_size=2",
            "data.num_workers=0", "data.val_crop_size=16", *DEBUG[:4], "callbacks=default",
            "callbacks.frequency_gap=null", *TINY_TRAIN[:5], f"paths.output_dir={run}",
        )  # fmt: skip
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    roots = {
        "gopro": gopro,
        "hide": make_hide(tmp_path / "HIDE_dataset"),
        "realblur_j": make_realblur(tmp_path / "RealBlurJ", "J"),
        "realblur_r": make_realblur(tmp_path / "RealBlurR", "R"),
    }
    evaluate(ckpt, list(roots), roots, settings=InferenceSettings(device="cpu"), output_dir=tmp_path / "eval")
    table = _collector("cross_dataset").collect(tmp_path / "eval").read_text()
    header = table.splitlines()[2]
    assert "GoPro PSNR" in header and "HIDE PSNR" in header and "RealBlur-R SSIM" in header
    rows = _table_rows(table)
    assert rows[0][0].startswith("ours: `msfs`") and len(rows[0]) == 9
    assert rows[1] == ["MSFS-Net (paper)", "32.73", "0.959", "-", "-", "28.97", "0.908", "36.02", "0.959"]
    assert "Network run in fp32 on " in table  # the precision and device of the numbers
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["datasets"]["hide"]["count"] == 3


def _fake_job(folder: Path, model: str, config_model: dict, psnr: float) -> None:
    """A finished job's metrics.json as deblur.training writes it (the keys the collectors read)."""
    folder.mkdir(parents=True)
    payload = {
        "val/psnr": psnr, "val/ssim": 0.8, "val/psnr_input": 20.0, "val/ssim_input": 0.6,
        "parameters": 1000, "size_mb": 0.01, "model": model, "ablation": None,
        "config": {"model": config_model, "loss": {"lambda_high": 0.1, "lambda_low": 0.1}},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(payload))


@pytest.mark.parametrize(
    ("study", "own", "full"),
    [("msfs_ablation", {"name": "msfs"}, "msfs/full"), ("fddn_ablation", {"name": "fddn"}, "fddn/full")],
)
def test_ablation_collectors_show_a_nafnet_job_as_its_baseline_row(tmp_path, study, own, full):
    _fake_job(tmp_path / "job0", own["name"], own, 25.0)
    _fake_job(tmp_path / "job1", "nafnet", {"name": "nafnet", "width": 8}, 26.5)
    text = _collector(study).collect([tmp_path]).read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == [full, "NAFNet (baseline)"]
    naf = rows[1]
    components = len(rows[0]) - len(["variant", "psnr", "ssim", "params", "mb", "p_psnr", "p_ssim"])
    components -= 1 if study == "fddn_ablation" else 0  # the paper's size column
    assert naf[1 : 1 + components] == ["-"] * components  # no ablation marks on the baseline
    assert naf[1 + components] == "26.50" and naf[-1] == "-"  # our PSNR; no paper number
    assert "Runs per row: 1, 1." in text


def test_cross_dataset_table_has_a_nafnet_baseline_row(tmp_path):
    def results(name: str, psnr: float) -> dict:
        return {
            "model": {"name": name}, "ckpt_path": f"{name}.ckpt", "device": "cpu",
            "datasets": {"gopro": {"psnr": psnr, "ssim": 0.9, "count": 3}},
        }  # fmt: skip

    for name, psnr in (("msfs", 30.0), ("nafnet", 31.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results(name, psnr)))
    out = tmp_path / "table.md"
    table = _collector("cross_dataset").collect([tmp_path / "msfs", tmp_path / "nafnet"], out)
    rows = _table_rows(table.read_text())
    assert rows[0] == ["ours: `msfs` (msfs.ckpt)", "30.00", "0.9000"]
    assert rows[1] == ["NAFNet (baseline): `nafnet` (nafnet.ckpt)", "31.00", "0.9000"]
    assert rows[2] == ["MSFS-Net (paper)", "32.73", "0.959"]


def _evaluation(tmp_path: Path, name: str, **gopro: Any) -> Path:
    """A deblur-eval folder whose results.json scored gopro with ``gopro``'s protocol keys."""
    scores = {"psnr": 30.0, "ssim": 0.9, "count": 3, "protocol": "gopro", **gopro}
    results = {"model": {"name": "msfs"}, "ckpt_path": f"{name}.ckpt", "datasets": {"gopro": scores}}
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps({**results, "self_ensemble": name == "plus"}))
    return tmp_path / name


def test_cross_dataset_table_says_its_protocols_and_refuses_an_evaluation_scored_otherwise(tmp_path):
    collect = _collector("cross_dataset").collect
    basicsr = {"protocol": "basicsr", "crop_border": 4, "test_y_channel": True}
    text = collect([_evaluation(tmp_path, "plus", **basicsr)], tmp_path / "t.md").read_text()
    rows = _table_rows(text)
    assert rows[0] == ["ours: `msfs` (plus.ckpt) + self-ensemble x8", "30.00", "0.9000"]
    assert rows[1] == ["MSFS-Net (paper)", "-", "-"]  # the paper's 32.73 is no basicsr number
    assert "GoPro: 'basicsr' (crop_border=4, test_y_channel=True)" in text
    assert "MATLAB 3-D SSIM" not in text
    plain = _evaluation(tmp_path, "plain")
    with pytest.raises(MethodMismatch, match=r"plain\.ckpt scored gopro under protocol 'gopro'.*'basicsr'"):
        collect([tmp_path / "plus", plain], tmp_path / "t.md")
    paper = _table_rows(collect([plain], tmp_path / "t.md").read_text())[1]
    assert paper == ["MSFS-Net (paper)", "32.73", "0.959"]
