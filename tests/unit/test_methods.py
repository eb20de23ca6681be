"""deblur.analysis.methods: which deblur-score runs may stand as rows of a study table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deblur.analysis.methods import MethodMismatch, check_match, load_method, scoring_of
from deblur.errors import UserError


def _run(folder: Path, **summary) -> Path:
    folder.mkdir(parents=True)
    base = {"psnr": 30.0, "ssim": 0.9, "count": 3, "protocol": "gopro", "dataset": "gopro"}
    (folder / "summary.json").write_text(json.dumps({**base, **summary}))
    return folder


def test_a_protocol_setting_that_differs_is_a_mismatch(tmp_path):
    table = {"gopro": scoring_of({"protocol": "basicsr", "crop_border": 0, "test_y_channel": True})}
    same = load_method("A", _run(tmp_path / "a", protocol="basicsr", crop_border=0, test_y_channel=True))
    check_match(same, table)
    other = load_method("B", _run(tmp_path / "b", protocol="basicsr", crop_border=4, test_y_channel=True))
    with pytest.raises(MethodMismatch, match=r"crop_border=4.*crop_border=0.*not comparable"):
        check_match(other, table)


def test_runs_are_read_from_sub_folders_and_checked_per_dataset(tmp_path):
    _run(tmp_path / "m" / "x", dataset="gopro")
    _run(tmp_path / "m" / "hide", dataset=None)  # a plain gt folder, named after its dataset
    scores = load_method("M", tmp_path / "m")
    assert sorted(s.dataset for s in scores) == ["gopro", "hide"]
    check_match(scores, {"gopro": (("protocol", "gopro"),), "hide": (("protocol", "gopro"),)})
    with pytest.raises(MethodMismatch, match="'hide', which the table does not have"):
        check_match(scores, {"gopro": (("protocol", "gopro"),)})
    _run(tmp_path / "m2" / "a")
    _run(tmp_path / "m2" / "b")
    with pytest.raises(MethodMismatch, match="two scores for dataset 'gopro'"):
        check_match(load_method("M", tmp_path / "m2"), {"gopro": (("protocol", "gopro"),)})


def test_a_folder_without_a_deblur_score_summary_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_method("M", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no summary.json"):
        load_method("M", tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.json").write_text(json.dumps({"psnr": 1.0}))
    with pytest.raises(UserError, match="not a deblur-score summary"):
        load_method("M", tmp_path / "other")


def test_a_self_ensemble_evaluation_given_as_a_method_is_labelled_x8(tmp_path):
    (plain,) = load_method("Net", _run(tmp_path / "a", self_ensemble=False))
    (plus,) = load_method("Net", _run(tmp_path / "b", self_ensemble=True))  # a deblur-eval <dataset>/ folder
    assert plain.row_label == "Net" and plus.row_label == "Net + self-ensemble x8"
    check_match([plain, plus], {"gopro": (("protocol", "gopro"),)})  # two rows, not two scores of one
