"""Image-quality metrics under the conventions the deblurring papers report (GoPro / HIDE).

The published GoPro and HIDE numbers come from a MATLAB evaluation: the prediction is saved as an 8-bit
PNG (clamped to [0, 1], scaled by 255, rounded), then

* PSNR uses peak 255 over all pixels and channels of one image, with no border crop, and the per-image
  values are averaged over the test set;
* SSIM is MATLAB's ``ssim`` applied to the RGB image **as a 3-D volume** (:func:`ssim_3d`).

Python codebases (BasicSR, skimage) instead report the per-channel 2-D SSIM (:func:`ssim_per_channel`),
which reads lower than the 3-D SSIM on the same pair. Both are provided so that numbers can be compared
with either family of papers.

All metric functions take one image pair as ``uint8`` arrays of shape ``(H, W, C)`` (normally ``C == 3``,
RGB) or ``(H, W)`` and return a Python ``float``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import correlate1d

__all__ = ["gaussian_taps", "psnr_255", "ssim_3d", "ssim_per_channel", "to_uint8"]

#: SSIM constants of Wang et al. (2004), used by MATLAB ``ssim`` and skimage alike.
K1 = 0.01
K2 = 0.03
#: Gaussian window: sigma 1.5, radius 5, i.e. 11 taps per axis.
SIGMA = 1.5
RADIUS = 5


def to_uint8(img: Any) -> np.ndarray:
    """Convert a float image in [0, 1] to ``uint8`` the way the papers save their PNGs.

    Values are clamped to [0, 1], multiplied by 255 and rounded to the nearest integer (ties to even,
    as ``skimage.img_as_ubyte`` does). The layout is unchanged: pass ``(H, W, C)`` to feed the metrics
    of this module. ``img`` may be a NumPy array or a ``torch.Tensor`` (detached and moved to the CPU);
    a ``uint8`` input is returned as a NumPy array unchanged.
    """
    if hasattr(img, "detach"):  # torch.Tensor, without importing torch here
        img = img.detach().cpu()
        if not img.is_floating_point():
            img = img.double()
        img = img.numpy()
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"to_uint8 expects a float image in [0, 1] (or uint8), got dtype {arr.dtype}")
    scaled = np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (prediction, ground truth) pair of ``uint8`` images and return them as float64."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"image shape mismatch: prediction has shape {pred.shape}, ground truth has shape {gt.shape}"
        )
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {pred.shape}")
    for what, arr in (("prediction", pred), ("ground truth", gt)):
        if arr.dtype != np.uint8:
            raise TypeError(
                f"{what} must be uint8 (peak 255), got dtype {arr.dtype}; convert float images in "
                "[0, 1] with to_uint8() first"
            )
    return pred.astype(np.float64), gt.astype(np.float64)


def psnr_255(pred_uint8: np.ndarray, gt_uint8: np.ndarray) -> float:
    """PSNR in dB of one ``uint8`` image pair with peak 255, MSE over all pixels and channels.

    ``10 * log10(255**2 / mean((pred - gt)**2))``, no border crop (the GoPro/HIDE MATLAB ``psnr``).
    Identical images give ``inf``. Shapes ``(H, W, C)`` or ``(H, W)``, equal for both inputs.
    """
    pred, gt = _check_pair(pred_uint8, gt_uint8)
    mse = float(np.mean((pred - gt) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def gaussian_taps(sigma: float = SIGMA, radius: int = RADIUS) -> np.ndarray:
    """Normalised 1-D Gaussian window ``exp(-x**2 / (2 sigma**2))`` for ``x = -radius..radius``.

    With sigma 1.5 and radius 5 this is the 11-tap window of MATLAB ``ssim`` and of skimage's
    ``structural_similarity(gaussian_weights=True)``; the 2-D and 3-D windows are its outer products.
    """
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def ssim_map(
    x: np.ndarray,
    y: np.ndarray,
    axes: Sequence[int],
    mode: str,
    data_range: float,
    sigma: float = SIGMA,
    radius: int = RADIUS,
) -> np.ndarray:
    """SSIM map of two float64 arrays with a separable Gaussian window along ``axes``.

    Local means, variances and the covariance are Gaussian-weighted (population statistics, i.e.
    ``E[x^2] - E[x]^2``), with ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` and ``L = data_range``. ``mode`` is the
    ``scipy.ndimage`` boundary mode: ``"nearest"`` is MATLAB's replicate padding, ``"reflect"`` is
    skimage's. Returns an array of the input shape (no crop).
    """
    taps = gaussian_taps(sigma, radius)

    def blur(a: np.ndarray) -> np.ndarray:
        for ax in axes:
            a = correlate1d(a, taps, axis=ax, mode=mode)
        return a

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_x = blur(x)
    mu_y = blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov_xy = blur(x * y) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim_3d(pred_uint8: np.ndarray, gt_uint8: np.ndarray) -> float:
    """SSIM as MATLAB's ``ssim`` computes it on an RGB image: the image is one 3-D volume.

    This is the SSIM of the GoPro/HIDE evaluation script used by MPRNet, Restormer and followers.

    * Input: ``uint8`` arrays of shape ``(H, W, 3)`` (any ``(H, W, C)``) or ``(H, W)``; ``L = 255``,
      ``K1 = 0.01``, ``K2 = 0.03``.
    * Window: the 11x11x11 Gaussian with sigma 1.5 (normalised over the full cube), applied separably
      along rows, columns **and the channel axis**, with replicate padding on every axis
      (``scipy.ndimage`` mode ``"nearest"``).
    * Channel axis: it has only 3 samples, so the 11-tap window runs mostly over replicated copies of the
      edge channels. For output channel ``c`` the weight on input channel ``k`` is the sum of the taps
      ``g[t]`` (``t = -5..5``) with ``clip(c + t, 0, 2) == k``. Over (R, G, B) the R output weighs
      (sum g[t<=0], g[1], sum g[t>=2]) ~ (0.633, 0.213, 0.154), G weighs (sum g[t<=-1], g[0],
      sum g[t>=1]) ~ (0.367, 0.266, 0.367), and B mirrors R. Local means, variances and covariances
      therefore mix the three colour channels; the map keeps one entry per channel.
    * Result: the mean of the full SSIM map (all H*W*C entries, no border crop). A 2-D input gives
      MATLAB's 2-D ``ssim`` (same window in the image plane, replicate padding).

    On natural images this reads above :func:`ssim_per_channel` (about +0.015 around 39.5 dB), which is
    why published GoPro SSIMs are 0.96-0.97.
    """
    pred, gt = _check_pair(pred_uint8, gt_uint8)
    axes = tuple(range(pred.ndim))
    return float(np.mean(ssim_map(pred, gt, axes=axes, mode="nearest", data_range=255.0)))


def ssim_per_channel(pred_uint8: np.ndarray, gt_uint8: np.ndarray) -> float:
    """Per-channel 2-D Gaussian SSIM, averaged over channels (the BasicSR / skimage convention).

    Equals ``skimage.metrics.structural_similarity(pred, gt, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=2)``: an 11x11 Gaussian window (sigma
    1.5) in the image plane only, ``reflect`` padding, the 5-pixel border of each map cropped before
    the mean, and the channel means averaged. Input ``uint8`` of shape ``(H, W, C)`` or ``(H, W)``,
    with ``H, W >= 11``.
    """
    pred, gt = _check_pair(pred_uint8, gt_uint8)
    h, w = pred.shape[:2]
    win = 2 * RADIUS + 1
    if h < win or w < win:
        raise ValueError(f"per-channel SSIM needs images of at least {win}x{win} pixels, got {h}x{w}")
    smap = ssim_map(pred, gt, axes=(0, 1), mode="reflect", data_range=255.0)
    cropped = smap[RADIUS:-RADIUS, RADIUS:-RADIUS]
    if cropped.ndim == 2:
        return float(cropped.mean())
    return float(cropped.mean(axis=(0, 1)).mean())
