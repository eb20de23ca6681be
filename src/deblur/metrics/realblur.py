"""The RealBlur evaluation protocol: align the prediction to the ground truth, then score masked pixels.

RealBlur ground truth is captured by a second camera, so a prediction and its ground truth can be off by
a small geometric and photometric change. The dataset's evaluation (reused by MPRNet, Restormer and
followers) therefore aligns before scoring:

1. global intensity gain: the prediction is scaled by the least-squares gain
   ``s = sum(gt * pred) / sum(pred * pred)`` over all pixels and channels;
2. ``cv2.findTransformECC`` with a homography (``MOTION_HOMOGRAPHY``), 100 iterations, on the grayscale
   images (ground truth = template, gain-matched prediction = input), starting from the identity;
3. the gain-matched prediction is warped onto the ground truth with cubic interpolation and
   ``WARP_INVERSE_MAP`` (reflected border), and a validity mask is the warp of an all-ones image
   (nearest interpolation, zero border);
4. prediction and ground truth are both multiplied by the mask;
5. PSNR = ``10 log10(1 / MSE)`` with the MSE summed over all entries and divided by the sum of the mask
   (i.e. over the valid pixels and channels); SSIM = the skimage Gaussian SSIM map (11x11 Gaussian,
   sigma 1.5, population covariance, data range 1, per channel) of the masked images, weighted by the mask
   inside a 5-pixel border crop, averaged per channel, then over channels.

Images are floats in [0, 1] (``uint8`` inputs are divided by 255); shapes ``(H, W, 3)`` RGB or
``(H, W)``. Gain matching and cubic interpolation can overshoot [0, 1] slightly; as in the reference
evaluation, nothing is clipped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

from deblur.metrics.protocol import RADIUS, ssim_map

__all__ = [
    "ECC_ITERATIONS",
    "Alignment",
    "EccFallbackWarning",
    "align_realblur",
    "apply_alignment",
    "estimate_alignment",
    "masked_psnr",
    "masked_ssim",
    "realblur_scores",
]

#: Iterations of the ECC optimiser (the protocol's fixed count; the epsilon criterion is 0).
ECC_ITERATIONS = 100
#: Gaussian pre-smoothing of ``findTransformECC`` (OpenCV's default, passed explicitly).
ECC_GAUSS_FILT_SIZE = 5


class EccFallbackWarning(RuntimeWarning):
    """ECC did not converge (or could not run) and the identity warp was used instead."""


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`estimate_alignment`.

    ``gain``: the intensity gain applied to the prediction; ``warp``: the 3x3 float32 homography (maps
    ground-truth pixel coordinates to prediction coordinates, used with ``WARP_INVERSE_MAP``);
    ``converged``: False when ECC failed and the identity was used; ``message``: the failure reason.
    """

    gain: float
    warp: np.ndarray = field(repr=False)
    converged: bool = True
    message: str = ""


