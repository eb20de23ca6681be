"""Scoring refuses what is not a prediction (docs/trust.md, issue 18 item 2): the ground truth itself, a copy
of it, or a dataset's blurry frames; ``blurry_baseline=true`` scores blurry frames on purpose and labels every
output. deblur-eval's / training's ground truth is never the blurry frames either."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

from deblur.cli.score import main as score_command
from deblur.config.compose import compose
from deblur.data.on_disk import list_pairs
from deblur.data.validate import DatasetError
from deblur.io import read_image, write_image
from deblur.metrics.not_predictions import NotPredictions
from deblur.metrics.scoring import score_folders
from tests.unit.test_datasets import make_flat, make_gopro, make_hide, make_realblur

SEQ = "GOPR0384_11_00"


def _predictions_of(sharp_files, pred_dir, name=lambda p: p.name):
    """A 'prediction' per sharp file: its image with one sample changed (not a copy)."""
    for s in sharp_files:
        image = read_image(s)[0].copy()
        image[0, 0, 0] ^= 1
        write_image(pred_dir / name(s), image)
    return pred_dir


def test_a_gopro_test_split_or_root_as_pred_dir_is_refused_whatever_gt_dir(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    for pred, gt in (
        (root / "test", root),
        (root / "test", root / "test" / SEQ / "sharp"),
        (root, root / "test"),
    ):
        with pytest.raises(NotPredictions, match="blurry frames.*blurry_baseline=true"):
            score_folders(pred, gt, on_missing="skip")


@pytest.mark.parametrize("folder", ["blur", "input", "blurry"])
def test_a_folder_of_blurry_frames_as_pred_dir_is_refused(tmp_path, folder):
    flat = make_flat(tmp_path / "flat", folder, "target")
    gt = tmp_path / "sharp_copy"
    shutil.copytree(flat / "test" / "target", gt)  # whatever gt_dir is: here a folder outside the dataset
    with pytest.raises(
        NotPredictions, match=rf"pred_dir=.*{folder} is a folder of blurry frames \({folder}/\)"
    ):
        score_folders(flat / "test" / folder, gt)


def test_hide_blurry_test_subset_against_its_gt_folder_is_refused(tmp_path):
    hide = make_hide(tmp_path / "HIDE_dataset")
    with pytest.raises(NotPredictions, match="dataset"):
        score_folders(hide / "test" / "test-close-ups", hide / "GT", on_missing="skip")


def test_a_copy_of_the_blurry_split_is_refused_by_content(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    copy = tmp_path / "results"  # the blurry frames copied under an innocent name
    shutil.copytree(root / "test", copy)
    with pytest.raises(NotPredictions, match="is the blurry input of its pair"):
        score_folders(copy, root)


def test_the_same_folder_twice_or_a_copy_of_the_ground_truth_is_refused_even_as_baseline(tmp_path):
    gt = _predictions_of(sorted(make_gopro(tmp_path / "G").glob("test/*/sharp/*.png")), tmp_path / "gt")
    (tmp_path / "link").symlink_to(gt)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for pred in (gt, tmp_path / "link", "gt", "./link/../gt"):
            for baseline in (False, True):
                with pytest.raises(NotPredictions, match="same folder"):
                    score_folders(pred, gt, blurry_baseline=baseline)
    finally:
        os.chdir(cwd)
    shutil.copytree(gt, tmp_path / "copy")
    with pytest.raises(NotPredictions, match="byte-identical to its ground truth"):
        score_folders(tmp_path / "copy", gt, blurry_baseline=True)


def test_real_predictions_mirroring_the_dataset_layout_are_scored(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    # deblur-predict input=GOPRO_Large recursive=true: <output>/test/<seq>/blur/..., laid out like a dataset
    sharp = sorted((root / "test" / SEQ / "sharp").glob("*.png"))
    pred = _predictions_of(sharp, tmp_path / "preds", lambda s: f"test/{SEQ}/blur/{s.name}")
    _predictions_of(sharp, pred, lambda s: f"test/{SEQ}/sharp/{s.name}")
    _, summary = score_folders(pred, root)
    assert summary["count"] == len(sharp) and "baseline" not in summary


def test_blurry_baseline_scores_blurry_frames_and_labels_every_output(tmp_path, capsys):
    root = make_gopro(tmp_path / "GOPRO_Large")
    out = tmp_path / "out"
    cfg = compose("score", [f"pred_dir='{root / 'test'}'", f"gt_dir='{root}'", f"paths.output_dir='{out}'",
                            "blurry_baseline=true"])  # fmt: skip
    summary = score_command(cfg)
    assert summary["baseline"] == "blurry_input" and summary["count"] == 2
    assert json.loads((out / "summary.json").read_text())["baseline"] == "blurry_input"
    with (out / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["baseline"] for r in rows} == {"blurry_input"}
    assert "blurry-input baseline" in (out / "summary.md").read_text()
    assert "blurry-input baseline" in capsys.readouterr().out
    # without the key: one message, exit code 2, nothing written
    refused = tmp_path / "refused"
    cfg = compose(
        "score", [f"pred_dir='{root / 'test'}'", f"gt_dir='{root}'", f"paths.output_dir='{refused}'"]
    )
    with pytest.raises(SystemExit) as exit_info:
        score_command(cfg)
    assert exit_info.value.code == 2 and "blurry_baseline=true" in capsys.readouterr().err
    assert not refused.exists()


def test_eval_ground_truth_is_never_the_blurry_frames(tmp_path):
    realblur = make_realblur(tmp_path / "RealBlur")
    listed = realblur / "RealBlur_J_test_list.txt"
    lines = listed.read_text().splitlines()
    gt, blur = lines[1].split()
    lines[1] = f"{blur} {blur}"  # the ground-truth column names a blur/ file
    listed.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"RealBlur_J_test_list.txt line 2: the ground-truth column"):
        list_pairs("realblur_j", {"root": str(realblur)}, "val")

    pairs = make_flat(tmp_path / "pairs", "blurry", "sharp")
    same = {"root": str(pairs / "test"), "sharp_dir": "blurry"}
    with pytest.raises(DatasetError, match="data.sharp_dir and data.blurry_dir are the same folder"):
        list_pairs("pairs", same, "val")
    shutil.rmtree(pairs / "test" / "sharp")
    shutil.copytree(pairs / "test" / "blurry", pairs / "test" / "sharp")
    with pytest.raises(DatasetError, match="every file of data.sharp_dir=.* is byte-identical"):
        list_pairs("pairs", {"root": str(pairs / "test")}, "val")


def test_the_ground_truth_re_encoded_with_the_same_pixels_is_refused(tmp_path):
    import cv2

    gt = _predictions_of(sorted(make_gopro(tmp_path / "G").glob("test/*/sharp/*.png")), tmp_path / "gt")
    copy = tmp_path / "re_encoded"
    copy.mkdir()
    for path in gt.glob("*.png"):  # same pixels, other bytes (another PNG compression level)
        cv2.imwrite(str(copy / path.name), cv2.imread(str(path)), [cv2.IMWRITE_PNG_COMPRESSION, 0])
        assert (copy / path.name).read_bytes() != path.read_bytes()
    with pytest.raises(NotPredictions, match="same pixels as its ground truth"):
        score_folders(copy, gt)
