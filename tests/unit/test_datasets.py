"""The on-disk dataset loaders on tiny fake trees in each real layout (GoPro, HIDE, RealBlur, pairs, folder),
their Hydra options, and deblur-prepare's output being readable as GoPro."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from skimage import data

from deblur.config import register_configs
from deblur.data.datamodule import DATASETS, DeblurDataModule
from deblur.data.on_disk import DATASET_BUILDERS, FilePairDataset, FolderDataset, build_dataset, read_rgb
from deblur.data.subimages import patch_starts, prepare_dataset
from deblur.data.validate import DatasetError
from deblur.paths import CONF_DIR

H, W = 24, 32
REALBLUR_J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
PHOTO = data.astronaut()


# ---------------------------------------------------------------- fake trees (also used by other tests)
def sharp_image(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A crop of a real photo (RGB uint8), different for each ``i``."""
    return np.ascontiguousarray(PHOTO[100 + 7 * i : 100 + 7 * i + h, 150 + 5 * i : 150 + 5 * i + w])


def blurry_image(i: int, h: int = H, w: int = W) -> np.ndarray:
    """The 'blurry' partner: darker, so a test can tell which of the two a loader returned."""
    return sharp_image(i, h, w) // 2


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    assert cv2.imwrite(str(path), img)
    return path


def write_pair(blurry: Path, sharp: Path, i: int, h: int = H, w: int = W) -> None:
    write_rgb(blurry, blurry_image(i, h, w))
    write_rgb(sharp, sharp_image(i, h, w))


def make_gopro(root: Path, per_seq: int = 2, h: int = H, w: int = W) -> Path:
    """GOPRO_Large: {train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png; blur_gamma = blur + 1."""
    i = 0
    for split, seqs in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"]), ("test", ["GOPR0384_11_00"])):
        for seq in seqs:
            for k in range(per_seq):
                name = f"{k + 1:06d}.png"
                write_pair(root / split / seq / "blur" / name, root / split / seq / "sharp" / name, i, h, w)
                write_rgb(
                    root / split / seq / "blur_gamma" / name, np.minimum(blurry_image(i, h, w) + 1, 255)
                )
                i += 1
    return root


def make_flat(root: Path, blur: str, sharp: str, n: int = 2) -> Path:
    for split in ("train", "test"):
        for i in range(n):
            write_pair(root / split / blur / f"img{i}.png", root / split / sharp / f"img{i}.png", i)
    return root


def make_hide(root: Path, with_lists: bool = True) -> Path:
    """HIDE_dataset: train/, test/test-close-ups/, test/test-long-shot/, GT/, train.txt, test.txt."""
    layout = {
        "train": ["train/1fromGOPR0950.png", "train/2fromGOPR1096.png", "train/3fromGOPR1020.png"],
        "close": ["test/test-close-ups/4fromGOPR1044.png", "test/test-close-ups/5fromGOPR1050.png"],
        "long": ["test/test-long-shot/6fromGOPR0978.png"],
    }
    i = 0
    for files in layout.values():
        for rel in files:
            write_pair(root / rel, root / "GT" / Path(rel).name, i)
            i += 1
    if with_lists:
        (root / "train.txt").write_text("\n".join(Path(p).name for p in layout["train"]) + "\n")
        names = [Path(p).name for p in layout["close"] + layout["long"]]
        (root / "test.txt").write_text("\n".join(names) + "\n\n")
    return root


