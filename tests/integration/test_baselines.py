"""Baselines in every table (issue 21, item 4): deblur-eval's blurry-input row scored by the same code as
``deblur-score blurry_baseline=true``, and the study collectors' rows from other methods' deblur-score
runs."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from deblur.analysis.methods import MethodMismatch
from deblur.cli.eval import main as eval_command
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.errors import UserError
from deblur.evaluation import evaluate
from deblur.io import read_image, write_image
from deblur.metrics.scoring import score_folders
from deblur.paths import CONF_DIR, REPO_ROOT
from tests.tiny import TINY_MSFS, save_tiny_checkpoint
from tests.unit.test_datasets import REALBLUR_J, make_gopro, make_hide, make_realblur

CPU = InferenceSettings(device="cpu")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", {**TINY_MSFS, "norm": "batch"})


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "gopro": make_gopro(root / "GOPRO_Large", h=32, w=40),
        "hide": make_hide(root / "HIDE_dataset"),
        "realblur_j": make_realblur(root / "RealBlur"),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def evaluated(ckpt, trees, tmp_path_factory) -> Path:
    """deblur-eval's output folder on the three fake datasets, with the blurry-input baseline."""
    out = tmp_path_factory.mktemp("eval")
    evaluate(ckpt, list(trees), trees, settings=CPU, output_dir=out, blurry_baseline=True)
    return out


def test_eval_blurry_input_row_equals_deblur_score_of_the_blurry_folder(evaluated, trees):
    out = evaluated
    results = json.loads((out / "results.json").read_text())
    # what a researcher runs by hand: deblur-score on each dataset's blurry frames, on purpose
    blurry_folders = {
        "gopro": ("test", None), "hide": ("test", None), "realblur_j": (REALBLUR_J, "realblur_j"),
    }  # fmt: skip
    table = (out / "results.md").read_text()
    for name, (folder, dataset) in blurry_folders.items():
        summary = results["datasets"][name]
        protocol = summary["protocol"]
        rows, expected = score_folders(
            trees[name] / folder, trees[name], protocol, dataset=dataset, blurry_baseline=True
        )
        ours = summary["blurry_input"]
        assert ours["count"] == expected["count"] == summary["count"] and ours["baseline"] == "blurry_input"
        for metric in ("psnr", "ssim", *(["ssim_per_channel"] if protocol == "gopro" else [])):
            assert ours[metric] == expected[metric], (name, metric)  # the same code path: equal, not close
            assert ours[metric] != summary[metric]  # not the network's number
        # the per-image scores are written as deblur-score writes them, labelled as the baseline
        written = json.loads((out / name / "blurry_input" / "summary.json").read_text())
        assert written["baseline"] == "blurry_input" and written["psnr"] == expected["psnr"]
        per_image = _rows(out / name / "blurry_input" / "scores.csv")
        assert [float(r["psnr"]) for r in per_image] == pytest.approx([r["psnr"] for r in rows], abs=1e-9)
        assert {r["baseline"] for r in per_image} == {"blurry_input"}
        assert json.loads((out / name / "summary.json").read_text())["blurry_input"]["psnr"] == ours["psnr"]
        title = {"gopro": "GoPro", "hide": "HIDE", "realblur_j": "RealBlur-J"}[name]
        assert f"| {title}: blurry input (baseline) | {summary['count']} | {protocol} | " in table
        assert f"{expected['psnr']:.2f}" in table
    assert "not a result of the network" in table
    assert json.loads((out / "results.json").read_text())["blurry_baseline"] is True


