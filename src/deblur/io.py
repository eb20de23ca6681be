"""Image files in and out: one reader, one writer, one list of extensions, one EXIF rule.

Every part of the suite that touches image files (datasets, ``deblur-predict``, ``deblur-score``,
``deblur-eval``, ``deblur-prepare``) goes through this module, so an image means the same thing
everywhere:

* :data:`IMAGE_EXTENSIONS`: the file endings treated as images (``.npy`` arrays written by
  ``deblur-prepare`` are listed separately in :data:`ARRAY_EXTENSIONS`).
* :func:`read_image`: decode a file as its stored samples (uint8 or uint16), RGB channel order, the EXIF
  orientation applied, plus an :class:`ImageMeta` saying how it was stored (gray, alpha, bit depth).
* The EXIF rule: an image carrying an EXIF orientation tag (JPEG, TIFF, WebP, PNG ``eXIf``) is turned
  upright, as an image viewer shows it (:func:`exif_orientation`, :func:`apply_orientation`), in every
  reader and in :func:`image_size`. A blurry JPEG shot in portrait is therefore paired with its sharp
  image in the orientation the photographer saw, whether or not the sharp file carries the tag.
* :func:`write_image`: PNG (8 or 16 bit), atomically, never over an input file (callers check).
* Conversions: :func:`to_rgb` (gray -> 3 channels, alpha dropped), :func:`to_uint8` (16-bit -> 8-bit by
  ``round(v * 255 / 65535)``), :func:`to_float` / :func:`from_float` (samples <-> [0, 1] floats).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deblur.errors import UserError
from deblur.utils.files import atomic_write

#: file endings read as images, lower case (the one list: datasets, predict, score)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
#: memory-mapped uint8 (H, W, 3) arrays written by ``deblur-prepare format=npy`` (datasets only)
ARRAY_EXTENSIONS = frozenset({".npy"})
log = logging.getLogger(__name__)
#: animated files already reported (a dataset reads its files every epoch: one warning each)
_ANIMATED_REPORTED: set[str] = set()
#: EXIF tag number of the orientation
_ORIENTATION_TAG = 0x0112
#: endings whose files may carry EXIF (others are never opened a second time)
_EXIF_EXTENSIONS = frozenset({".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".png"})


class ImageReadError(UserError):
    """A file that is not a readable image; the message names the file."""


def broken_link(path: str | os.PathLike) -> str | None:
    """``<path> is a broken symbolic link (to <target>, which does not exist)`` or None."""
    if os.path.islink(path) and not os.path.exists(path):
        return f"{path} is a broken symbolic link (to {os.readlink(path)}, which does not exist)"
    return None


def _report_animated(path: str | os.PathLike) -> None:
    """Log a warning, once per file, when a GIF holds more than one frame (only the first is read)."""
    if Path(path).suffix.lower() != ".gif" or str(path) in _ANIMATED_REPORTED:
        return
    from PIL import Image

    try:
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1))
    except (OSError, ValueError, SyntaxError):
        return
    if frames > 1:
        _ANIMATED_REPORTED.add(str(path))
        log.warning("%s is an animated GIF (%d frames): only its first frame is used", path, frames)


@dataclass(frozen=True)
class ImageMeta:
    """How an image was stored, so that a result can be saved the same way.

    Attributes:
        gray: the file had one channel.
        depth: bits per sample, 8 or 16.
        alpha: the alpha channel (H, W) in the file's dtype, upright, or None.
        orientation: the EXIF orientation that was applied (1 = none).
    """

    gray: bool
    depth: int
    alpha: np.ndarray | None = None
    orientation: int = 1


def exif_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation tag of ``path`` (1..8), 1 when the file has none or cannot carry one.

    Only the header is read (PIL opens lazily).
    """
    if Path(path).suffix.lower() not in _EXIF_EXTENSIONS:
        return 1
    from PIL import Image

    try:
        with Image.open(path) as im:
            return _orientation_of(im)
    except (OSError, ValueError, SyntaxError):
        return 1


