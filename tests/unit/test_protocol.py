"""GoPro/HIDE metric conventions: PSNR peak 255, MATLAB 3-D SSIM, per-channel SSIM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import structural_similarity

from deblur.metrics import psnr_255, ssim_3d, ssim_per_channel, to_uint8


def _rng_pair(shape, seed=0, noise=20):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, size=shape), 0, 255).astype(np.uint8)
    return pred, gt


def _skimage_ssim(pred, gt, **kwargs):
    """The BasicSR/skimage per-channel convention, straight from skimage."""
    return structural_similarity(
        pred, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kwargs
    )


def _blurred_astronaut(sigma=0.5):
    gt = data.astronaut()
    pred = to_uint8(gaussian_filter(gt / 255.0, sigma=(sigma, sigma, 0)))
    return pred, gt


def _brute_force_ssim_3d(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB-style 3-D SSIM by an explicit loop over voxels with an 11x11x11 Gaussian window.

    Replicate padding by np.pad(mode="edge"); central moments computed directly in each window.
    """
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    r = 5
    t = np.arange(-r, r + 1, dtype=np.float64)
    d2 = t[:, None, None] ** 2 + t[None, :, None] ** 2 + t[None, None, :] ** 2
    win = np.exp(-d2 / (2 * 1.5**2))
    win /= win.sum()
    xp = np.pad(x, r, mode="edge")
    yp = np.pad(y, r, mode="edge")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            for k in range(x.shape[2]):
                px = xp[i : i + 2 * r + 1, j : j + 2 * r + 1, k : k + 2 * r + 1]
                py = yp[i : i + 2 * r + 1, j : j + 2 * r + 1, k : k + 2 * r + 1]
                mx = np.sum(win * px)
                my = np.sum(win * py)
                vx = np.sum(win * (px - mx) ** 2)
                vy = np.sum(win * (py - my) ** 2)
                cxy = np.sum(win * (px - mx) * (py - my))
                total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return total / x.size


def test_to_uint8_clamps_and_rounds():
    img = np.array([[-0.5, 0.0, 0.4 / 255, 1.4 / 255, 1.6 / 255, 1.0, 2.0]])
    assert to_uint8(img).tolist() == [[0, 0, 0, 1, 2, 255, 255]]
    assert to_uint8(img).dtype == np.uint8


def test_to_uint8_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    out = to_uint8(torch.tensor([[0.0, 0.5, 1.0]]))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 128, 255]]


def test_psnr_hand_case():
    # 2x2x3 image: one entry off by 255, eleven exact -> MSE = 255^2 / 12 -> PSNR = 10 log10(12).
    gt = np.zeros((2, 2, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[0, 0, 0] = 255
    assert psnr_255(pred, gt) == pytest.approx(10 * np.log10(12.0), abs=1e-12)
    # every entry off by 1 -> MSE 1 -> 20 log10(255) = 48.1308 dB
    assert psnr_255(gt + 1, gt) == pytest.approx(20 * np.log10(255.0), abs=1e-12)
    assert psnr_255(gt, gt) == float("inf")


def test_psnr_matches_numpy_formula():
    pred, gt = _rng_pair((17, 23, 3), seed=1)
    mse = np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2)
    assert psnr_255(pred, gt) == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-10)


def test_ssim_3d_identical_is_one():
    _, gt = _rng_pair((20, 24, 3), seed=2)
    assert ssim_3d(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert ssim_per_channel(gt, gt) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_ssim_per_channel_matches_skimage(seed):
    pred, gt = _rng_pair((40, 52, 3), seed=seed)
    assert ssim_per_channel(pred, gt) == pytest.approx(_skimage_ssim(pred, gt, channel_axis=2), abs=1e-6)


def test_ssim_per_channel_matches_skimage_on_photo():
    pred, gt = _blurred_astronaut()
    assert ssim_per_channel(pred, gt) == pytest.approx(_skimage_ssim(pred, gt, channel_axis=2), abs=1e-6)


def test_ssim_3d_matches_brute_force():
    pred, gt = _rng_pair((9, 13, 3), seed=5, noise=40)
    assert ssim_3d(pred, gt) == pytest.approx(_brute_force_ssim_3d(pred, gt), abs=1e-6)
    # a smooth image (not noise) exercises the cross-channel mixing of the window differently
    smooth = to_uint8(gaussian_filter(data.astronaut()[100:110, 200:214] / 255.0, sigma=(1, 1, 0)))
    shifted = np.roll(smooth, 1, axis=1)
    assert ssim_3d(shifted, smooth) == pytest.approx(_brute_force_ssim_3d(shifted, smooth), abs=1e-6)


def test_ssim_3d_above_per_channel_on_photo():
    # As on GoPro: the 3-D window reads higher than the per-channel SSIM on a mildly blurred photo.
    pred, gt = _blurred_astronaut(sigma=0.5)
    s3, s2 = ssim_3d(pred, gt), ssim_per_channel(pred, gt)
    assert 35 < psnr_255(pred, gt) < 42
    assert s3 > s2 + 0.003, (s3, s2)


def test_grayscale_input():
    pred, gt = _rng_pair((16, 20), seed=6)
    assert ssim_per_channel(pred, gt) == pytest.approx(_skimage_ssim(pred, gt), abs=1e-6)
    assert 0 < ssim_3d(pred, gt) < 1
    assert np.isfinite(psnr_255(pred, gt))


@pytest.mark.parametrize("metric", [psnr_255, ssim_3d, ssim_per_channel])
def test_shape_mismatch_names_both_shapes(metric):
    a = np.zeros((16, 20, 3), dtype=np.uint8)
    b = np.zeros((16, 21, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(16, 20, 3\).*\(16, 21, 3\)"):
        metric(a, b)


def test_float_input_rejected():
    a = np.zeros((16, 16, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="to_uint8"):
        psnr_255(a, a)
