"""PSNR and SSIM as BasicSR computes them (protocol ``basicsr``): the numbers of BasicSR, NAFNet, Restormer.

BasicSR's ``calculate_psnr`` / ``calculate_ssim`` score two 8-bit images (values 0..255) with two settings:

* ``crop_border``: pixels cut from each of the four borders before scoring (0 = none);
* ``test_y_channel``: score only the luma Y of ITU-R BT.601 YCbCr (MATLAB's ``rgb2ycbcr``),
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B in [0, 1], so Y lies in 16..235. BasicSR
  computes Y from the image scaled to [0, 1] in float32 and keeps Y in float32 (:func:`y_channel` does the
  same), so Y carries float32 rounding (about 1e-5 of a level) and the two agree to ~1e-12, not only to
  that rounding.

Then, on the cropped (and possibly Y) image in float64:

* PSNR: ``10 log10(255**2 / MSE)`` over all pixels and channels (infinite for identical images);
* SSIM: per channel, the 11x11 Gaussian window (sigma 1.5) in the image plane, ``K1 = 0.01``,
  ``K2 = 0.03``, ``L = 255``, only the *valid* part of the SSIM map (5 pixels off every border, i.e. where
  the window lies inside the image), mean over the map, then mean over the channels.

A gray image is scored as the suite scores every gray image: replicated to three channels
(:func:`deblur.metrics.scoring.as_uint8_rgb`), so its Y is ``16 + 219 v / 255``. This is also what BasicSR's
own validation gives, which reads images as colour (three equal channels).

Images are ``uint8`` arrays ``(H, W, 3)`` RGB (or ``(H, W)``); the functions return Python floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deblur.errors import UserError
from deblur.io import size_text
from deblur.metrics.protocol import RADIUS, ssim_map

__all__ = ["Y_WEIGHTS", "basicsr_psnr", "basicsr_scores", "basicsr_ssim", "check_crop_border", "y_channel"]

#: BT.601 luma weights of R, G, B on [0, 1] values (Y = 16 + this dot RGB, on the 0..255 scale)
Y_WEIGHTS = (65.481, 128.553, 24.966)
#: the SSIM window's side: a cropped image must keep at least this many pixels each way
WINDOW = 2 * RADIUS + 1


def check_crop_border(value: Any) -> int:
    """``value`` when it is an integer >= 0 (``crop_border``); else a UserError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise UserError(
            f"crop_border must be an integer >= 0 (pixels cut from each border before scoring, BasicSR's "
            f"key), got {value!r}"
        )
    return int(value)


def check_crop_fits(crop_border: int, height: int, width: int, what: str = "the image") -> None:
    """UserError naming ``crop_border`` when cutting it from each border of an ``height x width`` image
    leaves less than the SSIM window (11x11 pixels)."""
    h, w = height - 2 * crop_border, width - 2 * crop_border
    if h < WINDOW or w < WINDOW:
        raise UserError(
            f"crop_border={crop_border} is too large for {what} ({size_text(height, width)}): cutting it "
            f"from each border leaves {size_text(max(h, 0), max(w, 0))}, and SSIM needs at least "
            f"{WINDOW}x{WINDOW}; lower crop_border"
        )


def y_channel(img: np.ndarray) -> np.ndarray:
    """The BT.601 luma of an RGB ``uint8`` image ``(H, W, 3)``: float64 ``(H, W)``, 0..255 scale (16..235).

    Computed as BasicSR does: the image scaled to [0, 1] in float32, ``(16 + 65.481 R + 128.553 G +
    24.966 B) / 255`` in float64, rounded to float32, times 255 in float32. A 2-D (gray) input is returned
    as float64 unchanged.
    """
    if img.ndim == 2:
        return img.astype(np.float64)
    unit = (img.astype(np.float32) / np.float32(255.0)).astype(np.float64)
    r, g, b = unit[..., 0], unit[..., 1], unit[..., 2]
    wr, wg, wb = Y_WEIGHTS
    y = (b * wb + g * wg + r * wr + 16.0) / 255.0
    return (y.astype(np.float32) * np.float32(255.0)).astype(np.float64)


def _prepare(img: np.ndarray, crop_border: int, test_y_channel: bool) -> np.ndarray:
    """Cropped (and Y) float64 image ``(h, w, c)``."""
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img = y_channel(img)
    img = img.astype(np.float64)
    return img[..., None] if img.ndim == 2 else img


def basicsr_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB, peak 255, of two prepared float64 images (inf when equal)."""
    mse = float(np.mean((pred - gt) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(255.0 * 255.0 / mse))


def basicsr_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over channels of the valid-region Gaussian SSIM of two prepared float64 images ``(h, w, c)``."""
    values = []
    for c in range(pred.shape[2]):
        smap = ssim_map(pred[..., c], gt[..., c], axes=(0, 1), mode="reflect", data_range=255.0)
        values.append(smap[RADIUS:-RADIUS, RADIUS:-RADIUS].mean())
    return float(np.mean(values))


def basicsr_scores(
    pred_uint8: np.ndarray, gt_uint8: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> dict[str, float]:
    """``{"psnr", "ssim"}`` of one ``uint8`` pair (``(H, W, 3)`` RGB or ``(H, W)``, equal shapes) as BasicSR's
    ``calculate_psnr`` / ``calculate_ssim`` give them with these ``crop_border`` / ``test_y_channel``.

    Raises UserError when ``crop_border`` is not an integer >= 0 or leaves less than 11x11 pixels.
    """
    crop_border = check_crop_border(crop_border)
    if pred_uint8.shape != gt_uint8.shape:
        raise ValueError(f"shape mismatch: prediction {pred_uint8.shape}, ground truth {gt_uint8.shape}")
    check_crop_fits(crop_border, *pred_uint8.shape[:2])
    pred = _prepare(pred_uint8, crop_border, test_y_channel)
    gt = _prepare(gt_uint8, crop_border, test_y_channel)
    return {"psnr": basicsr_psnr(pred, gt), "ssim": basicsr_ssim(pred, gt)}
