"""deblur-score on a benchmark's own folder: the sharp images of its test split are the ground truth, never a
blurry frame; predictions are found under the names deblur-eval and deblur-predict write."""

from __future__ import annotations

import pytest

from deblur.io import read_image, write_image
from deblur.metrics.benchmarks import detect_benchmark
from deblur.metrics.scoring import score_folders
from tests.unit.test_datasets import make_gopro, make_hide, make_realblur


def _near_perfect(path):
    """The image of ``path`` with one sample off by one: a prediction, not a copy of the ground truth."""
    image = read_image(path)[0].copy()
    image[0, 0, 0] ^= 1
    return image


def _perfect_predictions(root, pairs_rel, pred_dir):
    """Write each test pair's sharp image as the 'prediction', under the given relative names."""
    for name, sharp in pairs_rel:
        write_image(pred_dir / f"{name}.png", _near_perfect(sharp))


def test_gopro_root_scores_against_sharp_frames_never_blurry(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    test = root / "test" / "GOPR0384_11_00"
    sharp = sorted((test / "sharp").glob("*.png"))
    # deblur-predict input=GOPRO_Large/test recursive=true writes every frame: blur, blur_gamma and sharp
    pred = tmp_path / "pred"
    for kind in ("blur", "blur_gamma", "sharp"):
        for s in sharp:
            write_image(pred / "GOPR0384_11_00" / kind / s.name, _near_perfect(s))  # near-perfect outputs
    for gt_dir in (root, root / "test"):
        rows, summary = score_folders(pred, gt_dir, protocol="gopro")
        assert summary["dataset"] == "gopro" and summary["count"] == len(sharp)
        assert all(r["name"].split("/")[1] == "blur" for r in rows)  # the blurry inputs' predictions
        assert summary["psnr"] > 50  # near-perfect predictions against the SHARP frames
        assert len(summary["pred_ignored"]) == 2 * len(sharp)  # blur_gamma and sharp frames' outputs


def test_eval_names_match_too_and_missing_predictions_are_named(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    sharp = sorted((root / "test" / "GOPR0384_11_00" / "sharp").glob("*.png"))
    pred = tmp_path / "eval_images"  # deblur-eval save_images=true: <seq>/<frame>.png
    _perfect_predictions(root, [(f"GOPR0384_11_00/{s.stem}", s) for s in sharp[:1]], pred)
    with pytest.raises(ValueError, match="ground-truth image"):
        score_folders(pred, root)
    _, summary = score_folders(pred, root, on_missing="skip")
    assert summary["count"] == 1 and len(summary["gt_without_pred"]) == len(sharp) - 1


def test_a_plain_folder_of_blurry_frames_is_refused_as_ground_truth(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    seq = root / "test" / "GOPR0384_11_00"
    pred = tmp_path / "pred"
    for s in sorted((seq / "blur").glob("*.png")):
        write_image(pred / "blur" / s.name, read_image(s)[0])
    with pytest.raises(ValueError, match="never ground truth"):
        score_folders(pred, seq)  # a sequence folder: blur/, blur_gamma/, sharp/ side by side


def test_hide_and_realblur_roots_are_recognised(tmp_path):
    hide = make_hide(tmp_path / "HIDE_dataset")
    assert detect_benchmark(hide) == ("hide", hide)
    assert detect_benchmark(hide / "test") == ("hide", hide)
    realblur = make_realblur(tmp_path / "RealBlur")
    assert detect_benchmark(realblur) == ("realblur_j", realblur)
    make_realblur(realblur, "R")  # the real download holds both lists in one root: which one?
    with pytest.raises(ValueError, match="dataset=realblur_j"):
        detect_benchmark(realblur)
    assert detect_benchmark(realblur, "realblur_r") == ("realblur_r", realblur)
    plain = tmp_path / "sharp_only"
    plain.mkdir()
    assert detect_benchmark(plain) is None
