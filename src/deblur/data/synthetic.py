"""Built-in synthetic deblurring dataset: GoPro-style blurry/sharp pairs from scikit-image's photos.

GoPro (Nah et al., CVPR 2017) makes a blurry frame by averaging consecutive sharp frames of a hand-held
high-speed video, in approximately linear light, and keeps the middle frame as the sharp target. This
module imitates that process on still photos so that the suite trains and validates out of the box,
without a download:

1. :func:`random_trajectory` draws a smooth camera path over the exposure: ``num_frames`` sub-frames of a
   translation (a random walk of heading and speed, so the path curves and accelerates like a hand-held
   shake) plus a small linear in-plane rotation. Positions are relative to the middle of the exposure,
   which is what the sharp image shows (GoPro's convention).
2. :func:`blur_with_trajectory` warps the sharp photo to every sub-frame with ``cv2.warpAffine``, averages
   in linear light (``linear = (x / 255) ** gamma``, ``gamma = 2.2`` by default), converts back with
   ``1 / gamma``, adds optional Gaussian noise (std in 8-bit units) and quantises to uint8.
3. :func:`make_pairs` does this for a list of photos with a seed per (photo, pair index), and crops a
   margin off both images so that the blurry image never contains pixels from outside the photo (no black
   or mirrored borders): the pairs are ``2 * pair_margin(...)`` pixels smaller than the (possibly
   downscaled) photo in each dimension.

Calibration. The defaults of :class:`BlurSpec` were chosen so that the blurry inputs of the validation
set score in the mid-20s dB PSNR against their sharp images (target 25-27 dB, a GoPro-like difficulty;
per-image PSNR, peak 255, all channels). Measured over ``VAL_PHOTOS`` at full resolution with seed 0 and
32 pairs per photo: 26.1 dB mean (astronaut 25.1, coffee 26.1, camera 27.0; single pairs range from
22 to 32 dB). Blur lengths are in pixels of the images the pairs are made at, so a downscaled set is a
little harder: 25.5 dB at ``max_side=320``, 24.3 dB at ``max_side=256``; ``BlurSpec().scaled(factor)``
shortens the paths if you want the full-resolution difficulty back.

Photo splits. The validation set's source photos never appear in training: ``VAL_PHOTOS`` is
``astronaut``, ``coffee`` and ``camera``; ``TRAIN_PHOTOS`` holds eight other photos. Both stereo views of
the motorcycle scene are in the training list so that no scene is shared across the split (``cat`` is
not offered: it is the same photo as ``chelsea``). ``AVAILABLE_PHOTOS`` lists every name
:func:`load_photo` accepts, including a few used by neither split.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

from deblur.data.base import InMemoryPairDataset, PairTransform

Pair = tuple[np.ndarray, np.ndarray, str]


# --------------------------------------------------------------------------------------------- photos
def _stereo(view: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[view]

    return load


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


# Real photographs that scikit-image ships inside its wheel (they load without a download). Grayscale
# ones are replicated to three channels by load_photo.
_PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "brick": _skimage("brick"),
    "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "coins": _skimage("coins"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "moon": _skimage("moon"),
    "motorcycle_left": _stereo(0),
    "motorcycle_right": _stereo(1),
    "page": _skimage("page"),
    "retina": _skimage("retina"),
    "rocket": _skimage("rocket"),
    "text": _skimage("text"),
}

#: Every name :func:`load_photo` accepts.
AVAILABLE_PHOTOS: tuple[str, ...] = tuple(sorted(_PHOTO_LOADERS))

#: Source photos of the training split (disjoint from ``VAL_PHOTOS``; both motorcycle views stay here).
TRAIN_PHOTOS: tuple[str, ...] = (
    "chelsea",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "coins",
)

#: Source photos of the validation split; none of them is used for training.
VAL_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "camera")


@cache
def _load_cached(name: str) -> np.ndarray:
    image = np.asarray(_PHOTO_LOADERS[name]())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"photo {name!r} has unsupported shape {image.shape} / dtype {image.dtype}")
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


def load_photo(name: str) -> np.ndarray:
    """Load one of scikit-image's bundled photos as an HxWx3 uint8 RGB array (a fresh, writable copy).

    Grayscale photos are replicated to three channels. Raises ``ValueError`` listing ``AVAILABLE_PHOTOS``
    for an unknown name.
    """
    if name not in _PHOTO_LOADERS:
        raise ValueError(f"unknown photo {name!r}; available photos: {', '.join(AVAILABLE_PHOTOS)}")
    return _load_cached(name).copy()


# --------------------------------------------------------------------------------------- blur model
@dataclass(frozen=True)
class BlurSpec:
    """How a blurry image is synthesised from a sharp one (defaults calibrated to GoPro-like difficulty).

    Trajectory (see :func:`random_trajectory`):
        num_frames: sub-frames averaged over the exposure (GoPro averages 7-13 frames of a 240 fps video;
            more sub-frames give a continuous streak instead of ghosted copies).
        min_length_px, max_length_px: the path length of the translation over the whole exposure is drawn
            uniformly from this range, in pixels of the image being blurred (a random speed).
        turn_std_deg: std of the change of heading between consecutive sub-frames (0 = straight line;
            larger = more curved, shaky paths). The initial heading is uniform in [0, 360).
        speed_jitter: std of the per-sub-frame change of log speed (0 = constant speed).
        max_rotation_deg: the in-plane rotation over the whole exposure is drawn uniformly from
            [-max_rotation_deg, max_rotation_deg], about the image centre.

    Synthesis (see :func:`blur_with_trajectory`):
        gamma: sub-frames are averaged in linear light, ``linear = (x / 255) ** gamma`` (2.2 ~ sRGB).
        noise_std: std of Gaussian noise added to the blurry image, in 8-bit units (0 disables it).
    """

    num_frames: int = 21
    min_length_px: float = 3.0
    max_length_px: float = 10.0
    turn_std_deg: float = 8.0
    speed_jitter: float = 0.15
    max_rotation_deg: float = 1.0
    gamma: float = 2.2
    noise_std: float = 1.0

    def __post_init__(self) -> None:
        if int(self.num_frames) != self.num_frames or self.num_frames < 1:
            raise ValueError(f"BlurSpec.num_frames must be a positive integer, got {self.num_frames}")
        if not 0 <= self.min_length_px <= self.max_length_px:
            raise ValueError(
                "BlurSpec needs 0 <= min_length_px <= max_length_px, got "
                f"min_length_px={self.min_length_px}, max_length_px={self.max_length_px}"
            )
        for field_name in ("turn_std_deg", "speed_jitter", "max_rotation_deg", "noise_std"):
            value = getattr(self, field_name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"BlurSpec.{field_name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"BlurSpec.gamma must be > 0, got {self.gamma}")

    def scaled(self, factor: float) -> BlurSpec:
        """The same blur for images resized by ``factor`` (path lengths scaled; angles unchanged)."""
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        return replace(
            self, min_length_px=self.min_length_px * factor, max_length_px=self.max_length_px * factor
        )


def random_trajectory(rng: np.random.Generator, spec: BlurSpec) -> np.ndarray:
    """Draw a smooth random camera trajectory over one exposure.

    Returns a ``(spec.num_frames, 3)`` float64 array; row ``i`` is ``(dx, dy, angle_deg)`` of sub-frame
    ``i``: the image content is shifted by ``(dx, dy)`` pixels (x right, y down) and rotated by
    ``angle_deg`` degrees (counter-clockwise, as ``cv2.getRotationMatrix2D``) about the image centre.
    The motion is relative to the middle of the exposure (the sharp frame), so the trajectory passes
    through ``(0, 0, 0)`` at time 0.5.

    The path is a random walk of the heading (std ``turn_std_deg`` per step) and of the log speed (std
    ``speed_jitter`` per step), rescaled to a total length drawn from
    ``[min_length_px, max_length_px]``; the rotation grows linearly over the exposure up to a total drawn
    from ``[-max_rotation_deg, max_rotation_deg]``.
    """
    n = int(spec.num_frames)
    length = rng.uniform(spec.min_length_px, spec.max_length_px)
    total_rotation = rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg)
    heading0 = rng.uniform(0.0, 2.0 * np.pi)
    if n == 1:
        return np.zeros((1, 3))
    turns = np.deg2rad(rng.normal(0.0, spec.turn_std_deg, n - 2)) if n > 2 else np.zeros(0)
    heading = heading0 + np.concatenate([[0.0], np.cumsum(turns)])
    speed = np.exp(np.cumsum(rng.normal(0.0, spec.speed_jitter, n - 1)))
    steps = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    positions = np.vstack([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    positions *= length / speed.sum()  # each step has length speed[i]: total path length == length
    t = np.linspace(0.0, 1.0, n)
    positions -= [np.interp(0.5, t, positions[:, k]) for k in range(2)]
    angles = total_rotation * (t - 0.5)
    return np.column_stack([positions, angles])


def _check_trajectory(trajectory: np.ndarray) -> np.ndarray:
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.ndim != 2 or trajectory.shape[1] != 3 or len(trajectory) < 1:
        raise ValueError(
            f"trajectory must have shape (N >= 1, 3) of (dx, dy, angle_deg), got {trajectory.shape}"
        )
    if not np.isfinite(trajectory).all():
        raise ValueError("trajectory contains non-finite values")
    return trajectory


def _to_linear_lut(gamma: float) -> np.ndarray:
    return ((np.arange(256, dtype=np.float64) / 255.0) ** gamma).astype(np.float32)


def _average_warps(linear: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """Mean over sub-frames of the warped float32 linear image (same size; reflect borders)."""
    h, w = linear.shape[:2]
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    acc = np.zeros_like(linear)
    for dx, dy, angle in trajectory:
        if dx == 0 and dy == 0 and angle == 0:
            acc += linear
            continue
        matrix = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
        matrix[0, 2] += dx
        matrix[1, 2] += dy
        acc += cv2.warpAffine(
            linear, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    acc *= 1.0 / len(trajectory)
    return acc


def _to_uint8(linear: np.ndarray, spec: BlurSpec, rng: np.random.Generator | None) -> np.ndarray:
    """Linear float32 -> gamma-encoded, optionally noisy, quantised uint8."""
    encoded = np.power(np.clip(linear, 0.0, 1.0), np.float32(1.0 / spec.gamma)) * np.float32(255.0)
    if spec.noise_std > 0:
        rng = rng if rng is not None else np.random.default_rng()
        encoded += rng.normal(0.0, spec.noise_std, encoded.shape).astype(np.float32)
    return np.clip(np.rint(encoded), 0, 255).astype(np.uint8)


def blur_with_trajectory(
    sharp_uint8: np.ndarray,
    trajectory: np.ndarray,
    spec: BlurSpec,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Blur an HxWx3 uint8 image along ``trajectory`` (from :func:`random_trajectory` or your own).

    Each row ``(dx, dy, angle_deg)`` gives one sub-frame (see :func:`random_trajectory`); the sub-frames
    are averaged in linear light (gamma ``spec.gamma``), re-encoded, ``spec.noise_std`` Gaussian noise is
    added (drawn from ``rng``; a fresh unseeded generator when None) and the result is rounded to uint8.
    Returns an HxWx3 uint8 array of the input's size. Pixels that a sub-frame moves in from outside the
    image are taken from the mirrored image (``BORDER_REFLECT_101``); :func:`make_pairs` crops them away.
    A trajectory of zeros reproduces the input (when ``noise_std == 0``).
    """
    if sharp_uint8.dtype != np.uint8 or sharp_uint8.ndim != 3 or sharp_uint8.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {sharp_uint8.shape} {sharp_uint8.dtype}")
    trajectory = _check_trajectory(trajectory)
    linear = _to_linear_lut(spec.gamma)[sharp_uint8]
    return _to_uint8(_average_warps(linear, trajectory), spec, rng)


