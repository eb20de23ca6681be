"""Dataset checks at setup: each bad input fails with a message naming the key and the files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deblur.data.on_disk import build_dataset
from deblur.data.validate import DatasetError
from deblur.io import image_size
from tests.unit.test_datasets import (
    H,
    W,
    make_gopro,
    make_hide,
    make_realblur,
    sharp_image,
    write_pair,
    write_rgb,
)


def write_dummy(h: int = H, w: int = W):
    """An image with no partner (any content)."""
    return sharp_image(9, h, w)


def _val(name: str, root: Path, **options):
    return build_dataset(name, {"root": str(root), "val_crop_size": None, **options}, "val")


def test_missing_root_prints_the_expected_layout(tmp_path):
    missing = tmp_path / "GOPRO_Large"
    with pytest.raises(DatasetError) as err:
        _val("gopro", missing)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "data.root" in msg and str(missing) in msg and "does not exist" in msg
    assert "blur_gamma/" in msg and "sharp/" in msg and "{input,target}" in msg  # the layout tree


def test_missing_split_or_subfolder_prints_the_layout(tmp_path):
    root = tmp_path / "GOPRO_Large"
    (root / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"split folder 'test/'") as err:
        _val("gopro", root)
    assert "Expected layout for data=gopro" in str(err.value)
    hide = make_hide(tmp_path / "HIDE_dataset")
    for path in (hide / "test" / "test-long-shot").iterdir():
        path.unlink()
    (hide / "test" / "test-long-shot").rmdir()
    with pytest.raises(DatasetError, match="test-long-shot") as err:
        _val("hide", hide)
    assert "GT/" in str(err.value) and "test.txt" in str(err.value)


def test_orphan_blurry_images_are_listed_with_the_count(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    seq = root / "test" / "GOPR0384_11_00"
    for k in range(12):
        write_rgb(seq / "blur" / f"{100 + k:06d}.png", write_dummy())
    with pytest.raises(DatasetError) as err:
        _val("gopro", root)
    msg = str(err.value)
    assert "12 blurry image(s) without a sharp partner" in msg
    assert str(seq / "blur" / "000100.png") in msg and "... and 2 more" in msg
    assert str(seq / "blur" / "000111.png") not in msg  # only 10 listed
    assert "data.root" in msg and "on_bad_pair=skip" in msg


def test_orphan_sharp_and_missing_list_entries(tmp_path):
    root = make_realblur(tmp_path / "RealBlur")
    lines = (root / "RealBlur_J_test_list.txt").read_text().splitlines()
    blur = root / lines[0].split()[1]
    blur.unlink()
    lines.append("RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene999/gt/gt_1.png x/blur_1.png")
    (root / "RealBlur_J_test_list.txt").write_text("\n".join(lines))
    with pytest.raises(DatasetError) as err:
        _val("realblur_j", root)
    msg = str(err.value)
    assert "1 sharp image(s) without a blurry partner" in msg and "gt_1.png" in msg
    assert "1 listed pair(s) whose files are missing" in msg and "line 3" in msg


def test_size_mismatch_names_both_files(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    blur = root / "test" / "GOPR0384_11_00" / "blur" / "000002.png"
    write_rgb(blur, write_dummy(h=H + 1))
    with pytest.raises(DatasetError) as err:
        _val("gopro", root)
    msg = str(err.value)
    assert "size mismatch" in msg and str(blur) in msg
    assert str(root / "test" / "GOPR0384_11_00" / "sharp" / "000002.png") in msg
    assert f"{W}x{H + 1}" in msg and f"{W}x{H}" in msg


def test_corrupt_file_is_named(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    bad = root / "test" / "GOPR0384_11_00" / "sharp" / "000001.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(DatasetError, match="corrupt") as err:
        _val("gopro", root)
    assert str(bad) in str(err.value)


def test_truncated_files_fail_at_setup_and_damaged_pixels_at_load(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    damaged = root / "test" / "GOPR0384_11_00" / "blur" / "000001.png"
    original = damaged.read_bytes()
    damaged.write_bytes(original[:60])  # header intact, the rest cut: an interrupted copy
    assert image_size(damaged) == (H, W)
    with pytest.raises(DatasetError, match="truncated image file .*000001.png"):
        _val("gopro", root)  # the check reads the header and the file's end
    damaged.write_bytes(original[:60] + b"\0" * 40 + original[-12:])  # pixel data broken, ending intact
    ds = _val("gopro", root)  # passes the (header and ending) check
    with pytest.raises(DatasetError, match="000001.png"):
        ds[0]


def test_image_smaller_than_the_crop_is_named(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    with pytest.raises(DatasetError, match=r"smaller than data.crop_size=64") as err:
        build_dataset("gopro", {"root": str(root), "crop_size": 64}, "train")
    assert "GOPR0372_07_00" in str(err.value)


def test_skip_leaves_bad_pairs_out_and_logs_each(tmp_path, caplog):
    root = make_gopro(tmp_path / "GOPRO_Large")
    seq = root / "test" / "GOPR0384_11_00"
    write_rgb(seq / "blur" / "000009.png", write_dummy())  # orphan
    write_pair(seq / "blur" / "000003.png", seq / "sharp" / "000003.png", 3)
    (seq / "sharp" / "000003.png").write_bytes(b"garbage")  # corrupt
    write_pair(seq / "blur" / "000004.png", seq / "sharp" / "000004.png", 4)
    write_rgb(seq / "sharp" / "000004.png", write_dummy(w=W + 2))  # size mismatch
    with caplog.at_level(logging.WARNING, logger="deblur.data.validate"):
        ds = _val("gopro", root, on_bad_pair="skip")
    assert [p[2] for p in ds.pairs] == ["GOPR0384_11_00/000001.png", "GOPR0384_11_00/000002.png"]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 3
    assert any("000009.png" in m for m in skipped) and any("000003.png" in m for m in skipped)
    assert any("skipped 3 file(s)/pair(s); using 2 pair(s)" in r.getMessage() for r in caplog.records)
    with pytest.raises(DatasetError, match="on_bad_pair"):
        _val("gopro", root, on_bad_pair="ignore")
