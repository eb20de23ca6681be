"""RealBlur protocol: gain match + ECC homography alignment before masked PSNR/SSIM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage import data, transform

from deblur.metrics import (
    EccFallbackWarning,
    align_realblur,
    estimate_alignment,
    psnr_255,
    realblur_scores,
    to_uint8,
)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A real photo, resized to 160x160 uint8 RGB, from which 128x128 views are cut."""
    return to_uint8(transform.resize(data.chelsea(), (160, 160), anti_aliasing=True))


def _view(img: np.ndarray, dy: int, dx: int, size: int = 128) -> np.ndarray:
    return np.ascontiguousarray(img[10 + dy : 10 + dy + size, 10 + dx : 10 + dx + size])


def test_shifted_copy_scores_far_higher_after_alignment(scene):
    gt = _view(scene, 0, 0)
    pred = _view(scene, 2, 3)  # the same scene seen 2 px lower, 3 px further right
    plain = psnr_255(pred, gt)
    scores = realblur_scores(pred, gt)
    assert scores["ecc_converged"] is True
    assert scores["psnr"] > plain + 10, (scores["psnr"], plain)
    assert scores["ssim"] > 0.99
    # ECC finds the translation (warp maps ground-truth coordinates into the prediction)
    warp = estimate_alignment(pred, gt).warp
    assert warp[0, 2] == pytest.approx(-3, abs=0.2)
    assert warp[1, 2] == pytest.approx(-2, abs=0.2)


def test_identical_images_score_very_high(scene):
    gt = _view(scene, 0, 0)
    scores = realblur_scores(gt, gt)
    assert scores["psnr"] > 60
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_brightness_scaled_copy_is_gain_matched(scene):
    gt = _view(scene, 0, 0)
    darker = to_uint8(gt / 255.0 * 0.8)
    assert psnr_255(darker, gt) < 25
    assert estimate_alignment(darker, gt).gain == pytest.approx(1.25, abs=0.01)
    assert realblur_scores(darker, gt)["psnr"] > 45


def test_align_returns_masked_float_images(scene):
    gt = _view(scene, 0, 0)
    pred = _view(scene, 2, 3)
    aligned_pred, aligned_gt, mask = align_realblur(pred, gt)
    assert aligned_pred.shape == aligned_gt.shape == mask.shape == gt.shape
    assert aligned_pred.dtype == np.float64
    assert set(np.unique(mask)) <= {0.0, 1.0}
    # the rows/columns the shifted view cannot cover are masked out; most of the image is valid
    assert 0.9 < mask.mean() < 1.0
    assert np.all(aligned_gt[mask == 0] == 0) and np.all(aligned_pred[mask == 0] == 0)
    assert aligned_gt.max() <= 1.0


def test_ecc_failure_falls_back_to_identity():
    flat = np.full((32, 32, 3), 100, dtype=np.uint8)
    alignment = estimate_alignment(flat, flat)
    assert alignment.converged is False and alignment.message
    np.testing.assert_array_equal(alignment.warp, np.eye(3))
    scores = realblur_scores(flat, flat)
    assert scores["ecc_converged"] is False
    assert scores["psnr"] > 60
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        align_realblur(flat, flat)
    assert any(issubclass(w.category, EccFallbackWarning) for w in caught)


def test_shape_mismatch_names_both_shapes():
    a = np.zeros((32, 32, 3), dtype=np.uint8)
    b = np.zeros((32, 30, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*\(32, 30, 3\)"):
        realblur_scores(a, b)


def test_masked_metrics_with_full_mask_reduce_to_plain_ones(scene):
    from skimage.metrics import structural_similarity

    from deblur.metrics.realblur import masked_psnr, masked_ssim

    gt = _view(scene, 0, 0) / 255.0
    pred = _view(scene, 1, 0) / 255.0
    ones = np.ones_like(gt)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    ref_ssim = structural_similarity(gt, pred, channel_axis=2, **kwargs)
    ref_psnr = 10 * np.log10(1 / np.mean((pred - gt) ** 2))
    assert masked_ssim(pred, gt, ones) == pytest.approx(ref_ssim, abs=1e-9)
    assert masked_psnr(pred, gt, ones) == pytest.approx(ref_psnr, abs=1e-9)