def test_eval_command_scores_the_blurry_inputs_only_when_asked(ckpt, trees, tmp_path):
    register_configs()
    common = [f"ckpt_path={ckpt}", "datasets=[hide]", f"roots.hide={trees['hide']}", "device=cpu", "limit=2"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        plain = compose("eval", [*common, f"paths.output_dir={tmp_path / 'plain'}"])
        asked = compose("eval", [*common, "blurry_baseline=true", "score_workers=1",
                                 f"paths.output_dir={tmp_path / 'asked'}"])  # fmt: skip
    off = eval_command(plain)
    assert "blurry_input" not in off["datasets"]["hide"]
    assert not (tmp_path / "plain" / "hide" / "blurry_input").exists()
    assert "blurry input" not in (tmp_path / "plain" / "results.md").read_text()
    on = eval_command(asked)  # scored in a worker process, interleaved with the predictions
    baseline, network = on["datasets"]["hide"]["blurry_input"], on["datasets"]["hide"]
    assert baseline["count"] == network["count"] == 2 and math.isfinite(baseline["psnr"])
    assert network["psnr"] == off["datasets"]["hide"]["psnr"]  # the network's row is unchanged
    assert "| HIDE: blurry input (baseline) | 2 | gopro |" in (tmp_path / "asked" / "results.md").read_text()


# ------------------------------------------------------------------------ other methods in the study tables
def _collector(study: str):
    path = REPO_ROOT / "experiments" / study / "collect.py"
    spec = importlib.util.spec_from_file_location(f"collect_{study}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines()[4:] if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def _other_method(tree: Path, dataset: str, folder: Path, offset: int) -> Path:
    """Another method's outputs on ``dataset``'s test split (its sharp frames, ``offset`` darker), named as
    deblur-eval saves them: the folder deblur-predict (or any method) would give deblur-score."""
    from deblur.data.on_disk import list_pairs

    for _, sharp, name in list_pairs(dataset, {"name": dataset, "root": str(tree)}, "val"):
        image = read_image(sharp)[0].astype(int) - offset
        write_image((folder / name).with_suffix(".png"), np.clip(image, 0, 255).astype(np.uint8))
    return folder


def _deblur_score(pred: Path, tree: Path, out: Path, **options) -> dict:
    """A deblur-score run (the library behind the command): its run folder holds summary.json."""
    return score_folders(pred, tree, output_dir=out, **options)[1]


def test_cross_dataset_collector_adds_other_methods_and_the_blurry_input_rows(evaluated, trees, tmp_path):
    scored = {
        d: _deblur_score(_other_method(trees[d], d, tmp_path / f"mprnet_out_{d}", 3), trees[d],
                         tmp_path / "mprnet" / f"run_{d}")
        for d in ("gopro", "hide")
    }  # fmt: skip  # one deblur-score run per dataset, in one folder; realblur_j not scored
    blurry = _deblur_score(trees["gopro"] / "test", trees["gopro"], tmp_path / "input", blurry_baseline=True)
    out = tmp_path / "table.md"
    methods = [f"MPRNet={tmp_path / 'mprnet'}", f"Input={tmp_path / 'input'}"]
    text = _collector("cross_dataset").collect([evaluated], out, methods).read_text()
    rows = {r[0]: r[1:] for r in _table_rows(text)}
    assert rows["MPRNet"] == [
        f"{scored['gopro']['psnr']:.2f}", f"{scored['gopro']['ssim']:.4f}",
        f"{scored['hide']['psnr']:.2f}", f"{scored['hide']['ssim']:.4f}", "-", "-",
    ]  # fmt: skip
    ours = json.loads((evaluated / "results.json").read_text())["datasets"]
    assert rows["Blurry input (baseline)"] == [
        f"{ours[d]['blurry_input'][m]:.{k}f}"
        for d in ("gopro", "hide", "realblur_j")
        for m, k in (("psnr", 2), ("ssim", 4))
    ]
    # a deblur-score blurry_baseline run given as a method is labelled as the baseline, and agrees with eval's
    assert rows["Input (blurry-input baseline)"][:2] == [f"{blurry['psnr']:.2f}", f"{blurry['ssim']:.4f}"]
    assert rows["Input (blurry-input baseline)"][:2] == rows["Blurry input (baseline)"][:2]
    assert list(rows)[-1] == "MSFS-Net (paper)" and str(tmp_path / "mprnet" / "run_gopro") in text


def test_a_method_scored_under_another_protocol_or_dataset_is_refused(evaluated, trees, tmp_path):
    preds = _other_method(trees["gopro"], "gopro", tmp_path / "preds", 2)
    _deblur_score(preds, trees["gopro"], tmp_path / "realblur_run", protocol="realblur")
    collect = _collector("cross_dataset").collect
    with pytest.raises(MethodMismatch) as err:
        collect([evaluated], tmp_path / "t.md", [f"MPRNet={tmp_path / 'realblur_run'}"])
    message = str(err.value)
    assert str(tmp_path / "realblur_run") in message and "'realblur'" in message and "'gopro'" in message
    assert "not comparable" in message and not (tmp_path / "t.md").exists()
    # a plain ground-truth folder: which dataset it was is unknown, so it is not set beside the table's
    sharp = tmp_path / "sharp"
    for path in sorted((trees["gopro"] / "test").rglob("sharp/*.png")):
        write_image(sharp / f"{path.parent.parent.name}_{path.name}", read_image(path)[0])
    plain = tmp_path / "plain_preds"
    for path in sorted(sharp.glob("*.png")):
        write_image(plain / path.name, np.clip(read_image(path)[0].astype(int) - 2, 0, 255).astype(np.uint8))
    _deblur_score(plain, sharp, tmp_path / "plain_run")
    with pytest.raises(MethodMismatch, match="cannot tell which dataset"):
        collect([evaluated], tmp_path / "t.md", [f"MPRNet={tmp_path / 'plain_run'}"])
    with pytest.raises(UserError, match="expected NAME=FOLDER"):
        collect([evaluated], tmp_path / "t.md", [str(tmp_path / "plain_run")])


@pytest.mark.parametrize("study", ["msfs_ablation", "fddn_ablation"])
def test_ablation_tables_refuse_a_deblur_score_row(trees, tmp_path, study):
    """Tables 4 / 5 hold the jobs' validation metrics: a deblur-score run is another protocol."""
    job = tmp_path / "sweep" / "job0"
    job.mkdir(parents=True)
    name = study.split("_")[0]
    (job / "metrics.json").write_text(json.dumps({
        "val/psnr": 25.0, "val/ssim": 0.8, "val/psnr_input": 20.0, "val/ssim_input": 0.6, "parameters": 10,
        "size_mb": 0.01, "model": name, "config": {"model": {"name": name}},
    }))  # fmt: skip
    preds = _other_method(trees["gopro"], "gopro", tmp_path / "preds", 2)
    _deblur_score(preds, trees["gopro"], tmp_path / "run")
    with pytest.raises(MethodMismatch, match="'gopro'.*'validation'.*cross_dataset/collect.py"):
        _collector(study).collect([tmp_path / "sweep"], methods=[f"MPRNet={tmp_path / 'run'}"])
    assert not (tmp_path / "sweep" / "results.md").exists()


@pytest.mark.slow
def test_collector_command_refuses_a_mismatched_method_with_one_message(evaluated, trees, tmp_path):
    preds = _other_method(trees["gopro"], "gopro", tmp_path / "preds", 2)
    _deblur_score(preds, trees["gopro"], tmp_path / "run", protocol="realblur")
    script = REPO_ROOT / "experiments" / "cross_dataset" / "collect.py"
    done = subprocess.run(
        [sys.executable, str(script), str(evaluated), "--method", f"MPRNet={tmp_path / 'run'}",
         "--out", str(tmp_path / "t.md")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("experiments/cross_dataset/collect.py: error: --method MPRNet=")
    assert "Traceback" not in done.stderr and not (tmp_path / "t.md").exists()