def make_realblur(root: Path, variant: str = "J") -> Path:
    """RealBlur root: the data folder + list files '<gt> <blur> ' (ground truth first, trailing space)."""
    folder = REALBLUR_J if variant == "J" else "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"
    i = 0
    for split, scenes in (("train", ["scene001", "scene002"]), ("test", ["scene230"])):
        lines = []
        for scene in scenes:
            for m in (1, 2):
                blur_rel = f"{folder}/{scene}/blur/blur_{m}.png"
                gt_rel = f"{folder}/{scene}/gt/gt_{m}.png"
                write_pair(root / blur_rel, root / gt_rel, i)
                lines.append(f"{gt_rel} {blur_rel} ")
                i += 1
        (root / f"RealBlur_{variant}_{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


def _val(name: str, root: Path, **options) -> FilePairDataset:
    return build_dataset(name, {"root": str(root), "val_crop_size": None, **options}, "val")


def _is_pair_in_order(ds, index: int) -> None:
    """blurry is the darker image of the pair: the loader did not swap blurry and sharp."""
    sample = ds[index]
    assert sample["blurry"].shape == sample["sharp"].shape == (3, H, W)
    assert sample["blurry"].mean() < sample["sharp"].mean()


# ---------------------------------------------------------------- GoPro
def test_gopro_nested_train_and_test_splits(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    train = build_dataset("gopro", {"root": str(root), "crop_size": 16, "repeats": 2}, "train")
    assert len(train) == 2 * 4 and train[0]["blurry"].shape == (3, 16, 16)
    val = _val("gopro", root)
    assert [p[2] for p in val.pairs] == ["GOPR0384_11_00/000001.png", "GOPR0384_11_00/000002.png"]
    _is_pair_in_order(val, 0)
    blurry, sharp, _ = val.load(1)
    np.testing.assert_array_equal(blurry, blurry_image(5))  # RGB order survives the BGR files
    np.testing.assert_array_equal(sharp, sharp_image(5))


def test_gopro_blur_gamma_option(tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    gamma = _val("gopro", root, blur_kind="blur_gamma")
    assert "blur_gamma" in str(gamma.pairs[0][0])
    np.testing.assert_array_equal(gamma.load(0)[0], blurry_image(4) + 1)
    with pytest.raises(DatasetError, match="blur_kind"):
        _val("gopro", root, blur_kind="gamma")


@pytest.mark.parametrize("blur, sharp", [("blur", "sharp"), ("input", "target")])
def test_gopro_flattened_layouts_are_detected(tmp_path, blur, sharp):
    root = make_flat(tmp_path / "flat", blur, sharp)
    val = _val("gopro", root)
    assert [p[2] for p in val.pairs] == ["img0.png", "img1.png"]
    assert Path(val.pairs[0][0]).parent.name == blur
    _is_pair_in_order(val, 1)


# ---------------------------------------------------------------- HIDE
def test_hide_lists_and_subsets(tmp_path):
    root = make_hide(tmp_path / "HIDE_dataset")
    train = _val("hide", root)  # val split = test/
    assert len(train) == 3
    assert sorted(p[2] for p in train.pairs) == [
        "test-close-ups/4fromGOPR1044.png",
        "test-close-ups/5fromGOPR1050.png",
        "test-long-shot/6fromGOPR0978.png",
    ]
    _is_pair_in_order(train, 0)
    assert len(_val("hide", root, subset="close-ups")) == 2
    long_shot = _val("hide", root, subset="long-shot")
    assert [p[2] for p in long_shot.pairs] == ["test-long-shot/6fromGOPR0978.png"]
    assert long_shot.pairs[0][1] == root / "GT" / "6fromGOPR0978.png"
    training = build_dataset("hide", {"root": str(root), "crop_size": 16}, "train")
    assert len(training) == 3


def test_hide_without_list_files_lists_the_folders(tmp_path):
    root = make_hide(tmp_path / "HIDE_dataset", with_lists=False)
    assert len(_val("hide", root)) == 3


# ---------------------------------------------------------------- RealBlur
@pytest.mark.parametrize("variant", ["J", "R"])
def test_realblur_lists_ground_truth_first(tmp_path, variant):
    root = make_realblur(tmp_path / "RealBlur", variant)
    val = _val(f"realblur_{variant.lower()}", root)
    assert [p[2] for p in val.pairs] == ["scene230/blur/blur_1.png", "scene230/blur/blur_2.png"]
    assert val.pairs[0][0].name == "blur_1.png" and val.pairs[0][1].name == "gt_1.png"
    _is_pair_in_order(val, 0)
    assert len(build_dataset(f"realblur_{variant.lower()}", {"root": str(root)}, "train")) == 4


def test_realblur_missing_list_file_shows_the_layout(tmp_path):
    root = make_realblur(tmp_path / "RealBlur", "J")
    with pytest.raises(DatasetError, match="RealBlur_R_test_list.txt") as err:
        _val("realblur_r", root)
    assert "data.root" in str(err.value) and "<gt_path> <blur_path>" in str(err.value)


# ---------------------------------------------------------------- pairs / folder
def test_pairs_match_by_name_across_extensions_and_split_folders(tmp_path):
    root = tmp_path / "mine"
    write_pair(root / "blurry" / "a.png", root / "sharp" / "a.bmp", 0)
    write_pair(root / "blurry" / "sub" / "b.png", root / "sharp" / "sub" / "b.png", 1)
    write_pair(root / "test" / "in" / "c.png", root / "test" / "gt" / "c.png", 2)
    both = _val("pairs", root)
    assert [p[2] for p in both.pairs] == ["a.png", "sub/b.png"]
    _is_pair_in_order(both, 0)
    val = _val("pairs", root, val_blurry_dir="test/in", val_sharp_dir="test/gt")
    assert [p[2] for p in val.pairs] == ["c.png"]
    train = build_dataset("pairs", {"root": str(root), "val_blurry_dir": "test/in"}, "train")
    assert len(train) == 2


def test_folder_is_unpaired_and_not_for_training(tmp_path):
    root = tmp_path / "karate"
    write_rgb(root / "a.png", blurry_image(0))
    write_rgb(root / "b.jpg", blurry_image(1))
    ds = _val("folder", root)
    assert isinstance(ds, FolderDataset) and not ds.has_ground_truth and len(ds) == 2
    sample = ds[0]
    assert sample["has_ground_truth"] is False and sample["name"] == "a.png"
    assert (sample["blurry"] == sample["sharp"]).all()
    with pytest.raises(DatasetError, match="cannot be used for training"):
        build_dataset("folder", {"root": str(root)}, "train")


# ---------------------------------------------------------------- reading
def test_read_rgb_handles_gray_16bit_and_alpha(tmp_path):
    gray = sharp_image(0)[:, :, 1]
    assert read_rgb(write_rgb(tmp_path / "g.png", gray)).shape == (H, W, 3)
    deep = (sharp_image(0).astype(np.uint16) * 257)[:, :, ::-1]  # BGR, 16-bit
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    np.testing.assert_array_equal(read_rgb(tmp_path / "d.png"), sharp_image(0))  # v*257 -> v
    bgra = np.dstack([sharp_image(0)[:, :, ::-1], np.full((H, W), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), sharp_image(0))


# ---------------------------------------------------------------- registry, datamodule, Hydra options
def test_registry_and_datamodule_serve_full_validation_images(tmp_path):
    assert set(DATASET_BUILDERS) == {"gopro", "hide", "realblur_j", "realblur_r", "pairs", "folder"}
    assert set(DATASET_BUILDERS) <= set(DATASETS)
    root = make_gopro(tmp_path / "GOPRO_Large")
    dm = DeblurDataModule(data={"name": "gopro", "root": str(root), "val_crop_size": None, "batch_size": 2})
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["blurry"].shape == (1, 3, H, W) and batch["name"] == ["GOPR0384_11_00/000001.png"]


def _compose(*overrides: str, config_name: str = "train"):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def test_data_options_compose_with_their_schemas():
    for name in DATASET_BUILDERS:
        cfg = _compose(f"data={name}", "data.root=/somewhere", "augment=none")
        assert cfg.data.name == name and cfg.data.root == "/somewhere"
        assert cfg.data.num_workers == 4 and cfg.data.pin_memory and cfg.data.persistent_workers
    cfg = _compose("data=gopro", "augment=none")
    assert cfg.data.crop_size == 256 and cfg.data.blur_kind == "blur" and cfg.data.val_crop_size is None
    with pytest.raises(ConfigCompositionException) as err:
        _compose("data=gopro", "data.crop_size=big", "augment=none")
    assert "data.crop_size" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        _compose("data=hide", "data.no_such_key=1", "augment=none")


def test_missing_root_names_the_key():
    cfg = _compose("data=gopro", "augment=none")
    from omegaconf import OmegaConf

    with pytest.raises(DatasetError, match=r"data\.root"):
        build_dataset("gopro", OmegaConf.to_container(cfg.data, resolve=True), "val")


# ---------------------------------------------------------------- prepare
def test_patch_starts_cover_the_image():
    assert patch_starts(720, 512, 256) == [0, 208]
    assert patch_starts(1280, 512, 256) == [0, 256, 512, 768]
    assert patch_starts(100, 512, 256) == [0]


def test_prepare_writes_a_gopro_readable_copy_and_leaves_the_source_alone(tmp_path):
    source = make_gopro(tmp_path / "GOPRO_Large")
    before = sorted(p for p in source.rglob("*"))
    out = tmp_path / "prepared"
    cfg = {"name": "gopro", "root": str(source)}
    manifest = prepare_dataset(cfg, out, patch_size=16, stride=8)
    assert sorted(p for p in source.rglob("*")) == before
    # 24x32 -> rows [0, 8], cols [0, 8, 16]: 6 sub-images per pair, 4 training pairs
    assert manifest["splits"]["train"] == {"pairs": 4, "files_written": 48, "files_kept": 0}
    assert (out / "train/blur/GOPR0372_07_00/000001_y0008_x0016.png").is_file()
    train = build_dataset("gopro", {"root": str(out), "crop_size": 16}, "train")
    assert len(train) == 24
    val = _val("gopro", out)  # the test split is copied full size
    assert [p[2] for p in val.pairs] == ["GOPR0384_11_00/000001.png", "GOPR0384_11_00/000002.png"]
    _is_pair_in_order(val, 0)
    again = prepare_dataset(cfg, out, patch_size=16, stride=8)  # resumable: keeps what exists
    assert again["splits"]["train"]["files_written"] == 0
    with pytest.raises(DatasetError, match="outside the source"):
        prepare_dataset(cfg, source / "prepared")
    npy = prepare_dataset(cfg, tmp_path / "npy", patch_size=None, fmt="npy", splits=["train"])
    assert npy["splits"]["train"]["files_written"] == 8
    arrays = build_dataset("gopro", {"root": str(tmp_path / "npy"), "crop_size": 16}, "train")
    assert arrays[0]["blurry"].shape == (3, 16, 16)
