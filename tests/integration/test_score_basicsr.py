"""Protocol ``basicsr`` through ``deblur-score`` and ``deblur-eval`` (configs composed in-process): the keys
reach the scorer, the outputs record them, and bad values are one user error (exit code 2)."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import data

from deblur.cli.eval import main as eval_command
from deblur.cli.score import main as score_command
from deblur.config.compose import compose
from deblur.config.inference_settings import InferenceSettings
from deblur.evaluation import evaluate
from deblur.metrics.scoring import score
from tests.integration.test_predict_eval import TINY_MODEL
from tests.tiny import save_tiny_checkpoint
from tests.unit.test_datasets import make_hide


def noisy_photo_folders(root, count=3, seed=3, noise=9, row_step=40, col=60):
    """``count`` 40x48 crops of a photo (rows ``row_step`` apart, from column ``col``) as ground truth in
    ``root/gt`` and copies with uniform integer noise in [-noise, noise] as predictions in ``root/pred``;
    returns both folders and ``{name: (pred, gt)}``."""
    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    pairs = {}
    for i in range(count):
        gt = photo[row_step * i : row_step * i + 40, col : col + 48]
        pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
        for folder, img in (("gt", gt), ("pred", pred)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            iio.imwrite(root / folder / f"{i}.png", img)
        pairs[f"{i}.png"] = (pred, gt)
    return root / "pred", root / "gt", pairs


def _score_cfg(tmp_path, pred_dir, gt_dir, *overrides):
    out = tmp_path / "out"
    return out, compose(
        "score", [f"pred_dir='{pred_dir}'", f"gt_dir='{gt_dir}'", f"paths.output_dir='{out}'", *overrides]
    )


def test_score_command_basicsr_records_its_settings(tmp_path, capsys):
    pred_dir, gt_dir, pairs = noisy_photo_folders(tmp_path / "data")
    out, cfg = _score_cfg(
        tmp_path, pred_dir, gt_dir, "protocol=basicsr", "crop_border=4", "test_y_channel=true"
    )
    summary = score_command(cfg)
    assert (
        summary["protocol"] == "basicsr" and summary["crop_border"] == 4 and summary["test_y_channel"] is True
    )
    with (out / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["name", "psnr", "ssim"]
    for row in rows:
        expected = score(*pairs[row["name"]], protocol="basicsr", crop_border=4, test_y_channel=True)
        assert float(row["psnr"]) == pytest.approx(expected["psnr"], abs=1e-9)
        assert float(row["ssim"]) == pytest.approx(expected["ssim"], abs=1e-9)
    written = json.loads((out / "summary.json").read_text())
    assert written["crop_border"] == 4 and written["test_y_channel"] is True
    table = (out / "summary.md").read_text()
    assert "| basicsr | 3 |" in table and "protocol: basicsr (crop_border=4, test_y_channel=true)" in table
    assert "crop_border=4, test_y_channel=true" in capsys.readouterr().out
    # the other protocols' outputs do not grow the keys
    _, gopro = _score_cfg(tmp_path / "g", pred_dir, gt_dir)
    assert "crop_border" not in score_command(gopro)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["protocol=basicsr", "crop_border=-2"], "crop_border must be an integer >= 0"),
        (["protocol=basicsr", "crop_border=15"], "crop_border=15 is too large for 0.png"),
        (["protocol=basicsr", "test_y_channel=maybe"], "test_y_channel must be true or false"),
        (["crop_border=4"], "crop_border=4 applies to protocol=basicsr only"),
    ],
)
def test_score_command_bad_basicsr_keys_exit_2(tmp_path, capsys, overrides, message):
    pred_dir, gt_dir, _ = noisy_photo_folders(tmp_path / "data")
    out, cfg = _score_cfg(tmp_path, pred_dir, gt_dir, *overrides)
    with pytest.raises(SystemExit) as exit_info:
        score_command(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "scores.csv").exists()


def test_eval_protocol_basicsr_for_every_dataset_names_it_under_the_table(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "last.ckpt", TINY_MODEL)
    hide = make_hide(tmp_path / "HIDE_dataset")
    out = tmp_path / "eval"
    cfg = compose(
        "eval",
        [
            f"ckpt_path={ckpt}",
            "datasets=[hide]",
            f"roots.hide={hide}",
            "limit=1",
            "device=cpu",
            "protocol=basicsr",
            "crop_border=2",
            "test_y_channel=true",
            f"paths.output_dir={out}",
        ],
    )
    results = eval_command(cfg)
    summary = results["datasets"]["hide"]
    assert summary["protocol"] == "basicsr" and summary["crop_border"] == 2 and summary["test_y_channel"]
    assert (out / "hide" / "scores.csv").read_text().splitlines()[0] == "name,psnr,ssim"
    table = (out / "results.md").read_text()
    assert "| HIDE | 1 | basicsr |" in table
    assert (
        "`basicsr (crop_border=2, test_y_channel=true)`: BasicSR's calculate_psnr / calculate_ssim" in table
    )
    with pytest.raises(
        ValueError, match="crop_border=2 applies to protocol=basicsr only; the protocol is gopro"
    ):
        evaluate(
            ckpt,
            ["hide"],
            {"hide": hide},
            crop_border=2,
            settings=InferenceSettings(device="cpu"),
            output_dir=tmp_path / "refused",
        )
    assert not (tmp_path / "refused").exists()