def pair_margin(height: int, width: int, spec: BlurSpec) -> int:
    """Pixels cropped off each side of a ``height`` x ``width`` photo by :func:`make_pairs`.

    Large enough that no sub-frame of any trajectory ``spec`` can draw brings outside pixels into the
    kept window: the longest path (a sub-frame is at most the whole path length away from the middle
    frame) plus the displacement of the corners by half the largest rotation, plus one pixel for the
    bilinear interpolation.
    """
    half_diagonal = 0.5 * math.hypot(height, width)
    rotation = half_diagonal * math.sin(math.radians(spec.max_rotation_deg / 2.0))
    return int(math.ceil(spec.max_length_px + rotation)) + 1


def _pair_rng(seed: int, photo: str, index: int) -> np.random.Generator:
    # Independent of the order of photo_names: one stream per (seed, photo, pair index).
    return np.random.default_rng([seed, zlib.crc32(photo.encode()), index])


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_pairs(
    photo_names: Sequence[str],
    pairs_per_photo: int,
    spec: BlurSpec,
    seed: int,
    max_side: int | None = None,
) -> list[Pair]:
    """Make ``pairs_per_photo`` blurry/sharp pairs of each photo: ``[(blurry, sharp, name), ...]``.

    ``blurry`` and ``sharp`` are HxWx3 uint8 arrays of the same size: the photo (first downscaled with
    ``cv2.INTER_AREA`` so that its longest side is at most ``max_side``, when given) minus a
    :func:`pair_margin` border on each side, so that the blurry image only contains content from inside
    the photo. ``name`` is ``"<photo>_<index:02d>"``. Pair ``k`` of a photo depends only on
    ``(seed, photo, k, spec, max_side)``: the same seed gives identical pairs; another seed gives other
    trajectories and noise.
    """
    pairs_per_photo = _check_positive_int("pairs_per_photo", pairs_per_photo)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if max_side is not None:
        max_side = _check_positive_int("max_side", max_side)
    if isinstance(photo_names, str):
        raise ValueError(f"photo_names must be a sequence of names, not the string {photo_names!r}")
    if not photo_names:
        raise ValueError("photo_names is empty")
    lut = _to_linear_lut(spec.gamma)
    pairs: list[Pair] = []
    for photo_name in photo_names:
        photo = load_photo(photo_name)
        h, w = photo.shape[:2]
        if max_side is not None and max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            h, w = photo.shape[:2]
        m = pair_margin(h, w, spec)
        if h - 2 * m < 8 or w - 2 * m < 8:
            raise ValueError(
                f"photo {photo_name!r} at {h}x{w} is too small for a {m}-pixel blur margin; "
                "raise max_side or shorten the blur"
            )
        window = (slice(m, h - m), slice(m, w - m))
        sharp = np.ascontiguousarray(photo[window])
        linear = lut[photo]
        for k in range(pairs_per_photo):
            rng = _pair_rng(int(seed), photo_name, k)
            trajectory = random_trajectory(rng, spec)
            blurred = _average_warps(linear, trajectory)[window]
            pairs.append((_to_uint8(blurred, spec, rng), sharp, f"{photo_name}_{k:02d}"))
    return pairs


