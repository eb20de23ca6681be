"""Tests of the paired augmentation pipelines (deblur.data.augment, conf/augment/*.yaml)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from skimage import data
from torch.utils.data import DataLoader, Dataset

from deblur.data.augment import KERNEL_PAD, KNOWN_TRANSFORMS, PairAugment, make_pipeline
from deblur.data.base import InMemoryPairDataset
from deblur.data.softening import difference_energy, laplacian_energy, measure_softening

CONF = Path(__file__).resolve().parents[2] / "conf" / "augment"


def load_cfg(name: str):
    return OmegaConf.load(CONF / f"{name}.yaml")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[60:100, 180:236])  # 40x56x3, non-square, real content


def fddn_dict(scene_p: float | None = None, capture: bool = True) -> dict:
    cfg = OmegaConf.to_container(load_cfg("fddn"), resolve=True)
    if scene_p is not None:
        for kwargs in cfg["scene"].values():
            kwargs["p"] = scene_p
    if not capture:
        cfg["capture"] = {}
    return cfg


def test_fddn_config_lists_the_papers_eleven_transforms():
    cfg = load_cfg("fddn")
    names = list(cfg.scene) + list(cfg.capture)
    assert len(names) == 11 and set(names) <= set(KNOWN_TRANSFORMS)
    assert set(cfg.capture) == {"motion_blur", "median_blur", "image_compression"}
    # "cropping" is the loader's random crop; the resize-crop (a zoom) is kept but off
    assert cfg.scene.crop.p == 0


def test_none_is_identity(photo):
    pipeline = make_pipeline(load_cfg("none"))
    assert pipeline.is_identity
    sharp = photo.copy()
    blurry, out_sharp = pipeline(photo, sharp)
    assert blurry is photo and out_sharp is sharp
    assert make_pipeline(None).is_identity


@pytest.mark.parametrize("scene_p", [None, 1.0])
def test_scene_transforms_keep_identical_pairs_identical(photo, scene_p):
    """Geometry and colour are drawn once per call and applied to both images (capture off)."""
    changed = 0
    for seed in range(60):
        pipeline = make_pipeline(fddn_dict(scene_p=scene_p, capture=False), seed=seed)
        for _ in range(2):
            blurry, sharp = pipeline(photo.copy(), photo.copy())
            assert blurry.shape == photo.shape and blurry.dtype == np.uint8
            assert np.array_equal(blurry, sharp), f"pair misaligned for seed {seed}"
            changed += not np.array_equal(blurry, photo)
    assert changed > 20  # the transforms really ran


def test_capture_degradations_touch_only_the_input(photo):
    cfg = fddn_dict(scene_p=0.0)
    changed = 0
    for seed in range(20):
        pipeline = make_pipeline(cfg, seed=seed)
        sharp = photo.copy()
        blurry, out_sharp = pipeline(photo.copy(), sharp)
        assert np.array_equal(out_sharp, photo)
        assert blurry.shape == photo.shape and blurry.dtype == np.uint8
        changed += not np.array_equal(blurry, photo)
    assert changed > 0


def test_same_seed_same_output_different_seed_differs(photo):
    def run(seed: int) -> list[np.ndarray]:
        pipeline = make_pipeline(load_cfg("fddn"), seed=seed)
        return [np.concatenate(pipeline(photo, photo)) for _ in range(8)]

    first, again, other = run(5), run(5), run(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    # The config's seed is used when no seed argument is given.
    cfg = fddn_dict()
    cfg["seed"] = 5
    from_cfg = make_pipeline(cfg)
    assert all(np.array_equal(np.concatenate(from_cfg(photo, photo)), a) for a in first)


def test_flip_rot_keeps_pairs_aligned_and_permutes_pixels():
    rng = np.random.default_rng(0)
    blurry0 = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    sharp0 = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pipeline = make_pipeline(load_cfg("flip_rot"), seed=0)
    seen = set()
    for _ in range(64):
        blurry, sharp = pipeline(blurry0, sharp0)
        assert blurry.shape == blurry0.shape and blurry.dtype == np.uint8
        # The output is one of the 8 symmetries of the square (unique for a random image), the same
        # one for both images: pixels are only moved, never changed.
        matches = [
            k
            for k in range(8)
            if np.array_equal(blurry, _apply(blurry0, k)) and np.array_equal(sharp, _apply(sharp0, k))
        ]
        assert len(matches) == 1, "pair not transformed by one common flip/rotation"
        seen.add(matches[0])
    assert len(seen) == 8  # flips and rotations are drawn independently: all 8 symmetries occur


def _apply(image: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(image, k % 4)
    return out[:, ::-1] if k >= 4 else out


def test_misspelt_argument_names_transform_and_argument():
    cfg = fddn_dict()
    cfg["capture"]["image_compression"] = {"p": 0.5, "quality_lower": 50}
    with pytest.raises(ValueError, match=r"augment\.capture\.image_compression\.quality_lower"):
        make_pipeline(cfg)
    cfg = fddn_dict()
    cfg["scene"]["snow"]["snow_point_lower"] = 0.1
    with pytest.raises(ValueError, match=r"augment\.scene\.snow\.snow_point_lower"):
        make_pipeline(cfg)


def test_invalid_argument_value_names_the_argument():
    cfg = fddn_dict()
    cfg["scene"]["optical_distortion"]["mode"] = "barrel"
    with pytest.raises(ValueError, match=r"augment\.scene\.optical_distortion\.mode"):
        make_pipeline(cfg)


def test_unknown_transform_lists_known_ones():
    cfg = {"scene": {"horizontal_flip": {"p": 0.5}, "elastic": {"p": 1.0}}}
    with pytest.raises(ValueError, match="elastic") as info:
        make_pipeline(cfg)
    for name in ("horizontal_flip", "motion_blur", "image_compression", "snow"):
        assert name in str(info.value)


def test_geometry_is_refused_in_the_capture_section():
    with pytest.raises(ValueError, match=r"augment\.capture\.rotate"):
        make_pipeline({"capture": {"rotate": {"p": 1.0}}})


def test_unknown_top_level_key_fails():
    with pytest.raises(ValueError, match="scenes"):
        make_pipeline({"scenes": {}})


@pytest.mark.parametrize("name", ["none", "fddn"])
def test_shapes_and_dtype_for_non_square_inputs(photo, name):
    pipeline = make_pipeline(fddn_dict(scene_p=1.0) if name == "fddn" else load_cfg(name), seed=1)
    for _ in range(10):
        blurry, sharp = pipeline(photo, photo)
        assert blurry.shape == sharp.shape == (40, 56, 3)
        assert blurry.dtype == sharp.dtype == np.uint8


def test_pipeline_pickles_and_keeps_its_stream(photo):
    pipeline = make_pipeline(load_cfg("fddn"), seed=3)
    clone = pickle.loads(pickle.dumps(pipeline))
    assert isinstance(clone, PairAugment)
    for _ in range(4):
        assert np.array_equal(np.concatenate(pipeline(photo, photo)), np.concatenate(clone(photo, photo)))


class _Repeat(Dataset):
    def __init__(self, pipeline, image):
        self.pipeline, self.image = pipeline, image

    def __len__(self):
        return 16

    def __getitem__(self, index):
        blurry, _ = self.pipeline(self.image, self.image)
        return torch.from_numpy(blurry.copy())


def test_dataloader_workers_do_not_replay_the_same_stream():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pipeline = make_pipeline(load_cfg("flip_rot"), seed=0)
    torch.manual_seed(0)
    loader = DataLoader(_Repeat(copy.deepcopy(pipeline), image), batch_size=1, num_workers=2)
    items = [batch[0].numpy() for batch in loader]
    # Worker 0 serves even indices, worker 1 odd ones; with a shared stream they would be pairwise equal.
    assert any(not np.array_equal(items[i], items[i + 1]) for i in range(0, 16, 2))
    # Reproducible when torch is seeded.
    torch.manual_seed(0)
    again = [batch[0].numpy() for batch in DataLoader(_Repeat(copy.deepcopy(pipeline), image), num_workers=2)]
    assert all(np.array_equal(a, b) for a, b in zip(items, again, strict=True))


# ------------------------------------------------------------------ windows: geometry without borders
def _geometry(rotate=(-10, 10), distort=(-0.04, 0.04), mode="fisheye", border=None) -> dict:
    border = border or {"border_mode": 0, "fill": 0}  # constant black: any border pixel shows
    return {
        "scene": {
            "rotate": {"p": 1.0, "limit": list(rotate), "interpolation": 4, **border},
            "optical_distortion": {
                "p": 1.0, "distort_limit": list(distort), "mode": mode, "interpolation": 4, **border
            },
        }
    }  # fmt: skip


def test_margin_covers_the_worst_rotation_and_distortion():
    assert make_pipeline(load_cfg("none")).margin(256) == 0
    assert make_pipeline(load_cfg("flip_rot")).margin(256) == 0  # flips / quarter turns: crops as before
    no_geometry = fddn_dict()
    no_geometry["scene"]["rotate"]["p"] = no_geometry["scene"]["optical_distortion"]["p"] = 0.0
    assert make_pipeline(no_geometry).margin(256) == 0
    # 10 degrees: half-side x (cos 10 + sin 10); fisheye k 0.04: x 1.04; plus the kernel's reach
    expected = int(np.ceil(128 * (1.04 * (np.cos(np.radians(10)) + np.sin(np.radians(10))) - 1)))
    assert make_pipeline(load_cfg("fddn")).margin(256) == expected + KERNEL_PAD == 32
    assert make_pipeline({"scene": {"rotate": {"p": 1.0, "limit": [-60, 30]}}}).margin(100) == (
        int(np.ceil(50 * (np.sqrt(2) - 1))) + KERNEL_PAD
    )  # the range holds -45 degrees: the diagonal is the worst case


@pytest.mark.parametrize(
    "geometry",
    [
        _geometry(),
        _geometry(rotate=(10, 10), distort=(0.04, 0.04)),  # both at their outward extreme at once
        _geometry(rotate=(-10, -10), distort=(0.05, 0.05), mode="camera"),
    ],
)
def test_geometric_transforms_leave_no_border_in_the_crop(geometry):
    """A constant image stays constant unless a border pixel (constant 0) reaches the crop."""
    image = np.full((160, 170, 3), 100, np.uint8)
    pipeline = make_pipeline(geometry, seed=0)
    dataset = InMemoryPairDataset(
        [(image, image, "flat")], crop_size=48, random_crop=True, transform=pipeline
    )
    assert pipeline.margin(48) > KERNEL_PAD
    for draw in range(6):
        sample = dataset[(0, draw)]
        assert sample["sharp"].shape == (3, 48, 48)
        assert torch.all(sample["sharp"] == 100 / 255) and torch.all(sample["blurry"] == 100 / 255)
    # the check can fail: on the bare crop (no window) the same transforms pull the border in
    blurry, _ = pipeline(image[:48, :48], image[:48, :48])
    assert (blurry < 100).any()


def test_windows_keep_pairs_aligned_and_fall_back_on_small_images(photo):
    """Identical inputs stay identical (one draw of parameters for both images), and an image smaller than
    the window gives a crop of the right size (the window is cut down to the image)."""
    big = np.ascontiguousarray(data.astronaut()[100:260, 150:330])
    pipeline = make_pipeline(fddn_dict(scene_p=1.0, capture=False), seed=2)
    for image, crop in ((big, 64), (photo, 36)):
        dataset = InMemoryPairDataset([(image, image.copy(), "p")], crop_size=crop, random_crop=True,
                                      transform=pipeline)  # fmt: skip
        for draw in range(4):
            sample = dataset[(0, draw)]
            assert sample["blurry"].shape == sample["sharp"].shape == (3, crop, crop)
            assert torch.equal(sample["blurry"], sample["sharp"])


def test_without_margin_the_dataset_crops_as_before():
    """flip_rot has margin 0: the crop of a draw is the one the dataset takes without augmentation."""
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    plain = InMemoryPairDataset([(image, image, "n")], crop_size=12, random_crop=True)
    flipped = InMemoryPairDataset([(image, image, "n")], crop_size=12, random_crop=True,
                                  transform=make_pipeline(load_cfg("flip_rot")))  # fmt: skip
    for draw in range(8):
        crop, out = plain[(0, draw)]["sharp"], flipped[(0, draw)]["sharp"]
        assert any(
            torch.equal(out, torch.rot90(c, k, (1, 2))) for c in (crop, crop.flip(2)) for k in range(4)
        )


# ------------------------------------------------------------------ softening of the sharp target
def test_energies_of_white_noise_and_of_a_bilinear_half_pixel_shift():
    """The measures themselves. White noise (variance v): Laplacian energy 20 v, pixel-difference energy
    2 v + 2 v. Averaging horizontal neighbours (bilinear at a half-pixel offset) leaves (20 + 20 - 2 * 8) / 4
    = 6 v of Laplacian energy (30 %) and v / 2 + v of pixel-difference energy (37.5 %)."""
    noise = np.random.default_rng(0).random((256, 256, 1))
    shifted = (noise[:, 1:] + noise[:, :-1]) / 2
    assert laplacian_energy(noise) == pytest.approx(20.0 / 12, rel=0.03)  # v = 1/12
    assert difference_energy(noise) == pytest.approx(4.0 / 12, rel=0.03)
    assert laplacian_energy(shifted) / laplacian_energy(noise) == pytest.approx(0.3, rel=0.05)
    assert difference_energy(shifted) / difference_energy(noise) == pytest.approx(0.375, rel=0.05)


def test_default_fddn_softening_stays_within_the_documented_bounds():
    """docs/augmentation.md: each resampling transform of augment=fddn keeps >= 0.8 of the target's
    Laplacian energy when it fires, flips keep all of it, and sum(p * loss) over the scene stays <= 5 %."""
    report = measure_softening(
        load_cfg("fddn"), photos=("astronaut",), crop_size=64, draws=4, pipeline_draws=0
    )
    ratios = {row.name: row for row in report.transforms}
    assert set(ratios) == set(load_cfg("fddn").scene)
    assert ratios["horizontal_flip"].laplacian == 1.0
    for name in ("rotate", "optical_distortion"):
        assert ratios[name].p > 0 and 0.8 <= ratios[name].laplacian < 1.0, name
    assert report.expected_loss <= 0.05


def test_bilinear_rotation_would_break_the_bound():
    cfg = fddn_dict()
    cfg["scene"]["rotate"]["interpolation"] = 1
    report = measure_softening(cfg, photos=("astronaut",), crop_size=64, draws=4, pipeline_draws=0)
    rotate = next(row for row in report.transforms if row.name == "rotate")
    assert rotate.laplacian < 0.7 and report.expected_loss > 0.05
