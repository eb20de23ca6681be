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

from deblur.data.augment import KNOWN_TRANSFORMS, PairAugment, make_pipeline

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
