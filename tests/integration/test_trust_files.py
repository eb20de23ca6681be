"""Trust with the user's files (docs/trust.md): inputs are never replaced, EXIF-rotated pairs stay aligned,
broken files are reported (skipped and counted, or failing the run), an unwritable output fails before
any work, temporaries of a killed run are cleaned up."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from deblur.config.inference_settings import InferenceSettings
from deblur.data.on_disk import build_dataset, list_pairs, read_rgb
from deblur.data.validate import DatasetError
from deblur.prediction import PredictionIncomplete, predict_images
from tests.tiny import TINY_MSFS, save_tiny_checkpoint
from tests.unit.test_datasets import sharp_image

TINY_MODEL = TINY_MSFS
CPU = InferenceSettings(device="cpu")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny random MSFS-Net saved the way Lightning saves checkpoints."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", TINY_MODEL)


def _write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- 1: an input is never replaced
def test_inplace_prediction_with_overwrite_never_replaces_an_input(ckpt, tmp_path):
    folder = tmp_path / "photos"
    _write(folder / "a.png", sharp_image(0))
    _write(folder / "b.jpg", sharp_image(1))
    before = _bytes(folder)
    with pytest.raises(
        ValueError, match=r"would replace input file\(s\), e.g. .*a\.png.*whatever allow_inplace"
    ):
        predict_images(ckpt, str(folder), folder, allow_inplace=True, overwrite=True, settings=CPU)
    assert _bytes(folder) == before  # same files, same bytes: b.png was not written either


# ---------------------------------------------------------------- 7: EXIF-rotated blurry JPEG + upright PNG
def test_exif_rotated_jpeg_pairs_with_an_upright_png_in_the_same_orientation(tmp_path):
    upright = np.ascontiguousarray(np.broadcast_to(np.linspace(0, 255, 48, dtype=np.uint8), (32, 48)))
    upright = np.dstack([upright, upright[::-1], np.full_like(upright, 90)])  # 32x48, no symmetry
    sharp = tmp_path / "sharp" / "scene.png"
    sharp.parent.mkdir(parents=True)
    Image.fromarray(upright).save(sharp)
    blurry = tmp_path / "blurry" / "scene.jpg"
    blurry.parent.mkdir(parents=True)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # pixels stored 48x32 (portrait)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    stored.save(blurry, quality=98, exif=exif)
    with Image.open(blurry) as im:  # PIL's own reading of the tag agrees with the upright image
        assert np.abs(np.asarray(ImageOps.exif_transpose(im), dtype=int) - upright).mean() < 3

    a, b = read_rgb(blurry), read_rgb(sharp)
    assert a.shape == b.shape == (32, 48, 3)
    assert np.abs(a.astype(int) - b).mean() < 3  # aligned (a 90-degree error would differ by ~80)
    cfg = {"root": str(tmp_path), "crop_size": 16, "on_bad_pair": "error"}
    assert [name for _, _, name in list_pairs("pairs", cfg, "train", min_size=16)] == [
        "scene.jpg"
    ]  # sizes agree
    sample = build_dataset("pairs", {**cfg, "crop_size": None}, "val")[0]
    assert (sample["blurry"] - sample["sharp"]).abs().mean() < 3 / 255


# ---------------------------------------------------------------- 9: broken files are reported
def test_unreadable_input_is_skipped_and_the_run_ends_incomplete(ckpt, tmp_path):
    inputs = tmp_path / "in"
    _write(inputs / "good.png", sharp_image(0))
    (inputs / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    with pytest.raises(PredictionIncomplete, match=r"1 of 2 input\(s\) could not be read") as err:
        predict_images(ckpt, str(inputs), out, on_error="skip", settings=CPU)
    assert err.value.result["failed"] == [str(inputs / "broken.png")]
    # the others were written, with the settings record that names the failure
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "predict.json"]
    assert json.loads((out / "predict.json").read_text())["failed"] == [str(inputs / "broken.png")]


def test_truncated_png_in_a_dataset_is_skipped_and_counted_at_setup(tmp_path, caplog):
    for i in range(3):
        _write(tmp_path / "blurry" / f"{i}.png", sharp_image(i) // 2)
        _write(tmp_path / "sharp" / f"{i}.png", sharp_image(i))
    cut = tmp_path / "sharp" / "1.png"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # an interrupted copy: header intact
    cfg = {"root": str(tmp_path), "on_bad_pair": "error"}
    with pytest.raises(DatasetError, match=rf"truncated image file {cut}"):
        list_pairs("pairs", cfg, "train")
    with caplog.at_level(logging.WARNING, logger="deblur.data.validate"):
        pairs = list_pairs("pairs", {**cfg, "on_bad_pair": "skip"}, "train")
    assert [name for _, _, name in pairs] == ["0.png", "2.png"]
    assert "skipped 1 file(s)/pair(s); using 2 pair(s)" in caplog.text and str(cut) in caplog.text


# ---------------------------------------------------------------- 10: an unwritable output fails first
def _no_model_load(monkeypatch) -> None:
    def load_checkpoint(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr("deblur.checkpoints.load_checkpoint", load_checkpoint)


def test_output_that_cannot_be_created_fails_before_any_work(ckpt, tmp_path, monkeypatch):
    _write(tmp_path / "in" / "a.png", sharp_image(0))
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where the output folder's parent should be")
    _no_model_load(monkeypatch)
    with pytest.raises(PermissionError, match=rf"output={blocker / 'out'} cannot be created: {blocker}"):
        predict_images(ckpt, str(tmp_path / "in"), blocker / "out", settings=CPU)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into a 0o555 folder")
def test_read_only_output_folder_fails_before_any_work(ckpt, tmp_path, monkeypatch):
    _write(tmp_path / "in" / "a.png", sharp_image(0))
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    _no_model_load(monkeypatch)
    try:
        with pytest.raises(PermissionError, match=rf"output={out} is not writable"):
            predict_images(ckpt, str(tmp_path / "in"), out, settings=CPU)
    finally:
        out.chmod(0o755)


# ---------------------------------------------------------------- 11: a killed run's temporaries go
def test_stale_temporaries_of_a_killed_run_are_removed(ckpt, tmp_path):
    _write(tmp_path / "in" / "a.png", sharp_image(0))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.png.tmp-x7Gq2LpZ.png"  # atomic_write's pattern, left by a killed run
    stale.write_bytes(b"half a png")
    other = out / ".notes"
    other.write_text("the user's own hidden file")
    result = predict_images(ckpt, str(tmp_path / "in"), out, settings=CPU)
    assert result["written"] == [str(out / "a.png")]
    assert not stale.exists() and other.read_text() == "the user's own hidden file"
