"""Smaller input cases of issue 18 (item 8): animated GIFs, broken symbolic links, tiles below the
network's stride, and output-name collisions in one input folder."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import deblur
from deblur.data.on_disk import match_folders
from deblur.data.validate import DatasetError, validate_listing
from deblur.io import ImageReadError, read_image
from deblur.models.msfs.net import MSFSNet
from deblur.prediction import collect_inputs, plan_outputs
from tests.tiny import TINY_MSFS


def _png(path, value=128, size=(16, 16)):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def test_an_animated_gif_says_it_uses_the_first_frame(tmp_path, caplog):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 120, 240)]
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="deblur.io"):
        image, _ = read_image(gif)
        read_image(gif)  # read again (a dataset every epoch): one warning per file
    assert abs(int(image[0, 0, 0]) - 10) <= 2  # the first frame
    warnings = [r.getMessage() for r in caplog.records if "animated" in r.getMessage()]
    assert warnings == [f"{gif} is an animated GIF (3 frames): only its first frame is used"]
    _png(still := tmp_path / "still.png")
    caplog.clear()
    read_image(still)
    assert not caplog.records


def test_a_broken_link_among_the_inputs_is_named(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _png(inputs / "a.png")
    (inputs / "b.png").symlink_to(tmp_path / "gone.png")
    files, _ = collect_inputs(str(inputs))
    assert [name for _, name in files] == ["a", "b"]  # not silently left out
    with pytest.raises(ImageReadError, match=r"b\.png is a broken symbolic link \(to .*gone\.png"):
        read_image(inputs / "b.png")
    globbed, _ = collect_inputs(str(inputs / "*.png"))
    assert len(globbed) == 2


def test_a_broken_link_in_a_dataset_folder_is_named(tmp_path):
    for side in ("blurry", "sharp"):
        (tmp_path / side).mkdir()
        _png(tmp_path / side / "a.png")
    _png(tmp_path / "sharp" / "b.png")
    (tmp_path / "blurry" / "b.png").symlink_to(tmp_path / "gone.png")
    listing = match_folders(tmp_path / "blurry", tmp_path / "sharp")
    assert not listing.sharp_only  # the pair is listed, not an orphan sharp image
    with pytest.raises(DatasetError, match=r"blurry/b\.png is a broken symbolic link"):
        validate_listing(listing, "pairs", tmp_path, "train")


def test_a_tile_below_the_network_stride_is_refused_naming_the_minimum():
    torch.manual_seed(0)
    net = MSFSNet(**{k: v for k, v in TINY_MSFS.items() if k != "name"}).eval()
    image = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"tile=4 .*at least 8"):
        deblur.restore(net, image, tile=4, tile_overlap=0)
    assert deblur.restore(net, image, tile=8, tile_overlap=0).shape == image.shape


def test_a_name_collision_in_one_folder_names_the_files_and_not_give_a_folder(tmp_path):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    _png(inputs / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(inputs / "a.jpg")
    files, dirs = collect_inputs(str(inputs))
    with pytest.raises(ValueError) as err:
        plan_outputs(files, dirs, str(inputs), tmp_path / "out")
    text = str(err.value)
    assert "give a folder" not in text
    assert str(inputs / "a.jpg") in text and str(inputs / "a.png") in text and str(tmp_path / "out" / "a.png")
    assert "rename or move one of them" in text


def test_readme_and_the_predict_page_agree_that_exif_orientation_is_applied():
    from deblur.paths import REPO_ROOT

    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    page = " ".join((REPO_ROOT / "docs" / "predict.md").read_text().split())
    assert "turns EXIF-rotated photos upright" in readme
    assert "EXIF orientation is applied" in page and "EXIF orientation is not applied" not in page
