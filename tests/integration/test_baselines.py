"""Baselines in every table (issue 21, item 4): deblur-eval's blurry-input row scored by the same code as
``deblur-score blurry_baseline=true``, and the study collectors' rows from other methods' deblur-score
runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from deblur.cli.eval import main as eval_command
from deblur.config import register_configs
from deblur.config.inference import InferenceSettings
from deblur.evaluation import evaluate
from deblur.metrics.scoring import score_folders
from deblur.paths import CONF_DIR
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


def test_eval_blurry_input_row_equals_deblur_score_of_the_blurry_folder(ckpt, trees, tmp_path):
    out = tmp_path / "eval"
    results = evaluate(ckpt, list(trees), trees, settings=CPU, output_dir=out, blurry_baseline=True)
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
