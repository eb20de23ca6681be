"""The one check of the images the API is given (:func:`deblur.restore`, :func:`deblur.score`): an image
is a picture only if it has pixels, and float samples are finite numbers in [0, 1]."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_pixels(image: Any, what: str = "image") -> None:
    """Raise ValueError for an empty image, a NaN or infinite sample, or float samples outside [0, 1].

    Args:
        image: a numpy array or a torch tensor of any layout (integer samples are only checked for size).
        what: how the message names the image (``"prediction"``, ``"image"``).

    Examples:
        >>> check_pixels(np.zeros((4, 4, 3), np.float32))
        >>> try:
        ...     check_pixels(np.full((4, 4), 200.0))
        ... except ValueError as err:
        ...     print(str(err)[-55:])
         0..255 image; divide it by 255 (or pass uint8 samples)
    """
    shape = tuple(image.shape)
    if 0 in shape:
        raise ValueError(f"{what} is empty (shape {shape}): an image needs at least one pixel")
    if hasattr(image, "detach"):  # a torch.Tensor, without importing torch here
        if not image.is_floating_point():
            return
        values = image.detach()
        finite = bool(values.isfinite().all())
        lo, hi = (float(v) for v in values.aminmax()) if finite else (0.0, 0.0)
    else:
        values = np.asarray(image)
        if not np.issubdtype(values.dtype, np.floating):
            return
        finite = bool(np.isfinite(values).all())
        lo, hi = (float(values.min()), float(values.max())) if finite else (0.0, 0.0)
    if not finite:
        raise ValueError(f"{what} holds NaN or infinite samples: an image's samples are finite numbers")
    if lo < 0.0 or hi > 1.0:
        hint = "clip it to [0, 1] if the overshoot is meant to be cut (e.g. np.clip(x, 0, 1))"
        if lo >= 0.0 and 1.5 < hi <= 255.0:
            hint = "this looks like a 0..255 image; divide it by 255 (or pass uint8 samples)"
        elif lo >= 0.0 and 255.0 < hi <= 65535.0:
            hint = "this looks like a 16-bit image; divide it by 65535 (or pass uint16 samples)"
        raise ValueError(f"{what}: float samples must lie in [0, 1], but they span [{lo:g}, {hi:g}]: {hint}")
