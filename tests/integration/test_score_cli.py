"""deblur-score end to end on tiny folders written by the test (outputs only under tmp_path): the library
(:func:`deblur.metrics.scoring.score_folders`, :func:`~deblur.metrics.scoring.score`) and the command."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage import data, transform

from deblur.cli.score import main as score_command
from deblur.config.compose import compose
from deblur.metrics import psnr_255, ssim_3d, to_uint8
from deblur.metrics.scoring import score, score_folders
from deblur.paths import REPO_ROOT

SUMMARY_KEYS = {"psnr", "ssim", "count", "protocol", "pred_dir", "gt_dir"}


def _make_folders(root: Path, n: int = 5, nested: bool = True) -> tuple[Path, Path]:
    """``n`` ground-truth crops of a real photo (32x48 RGB PNG) and noisy predictions of them."""
    pred_dir, gt_dir = root / "pred", root / "gt"
    photo = to_uint8(transform.resize(data.astronaut(), (128, 128), anti_aliasing=True))
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = f"seq{i % 2}/" if nested else ""
        gt = photo[10 * i : 10 * i + 32, 8 * i : 8 * i + 48]
        pred = np.clip(gt.astype(int) + rng.integers(-6, 7, size=gt.shape), 0, 255).astype(np.uint8)
        for folder, img in ((gt_dir, gt), (pred_dir, pred)):
            path = folder / f"{sub}{i:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, img)
    return pred_dir, gt_dir


def _snapshot(*folders: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(pred_dir: Path, gt_dir: Path, out: Path, **options) -> dict:
    return score_folders(pred_dir, gt_dir, output_dir=out, **options)[1]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_subprocess_gopro(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data")
    before = _snapshot(pred_dir, gt_dir)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "deblur.cli.score", f"pred_dir={pred_dir}", f"gt_dir={gt_dir}",
         f"hydra.run.dir={out}", "protocol=gopro"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "PSNR" in proc.stdout and "| gopro | 5 |" in proc.stdout

    rows = _read_csv(out / "scores.csv")
    assert list(rows[0]) == ["name", "psnr", "ssim", "ssim_per_channel"]
    assert [r["name"] for r in rows] == sorted(f"seq{i % 2}/{i:06d}.png" for i in range(5))
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS | {"ssim_per_channel"} <= summary.keys()
    assert summary["count"] == 5 and summary["protocol"] == "gopro"
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))
    assert 30 < summary["psnr"] < 45 and summary["ssim"] > summary["ssim_per_channel"]
    # values agree with the metric functions on the files
    first = rows[0]["name"]
    pred, gt = iio.imread(pred_dir / first), iio.imread(gt_dir / first)
    assert float(rows[0]["psnr"]) == pytest.approx(psnr_255(pred, gt))
    assert float(rows[0]["ssim"]) == pytest.approx(ssim_3d(pred, gt))
    md = (out / "summary.md").read_text()
    assert "| protocol | images | PSNR (dB) |" in md and "|---|" in md
    assert _snapshot(pred_dir, gt_dir) == before
    assert not list(pred_dir.rglob("*.csv")) and not list(gt_dir.rglob("*.json"))


def test_realblur_through_the_command_config(tmp_path, capsys):
    pred_dir, gt_dir = _make_folders(tmp_path / "data")
    before = _snapshot(pred_dir, gt_dir)
    out = tmp_path / "out"
    cfg = compose("score", [f"pred_dir='{pred_dir}'", f"gt_dir='{gt_dir}'", f"paths.output_dir='{out}'",
                            "protocol=realblur", "num_workers=0"])
    summary = score_command(cfg)
    assert SUMMARY_KEYS <= summary.keys() and "ssim_per_channel" not in summary
    assert summary["count"] == 5 and summary["ecc_fallbacks"] == []
    rows = _read_csv(out / "scores.csv")
    assert list(rows[0]) == ["name", "psnr", "ssim"] and len(rows) == 5
    assert json.loads((out / "summary.json").read_text())["protocol"] == "realblur"
    assert "| realblur | 5 |" in (out / "summary.md").read_text()
    assert "realblur" in capsys.readouterr().out
    assert _snapshot(pred_dir, gt_dir) == before


def test_worker_pool_matches_serial(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data", n=4)
    rows0, summary0 = score_folders(pred_dir, gt_dir, "gopro", num_workers=0)
    rows2, summary2 = score_folders(pred_dir, gt_dir, "gopro", num_workers=2)
    assert rows0 == rows2 and summary0 == summary2


def test_missing_partners_listed_then_skipped(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data")
    (gt_dir / "seq0" / "000000.png").unlink()
    for i in range(12):  # more extra predictions than the message lists
        iio.imwrite(pred_dir / f"extra{i:02d}.png", np.zeros((32, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError) as err:
        _run(pred_dir, gt_dir, tmp_path / "out")
    msg = str(err.value)
    # 13 = 12 extras + seq0/000000.png whose ground truth is gone; 10 listed (sorted), then the rest counted
    assert "13 prediction(s) without ground truth: extra00.png, extra01.png" in msg
    assert "extra09.png, ... and 3 more" in msg and "seq0/000000.png" not in msg
    assert "1 ground-truth image(s)" not in msg
    assert "on_missing=skip" in msg
    summary = _run(pred_dir, gt_dir, tmp_path / "out", on_missing="skip")
    assert summary["count"] == 4
    assert "seq0/000000.png" in summary["pred_without_gt"] and len(summary["pred_without_gt"]) == 13


def test_ground_truth_without_prediction_listed(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data")
    (pred_dir / "seq1" / "000003.png").unlink()
    with pytest.raises(ValueError, match=r"1 ground-truth image\(s\) without prediction: seq1/000003.png"):
        _run(pred_dir, gt_dir, tmp_path / "out")


def test_size_mismatch_names_both_files(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data")
    iio.imwrite(pred_dir / "seq0" / "000002.png", np.zeros((30, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="size mismatch") as err:
        _run(pred_dir, gt_dir, tmp_path / "out")
    msg = str(err.value)
    assert str(pred_dir / "seq0" / "000002.png") in msg and str(gt_dir / "seq0" / "000002.png") in msg
    assert "48x30 (WxH)" in msg and "48x32 (WxH)" in msg  # one way to write sizes everywhere


def test_config_errors(tmp_path, capsys):
    pred_dir, gt_dir = _make_folders(tmp_path / "data", n=2)
    with pytest.raises(FileNotFoundError, match="gt_dir does not exist: .*nowhere"):
        _run(pred_dir, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown protocol 'hide2'; choose one of: gopro, realblur"):
        _run(pred_dir, gt_dir, tmp_path / "out", protocol="hide2")
    with pytest.raises(ValueError, match="on_missing"):
        _run(pred_dir, gt_dir, tmp_path / "out", on_missing="maybe")
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0, got 'abc'"):
        _run(pred_dir, gt_dir, tmp_path / "out", num_workers="abc")
    with pytest.raises(ValueError, match="recursive must be true or false"):
        _run(pred_dir, gt_dir, tmp_path / "out", recursive="yes")
    with pytest.raises(ValueError, match="output dir must differ from pred_dir"):
        _run(pred_dir, gt_dir, pred_dir)
    cfg = compose("score", [f"gt_dir='{gt_dir}'", f"paths.output_dir='{tmp_path / 'out'}'"])
    with pytest.raises(SystemExit) as exit_info:  # a user error: one message, exit code 2, no traceback
        score_command(cfg)
    assert exit_info.value.code == 2 and "pred_dir" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not list(pred_dir.rglob("*.csv"))


def test_recursive_flag_and_extension_matching(tmp_path):
    pred_dir, gt_dir = _make_folders(tmp_path / "data", n=3)
    with pytest.raises(ValueError, match="no image pairs"):
        _run(pred_dir, gt_dir, tmp_path / "out", recursive=False)
    # flat folders; predictions saved as BMP still match PNG ground truth by stem
    flat_pred, flat_gt = _make_folders(tmp_path / "flat", n=3, nested=False)
    for p in flat_pred.glob("*.png"):
        iio.imwrite(p.with_suffix(".bmp"), iio.imread(p))
        p.unlink()
    summary = _run(flat_pred, flat_gt, tmp_path / "out", recursive=False)
    assert summary["count"] == 3
    assert [r["name"] for r in _read_csv(tmp_path / "out" / "scores.csv")] == [
        "000000.bmp", "000001.bmp", "000002.bmp",
    ]  # fmt: skip


def test_score_takes_uint8_float_and_tensor_images_as_8_bit_pngs():
    photo = to_uint8(transform.resize(data.astronaut(), (40, 48), anti_aliasing=True))
    noisy = np.clip(photo / 255.0 + np.random.default_rng(1).normal(0, 0.02, photo.shape), 0, 1)
    reference = score(to_uint8(noisy), photo)  # saved as an 8-bit PNG, then scored
    assert reference["psnr"] == pytest.approx(psnr_255(to_uint8(noisy), photo))
    assert reference["ssim"] == pytest.approx(ssim_3d(to_uint8(noisy), photo))
    assert score(noisy, photo) == reference  # floats are rounded to 8 bits first
    tensor = torch.from_numpy(noisy.transpose(2, 0, 1)).float()
    assert score(tensor, photo)["psnr"] == pytest.approx(reference["psnr"], abs=1e-9)
    assert score(noisy[:, :, 0], photo[:, :, 0])["psnr"] == pytest.approx(
        psnr_255(to_uint8(noisy[:, :, 0]), photo[:, :, 0])
    )  # gray images
    assert score(photo, photo)["psnr"] == float("inf")
    blur = score(noisy, photo, protocol="realblur")
    assert set(blur) == {"psnr", "ssim", "ecc_converged"} and blur["psnr"] > 25
    with pytest.raises(ValueError, match=r"prediction is 48x40 \(WxH\) but ground truth is 40x40"):
        score(photo, photo[:, :40])
    with pytest.raises(ValueError, match="unknown protocol"):
        score(photo, photo, protocol="hide2")