def _orientation_of(im: Any) -> int:
    """The orientation tag of an open PIL image without decoding its pixels (1 when absent or bad)."""
    # a PNG's eXIf chunk may follow the pixel data; PIL would decode the image to reach it
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W[, C]) array stored with EXIF ``orientation`` upright (as a viewer shows it).

    Orientation values (EXIF 2.3): 1 upright, 2 mirrored, 3 rotated 180, 4 flipped vertically,
    5 transposed, 6 rotated 90 clockwise to view, 7 transversed, 8 rotated 90 counter-clockwise to view.

    Examples:
        >>> a = np.arange(6).reshape(2, 3)
        >>> apply_orientation(a, 6).shape
        (3, 2)
        >>> apply_orientation(a, 6)[0].tolist()   # the first row of the upright image: the left column
        [3, 0]
    """
    if orientation == 2:
        out = image[:, ::-1]
    elif orientation == 3:
        out = image[::-1, ::-1]
    elif orientation == 4:
        out = image[::-1]
    elif orientation == 5:
        out = np.swapaxes(image, 0, 1)
    elif orientation == 6:
        out = np.swapaxes(image[::-1], 0, 1)
    elif orientation == 7:
        out = np.swapaxes(image[::-1, ::-1], 0, 1)
    elif orientation == 8:
        out = np.swapaxes(image[:, ::-1], 0, 1)
    else:
        return image
    return np.ascontiguousarray(out)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Decode an image file as stored: ``(H, W)`` gray or ``(H, W, 3)`` RGB, uint8 or uint16, upright.

    The alpha channel of an RGBA / gray+alpha file is returned in :class:`ImageMeta`, not in the array.

    Args:
        path: an image file (one of :data:`IMAGE_EXTENSIONS`).

    Returns:
        ``(array, meta)``.

    Raises:
        ImageReadError: the file is missing, truncated or not an 8-/16-bit image; the message names it.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        unreadable = f"cannot read image file {path} (missing, unreadable or corrupt)"
        raise ImageReadError(broken_link(path) or unreadable)
    _report_animated(path)
    if img.dtype == np.uint8:
        depth = 8
    elif img.dtype == np.uint16:
        depth = 16
    else:
        raise ImageReadError(f"{path}: unsupported sample type {img.dtype} (8- or 16-bit images only)")
    alpha = None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha
        img, alpha = img[:, :, 0].copy(), img[:, :, 1].copy()
    if img.ndim == 3:
        if img.shape[2] == 4:
            alpha = img[:, :, 3].copy()
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        else:
            raise ImageReadError(f"{path}: unsupported number of channels {img.shape[2]}")
    orientation = exif_orientation(path)
    img = apply_orientation(img, orientation)
    if alpha is not None:
        alpha = apply_orientation(alpha, orientation)
    return img, ImageMeta(gray=img.ndim == 2, depth=depth, alpha=alpha, orientation=orientation)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image as :func:`read_image` returns it, from the header alone.

    ``.npy`` arrays are memory-mapped. Raises ``OSError`` / ``ValueError`` for an unreadable file
    (:class:`ImageReadError` naming a broken symbolic link).
    """
    path = Path(path)
    if broken_link(path):
        raise ImageReadError(broken_link(path))
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {arr.shape}")
        return int(arr.shape[0]), int(arr.shape[1])
    from PIL import Image

    with Image.open(path) as im:
        width, height = im.size
        orientation = _orientation_of(im)
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def size_text(height: int, width: int) -> str:
    """An image size as every message of the suite writes it: ``"1280x720 (WxH)"``."""
    return f"{width}x{height} (WxH)"


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) gray or (H, W, 3) RGB -> (H, W, 3) RGB, same dtype."""
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 unchanged; uint16 -> uint8 by ``round(v * 255 / 65535)``."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ValueError(f"expected a uint8 or uint16 image, got {image.dtype}")


def peak(dtype: np.dtype | type) -> float:
    """The largest sample value of an integer image type (255 or 65535)."""
    return float(np.iinfo(dtype).max)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 samples -> float32 in [0, 1] (``v / 255`` or ``v / 65535``)."""
    return image.astype(np.float32) / np.float32(peak(image.dtype))


def from_float(image: np.ndarray, depth: int = 8) -> np.ndarray:
    """Floats in [0, 1] -> uint8 (``depth=8``) or uint16 samples, clipped and rounded to nearest."""
    dtype = np.uint16 if depth == 16 else np.uint8
    return np.rint(np.clip(image, 0.0, 1.0) * peak(dtype)).astype(dtype)


def encode_like(rgb: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """A float (H, W, 3) result in [0, 1] -> samples stored like the input ``meta`` describes.

    Gray inputs get the mean of the three channels (an (H, W) result is that mean already, as
    :func:`deblur.inference.restore` returns it for a gray image, and is kept as is); an alpha channel is
    re-attached unchanged; the bit depth is the input's. Returns (H, W), (H, W, 3) or (H, W, 4) RGB[A],
    ready for :func:`write_image`.
    """
    if rgb.ndim == 2:
        out = from_float(rgb, meta.depth)
    elif meta.gray:
        out = from_float(rgb.mean(axis=2), meta.depth)
    else:
        out = from_float(rgb, meta.depth)
    if meta.alpha is not None:
        alpha = meta.alpha.astype(out.dtype)
        out = np.dstack([out, alpha]) if out.ndim == 3 else np.dstack([out, out, out, alpha])
    return out


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Save an RGB[A] / gray uint8 or uint16 array as PNG at ``path``, atomically.

    The file appears complete or not at all (written to a temporary file beside it, then renamed).
    Callers make sure ``path`` is not an input file.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_image takes uint8 or uint16 samples, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)

    def _write(tmp: str) -> None:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"OpenCV could not write {path}")

    return atomic_write(path, _write, suffix=".png")


def list_images(
    folder: str | os.PathLike, recursive: bool = True, extensions: frozenset[str] = IMAGE_EXTENSIONS
) -> dict[str, Path]:
    """Image files under ``folder`` keyed by relative POSIX path without the extension.

    Hidden files and folders (names starting with ``.``) are ignored. Two files that differ only in the
    extension (``a.png`` and ``a.jpg``) are ambiguous: ``ValueError`` naming both. A broken symbolic link
    with an image ending is listed (reading it fails naming the link, :func:`broken_link`).
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(candidates):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() not in extensions or not (path.is_file() or broken_link(path)):
            continue
        key = rel.with_suffix("").as_posix()
        if key in found:
            raise ValueError(f"ambiguous image name {key!r} in {folder}: both {found[key]} and {path}")
        found[key] = path
    return found