_SPLITS = {"train": TRAIN_PHOTOS, "val": VAL_PHOTOS}


def build_synthetic_dataset(
    split: str,
    *,
    pairs_per_photo: int,
    crop_size: int | None,
    seed: int,
    spec: BlurSpec | None = None,
    max_side: int | None = None,
    transform: PairTransform | None = None,
    repeats: int = 1,
) -> InMemoryPairDataset:
    """The built-in dataset: ``split="train"`` uses ``TRAIN_PHOTOS`` with random crops, ``"val"`` uses
    ``VAL_PHOTOS`` with centre crops (``crop_size=None``: whole images, whose sizes differ per photo).

    Items are ``{"blurry", "sharp": (3, H, W) float32 in [0, 1], "name": str, "source": str}`` (see
    :class:`deblur.data.base.PairDataset`; ``source`` is the photo, shared by its ``pairs_per_photo``
    pairs). ``transform`` is the paired augmentation applied after
    cropping (:func:`deblur.data.augment.make_pipeline`); ``repeats`` serves each pair several times per
    epoch (with different random crops for training). The pairs are generated once, in memory, by
    :func:`make_pairs` with ``spec`` (default ``BlurSpec()``).
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    pairs_per_photo = _check_positive_int("pairs_per_photo", pairs_per_photo)
    repeats = _check_positive_int("repeats", repeats)
    if crop_size is not None:
        crop_size = _check_positive_int("crop_size", crop_size)
    spec = spec if spec is not None else BlurSpec()
    pairs = make_pairs(_SPLITS[split], pairs_per_photo, spec, seed, max_side=max_side)
    if crop_size is not None:
        smallest = min(pairs, key=lambda pair: min(pair[1].shape[:2]))
        if min(smallest[1].shape[:2]) < crop_size:
            h, w = smallest[1].shape[:2]
            raise ValueError(
                f"crop_size={crop_size} is larger than the {split} pair {smallest[2]!r} ({h}x{w}); "
                "use a smaller crop_size or a larger max_side"
            )
    sources = [name.rsplit("_", 1)[0] for _, _, name in pairs]  # "<photo>_<k>": the pairs of a photo
    return InMemoryPairDataset(
        pairs,
        repeats=repeats,
        sources=sources,
        crop_size=crop_size,
        random_crop=split == "train",
        transform=transform,
    )