def _as_float(img: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{what} must be a float image in [0, 1] or uint8, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _check_shapes(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(
            f"image shape mismatch: prediction has shape {pred.shape}, ground truth has shape {gt.shape}"
        )
    if pred.ndim not in (2, 3) or (pred.ndim == 3 and pred.shape[2] not in (1, 3)):
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {pred.shape}")


def _gray(img: np.ndarray) -> np.ndarray:
    """float32 grayscale of an RGB (ITU-R BT.601 weights, as ``cv2.COLOR_RGB2GRAY``) or gray image."""
    img32 = np.ascontiguousarray(img, dtype=np.float32)
    if img32.ndim == 3 and img32.shape[2] == 3:
        return cv2.cvtColor(img32, cv2.COLOR_RGB2GRAY)
    return img32.reshape(img32.shape[:2])


def _find_ecc(template: np.ndarray, moving: np.ndarray, warp: np.ndarray, iterations: int):
    """``cv2.findTransformECC`` across OpenCV versions.

    OpenCV >= 4.1 (including 5.x) has the 7-argument form ``(template, input, warp, motionType, criteria,
    inputMask, gaussFiltSize)``; 3.x and 4.0 only the 5/6-argument form without ``gaussFiltSize``.
    """
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 0.0)
    try:
        return cv2.findTransformECC(
            template, moving, warp, cv2.MOTION_HOMOGRAPHY, criteria, None, ECC_GAUSS_FILT_SIZE
        )
    except TypeError:  # older signature without gaussFiltSize
        return cv2.findTransformECC(template, moving, warp, cv2.MOTION_HOMOGRAPHY, criteria)


def estimate_alignment(pred: np.ndarray, gt: np.ndarray, iterations: int = ECC_ITERATIONS) -> Alignment:
    """Gain and homography that bring ``pred`` onto ``gt`` (steps 1-2 of the protocol).

    ``pred``, ``gt``: float images in [0, 1] (or ``uint8``) of equal shape ``(H, W, 3)`` or ``(H, W)``.
    If ECC raises (no convergence, degenerate image), the identity warp is returned with
    ``converged=False`` and the error message; nothing is raised.
    """
    pred_f = _as_float(pred, "prediction")
    gt_f = _as_float(gt, "ground truth")
    _check_shapes(pred_f, gt_f)
    denom = float(np.sum(pred_f * pred_f))
    gain = float(np.sum(gt_f * pred_f)) / denom if denom > 0 else 1.0
    warp = np.eye(3, dtype=np.float32)
    try:
        _, warp = _find_ecc(_gray(gt_f), _gray(pred_f * gain), warp, iterations)
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return Alignment(gain=gain, warp=np.eye(3, dtype=np.float32), converged=False, message=msg)
    if not np.all(np.isfinite(warp)):
        return Alignment(
            gain=gain, warp=np.eye(3, dtype=np.float32), converged=False, message="non-finite homography"
        )
    return Alignment(gain=gain, warp=np.asarray(warp, dtype=np.float32))


def apply_alignment(
    pred: np.ndarray, gt: np.ndarray, alignment: Alignment
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp the gain-matched ``pred`` onto ``gt`` and mask both (steps 3-4 of the protocol).

    Returns ``(aligned_pred, aligned_gt, mask)``: float64 arrays of the input shape; ``mask`` is 1 where
    the warped prediction has valid pixels and 0 outside (repeated over channels).
    """
    pred_f = _as_float(pred, "prediction")
    gt_f = _as_float(gt, "ground truth")
    _check_shapes(pred_f, gt_f)
    h, w = gt_f.shape[:2]
    # Warp in float32: OpenCV 5.0's cubic interpolation returns garbage for float64 images (nearest and
    # linear are fine), so the float64 path cannot be trusted across versions.
    warped = cv2.warpPerspective(
        np.ascontiguousarray(pred_f * alignment.gain, dtype=np.float32),
        alignment.warp,
        (w, h),
        flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    mask = cv2.warpPerspective(
        np.ones(pred_f.shape, dtype=np.float32),
        alignment.warp,
        (w, h),
        flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    # OpenCV drops a trailing channel axis of size 1; restore the input layout.
    warped = warped.reshape(pred_f.shape).astype(np.float64)
    mask = mask.reshape(pred_f.shape).astype(np.float64)
    return warped * mask, gt_f * mask, mask


def align_realblur(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align a prediction to its ground truth as the RealBlur evaluation does.

    ``pred``, ``gt``: float images in [0, 1] (or ``uint8``) of equal shape ``(H, W, 3)`` RGB or
    ``(H, W)``. Gain match, ECC homography (100 iterations, grayscale), cubic inverse warp, validity
    mask. Returns ``(aligned_pred, aligned_gt, mask)`` as float64 arrays of the input shape, both images
    already multiplied by the mask. If ECC fails, the identity warp is used and an
    :class:`EccFallbackWarning` is issued (use :func:`estimate_alignment` to get the flag).
    """
    alignment = estimate_alignment(pred, gt)
    if not alignment.converged:
        warnings.warn(
            f"ECC alignment failed ({alignment.message}); using the identity warp",
            EccFallbackWarning,
            stacklevel=2,
        )
    return apply_alignment(pred, gt, alignment)


def masked_psnr(aligned_pred: np.ndarray, aligned_gt: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (data range 1) with the squared error summed over all entries divided by ``mask.sum()``.

    Inputs are the outputs of :func:`align_realblur` (already masked). Returns ``inf`` for no error.
    """
    valid = float(np.sum(mask))
    if valid <= 0:
        raise ValueError("the alignment mask is empty: no valid pixels to score")
    mse = float(np.sum((aligned_gt - aligned_pred) ** 2)) / valid
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / mse))


def masked_ssim(aligned_pred: np.ndarray, aligned_gt: np.ndarray, mask: np.ndarray) -> float:
    """Mask-weighted SSIM of the RealBlur protocol (data range 1).

    The per-channel skimage Gaussian SSIM map (11x11, sigma 1.5, population covariance, reflect padding)
    of the masked images is multiplied by the mask, a 5-pixel border is cropped, each channel's map is
    summed and divided by the cropped mask's sum for that channel, and the channel values are averaged.
    """
    smap = ssim_map(aligned_pred, aligned_gt, axes=(0, 1), mode="reflect", data_range=1.0) * mask
    r = RADIUS
    crop_map = smap[r:-r, r:-r]
    crop_mask = mask[r:-r, r:-r]
    per_channel = crop_map.sum(axis=(0, 1)) / crop_mask.sum(axis=(0, 1))
    return float(np.mean(per_channel))


def realblur_scores(pred_uint8: np.ndarray, gt_uint8: np.ndarray) -> dict[str, float | bool]:
    """Score one ``uint8`` pair under the RealBlur protocol.

    ``pred_uint8``, ``gt_uint8``: ``uint8`` arrays of equal shape ``(H, W, 3)`` RGB (or ``(H, W)``),
    at least 11x11. Returns ``{"psnr": dB, "ssim": value, "ecc_converged": bool}``; ``ecc_converged`` is
    False when the ECC alignment failed and the identity warp was used (the pair is still scored).
    """
    pred = np.asarray(pred_uint8)
    gt = np.asarray(gt_uint8)
    if pred.shape != gt.shape:
        raise ValueError(
            f"image shape mismatch: prediction has shape {pred.shape}, ground truth has shape {gt.shape}"
        )
    for what, arr in (("prediction", pred), ("ground truth", gt)):
        if arr.dtype != np.uint8:
            raise TypeError(f"{what} must be uint8, got dtype {arr.dtype}; use to_uint8() first")
    h, w = pred.shape[:2]
    if h <= 2 * RADIUS or w <= 2 * RADIUS:
        raise ValueError(f"RealBlur scoring needs images larger than {2 * RADIUS}x{2 * RADIUS}, got {h}x{w}")
    alignment = estimate_alignment(pred, gt)
    aligned_pred, aligned_gt, mask = apply_alignment(pred, gt, alignment)
    return {
        "psnr": masked_psnr(aligned_pred, aligned_gt, mask),
        "ssim": masked_ssim(aligned_pred, aligned_gt, mask),
        "ecc_converged": alignment.converged,
    }
