"""Evaluation metrics under the conventions of the deblurring papers.

* :mod:`deblur.metrics.protocol`: GoPro / HIDE (8-bit images, PSNR peak 255, MATLAB 3-D SSIM, and the
  per-channel SSIM of Python codebases).
* :mod:`deblur.metrics.realblur`: the RealBlur protocol (gain match + ECC homography alignment, masked
  PSNR/SSIM).
"""

from deblur.metrics.protocol import psnr_255, ssim_3d, ssim_per_channel, to_uint8
from deblur.metrics.realblur import (
    Alignment,
    EccFallbackWarning,
    align_realblur,
    apply_alignment,
    estimate_alignment,
    realblur_scores,
)

__all__ = [
    "Alignment",
    "EccFallbackWarning",
    "align_realblur",
    "apply_alignment",
    "estimate_alignment",
    "psnr_255",
    "realblur_scores",
    "ssim_3d",
    "ssim_per_channel",
    "to_uint8",
]
