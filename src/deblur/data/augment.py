"""Paired data augmentation for blurry/sharp training pairs (config group ``augment``).

:func:`make_pipeline` turns the Hydra node of the ``augment`` group (``conf/augment/*.yaml``) into a
callable ``(blurry, sharp) -> (blurry, sharp)`` on HxWx3 uint8 arrays, the ``PairTransform`` of
:mod:`deblur.data.base`. It keeps the size of its input (except ``random_rotate90`` on non-square inputs).

Windows. Rotations and lens distortion fetch pixels from outside the frame they are given, which a crop
of ``crop_size`` would fill with a border (reflected or constant). :meth:`PairAugment.margin` says how many
pixels on each side a ``crop_size`` crop needs so that this never happens: ``PairDataset`` cuts a window
of ``crop_size + 2 * margin`` out of the image (inside the image, where it fits), runs the pipeline on the
window and keeps its centred ``crop_size`` crop (docs/augmentation.md). Pipelines without such transforms
(``none``, ``flip_rot``) have margin 0, and the dataset crops exactly as without augmentation.

Pair semantics. A config has two ordered sections, each mapping a transform name (see
``KNOWN_TRANSFORMS``) to its albumentations 2.x keyword arguments:

* ``scene``: changes of the scene or of the camera geometry (flips, rotations, crops, lens distortion,
  colour, snow, grayscale). One ``albumentations.Compose`` with ``additional_targets={"sharp": "image"}``
  draws ONE set of parameters per call and applies it to both images, so the pair stays aligned and the
  target still shows what the input shows.
* ``capture``: degradations of the capture itself (motion blur, median blur, JPEG). A second Compose
  applies them to the blurry input ONLY; the sharp target is never degraded. Geometric transforms are
  refused here, since they would misalign the pair.

Presets: ``augment=none`` (identity), ``augment=flip_rot`` (the field's standard: horizontal and
vertical flips and 90-degree rotations, i.e. the 8 symmetries of the square, uniformly) and
``augment=fddn``: the 11 augmentations listed in FDDN (Sec. 4.2, Fig. 6): horizontal flip, quality
(JPEG) compression, rotation, optical distortion, colour change, cropping, hue/saturation, motion blur,
median blur, snow and grayscale ("cropping" is the loader's random crop; the resize-crop ``crop``, a zoom,
is listed at p 0). The paper gives no probabilities or strengths; ours are in
``conf/augment/fddn.yaml`` and documented in ``docs/augmentation.md``, with how much each transform
softens the sharp target (:mod:`deblur.data.softening` measures it).

Arguments are checked strictly (``Compose(strict=True)``): a misspelt or renamed argument (for example the
1.x ``quality_lower`` of ``ImageCompression``) raises a ``ValueError`` naming the config path
``augment.<section>.<transform>.<argument>`` instead of being silently ignored.

Randomness. ``seed`` (argument or ``cfg.seed``) seeds both Composes, so the same seed and the same sequence
of inputs give the same outputs. DataLoader workers each receive a copy of the pipeline; so that they do
not replay the same random stream, the first call inside a worker re-seeds the copy from
``(seed, worker id, torch.initial_seed())`` (via ``torch.utils.data.get_worker_info()``). Inside a worker
``torch.initial_seed()`` is torch's per-worker seed (base seed + worker id, redrawn by each new
DataLoader iterator, or whatever a ``worker_init_fn`` such as Lightning's rank-aware one set), so the
streams differ between workers, between epochs of non-persistent workers and between DDP ranks under
``seed_everything(workers=True)``, and are reproducible when torch is seeded. In the main process
(``num_workers=0``) the stream simply continues across epochs.

Training draws. During training the sampler hands the dataset ``(index, draw_seed)`` pairs and the
dataset calls :meth:`PairAugment.seed_draw` before each sample (the window it cuts is drawn from
``draw_seed`` too): the augmentation then depends on ``(seed, draw_seed)`` only, i.e. on ``(augment
seed, run seed, epoch, index)``, the same with any number of workers or ranks and after a resume at any
step (``deblur.data.samplers``).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping
from typing import Any

import albumentations as A
import numpy as np
import torch

from deblur.utils.seeding import derive_seed

#: Config name -> albumentations 2.0.8 class. Scene transforms go under ``scene`` (both images);
#: image-only degradations may go under ``capture`` (blurry input only).
KNOWN_TRANSFORMS: dict[str, type[A.BasicTransform]] = {
    # geometry (identical on both images)
    "horizontal_flip": A.HorizontalFlip,
    "vertical_flip": A.VerticalFlip,
    "random_rotate90": A.RandomRotate90,
    "rotate": A.Rotate,
    "optical_distortion": A.OpticalDistortion,
    "crop": A.CropAndPad,
    # scene colour / content (identical on both images)
    "color_change": A.RGBShift,
    "hue_saturation": A.HueSaturationValue,
    "grayscale": A.ToGray,
    "snow": A.RandomSnow,
    # capture degradations (normally blurry input only)
    "motion_blur": A.MotionBlur,
    "median_blur": A.MedianBlur,
    "image_compression": A.ImageCompression,
}

_SECTIONS = ("scene", "capture")
_TOP_LEVEL_KEYS = {"name", "seed", *_SECTIONS}


def _to_plain(cfg: Any) -> Any:
    """DictConfig/ListConfig -> dict/list (resolved); other values unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return cfg
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def _tuples(value: Any) -> Any:
    """Lists from YAML -> tuples (albumentations' ranges are typed as tuples), recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _build_transform(section: str, name: str, kwargs: Any) -> A.BasicTransform:
    path = f"augment.{section}.{name}"
    if name not in KNOWN_TRANSFORMS:
        raise ValueError(
            f"{path}: unknown transform {name!r}; known transforms: {', '.join(KNOWN_TRANSFORMS)}"
        )
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{path} must be a mapping of albumentations arguments, got {kwargs!r}")
    cls = KNOWN_TRANSFORMS[name]
    kwargs = {str(k): _tuples(v) for k, v in kwargs.items()}
    try:
        with warnings.catch_warnings():
            # albumentations only warns about unknown arguments; we raise below instead.
            warnings.simplefilter("ignore")
            transform = cls(**kwargs)
    except Exception as error:  # pydantic.ValidationError (a ValueError) or TypeError
        argument = _failing_argument(error, kwargs)
        where = f"{path}.{argument}" if argument else path
        raise ValueError(f"{where}: invalid arguments for albumentations.{cls.__name__}: {error}") from error
    if transform.invalid_args:
        bad = ", ".join(f"{path}.{arg}" for arg in transform.invalid_args)
        raise ValueError(
            f"{bad}: not an argument of albumentations.{cls.__name__} (transform {name!r}, argument(s) "
            f"{', '.join(map(repr, transform.invalid_args))}; albumentations 2.x renamed several 1.x "
            f"arguments, e.g. ImageCompression's quality_lower/quality_upper -> quality_range)"
        )
    if section == "capture" and isinstance(transform, A.DualTransform):
        raise ValueError(
            f"{path}: {cls.__name__} changes the geometry and would misalign the pair; "
            "list it under augment.scene instead"
        )
    return transform


def _failing_argument(error: Exception, kwargs: Mapping[str, Any]) -> str | None:
    """Best guess of the argument a constructor error is about (pydantic's error location)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # albumentations wraps pydantic's error
        seen.add(id(current))
        errors = getattr(current, "errors", None)
        if callable(errors):
            try:
                for item in errors():
                    loc = item.get("loc") or ()
                    if loc and str(loc[0]) in kwargs:
                        return str(loc[0])
            except Exception:  # pragma: no cover - defensive: fall back to the transform path
                pass
        current = current.__cause__ or current.__context__
    return None


#: Pixels added to every geometric margin: the reach of the widest interpolation kernel cv2 offers
#: (Lanczos-4 reads 4 pixels on each side) plus the half-pixel centre conventions of the transforms.
KERNEL_PAD = 5


def _max_positive(value: Any) -> float:
    """Largest positive number in a (nested) float / tuple argument; 0 if none."""
    if value is None:
        return 0.0
    if isinstance(value, (tuple, list)):
        return max((_max_positive(v) for v in value), default=0.0)
    return max(0.0, float(value))


def geometric_reach(transform: A.BasicTransform) -> float | None:
    """How far out a transform fetches pixels for the centre of its frame, as a factor of the distance
    from the frame centre, in the worst case over its parameter range (>= 1); None for a transform that
    moves no pixel off the grid (colour changes, flips, quarter turns).

    Rotate by an angle in ``limit``: a square's corner at half-side d reaches ``d (|cos a| + |sin a|)``.
    OpticalDistortion with coefficient ``k``: ``camera`` mode (OpenCV's k1 = k2 = k, focal length = frame
    size) samples at ``r (1 + k r^2 + k r^4)`` with r^2 <= 0.5 inside the frame, ``fisheye`` at
    ``r (1 + k r_n^2)`` with r_n <= 1; only positive k reaches outwards. CropAndPad crops and resizes back,
    which only zooms in (its padding, positive ``percent`` / ``px``, is a border by design and not covered).
    """
    if isinstance(transform, A.Rotate):
        low, high = sorted(float(a) for a in transform.limit)
        diagonals = [45.0 + 90.0 * k for k in range(-4, 4) if low <= 45.0 + 90.0 * k <= high]
        return max(
            abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a))) for a in [low, high, *diagonals]
        )
    if isinstance(transform, A.OpticalDistortion):
        k = _max_positive(transform.distort_limit)
        return 1.0 + (0.75 * k if transform.mode == "camera" else k)
    if isinstance(transform, A.CropAndPad):
        return 1.0
    return None


class PairAugment:
    """``(blurry uint8 HxWx3, sharp uint8 HxWx3) -> (blurry, sharp)``; built by :func:`make_pipeline`.

    ``scene`` (may be None) is applied with identical parameters to both images, then ``capture`` (may be
    None) to the blurry image only. Outputs keep the input's dtype; every transform offered keeps the
    size, except ``random_rotate90``, which swaps height and width of non-square inputs on odd turns.
    """

    def __init__(self, scene: A.Compose | None, capture: A.Compose | None, seed: int, name: str = "") -> None:
        self.scene = scene
        self.capture = capture
        self.seed = int(seed)
        self.name = name
        self._worker_key: tuple[int, int] | None = None
        self._per_draw = False
        self.reseed(self.seed)

    @property
    def is_identity(self) -> bool:
        return self.scene is None and self.capture is None

    def margin(self, size: int) -> int:
        """Pixels needed on each side of a ``size`` x ``size`` crop so that the scene transforms that can
        fire (``p > 0``) fetch no pixel from outside the window ``size + 2 * margin``: the product of their
        :func:`geometric_reach` factors (worst case) applied to the crop's half-side, plus ``KERNEL_PAD``.
        0 when no resampling transform can fire (then cropping and augmenting are unchanged)."""
        if self.scene is None:
            return 0
        reaches = [r for t in self.scene.transforms if t.p > 0 and (r := geometric_reach(t)) is not None]
        if not reaches:
            return 0
        return math.ceil(size / 2 * (math.prod(reaches) - 1.0)) + KERNEL_PAD

    def reseed(self, seed: int) -> None:
        """Restart the random streams of both Composes from ``seed``.

        Each Compose and its transforms share ONE generator pair (numpy + python). Not
        ``Compose.set_random_seed``: in albumentations 2.0.8 it gives every transform its own generator
        with the same seed, so transforms with equal ``p`` always fire together (e.g. horizontal and
        vertical flip would only ever produce the identity or a 180-degree rotation).
        """
        for index, compose in enumerate((self.scene, self.capture)):
            if compose is not None:
                stream_seed = derive_seed(seed, index)
                compose.set_random_state(np.random.default_rng(stream_seed), random.Random(stream_seed))

    def seed_draw(self, draw_seed: int) -> None:
        """Seed the next call from ``(seed, draw_seed)`` (a training draw, see ``deblur.data.samplers``);
        from then on this copy of the pipeline no longer re-seeds itself per worker."""
        self._per_draw = True
        self.reseed(derive_seed(self.seed, draw_seed))

    def _maybe_reseed_for_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is None or self._per_draw:
            return
        key = (int(info.id), int(torch.initial_seed()))
        if key != self._worker_key:
            self._worker_key = key
            self.reseed(derive_seed(self.seed, *key))

    def __call__(self, blurry: np.ndarray, sharp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if blurry.shape != sharp.shape or blurry.ndim != 3 or blurry.shape[2] != 3:
            raise ValueError(f"expected two HxWx3 images of one size, got {blurry.shape} and {sharp.shape}")
        if blurry.dtype != np.uint8 or sharp.dtype != np.uint8:
            raise ValueError(f"expected uint8 images, got {blurry.dtype} and {sharp.dtype}")
        if self.is_identity:
            return blurry, sharp
        self._maybe_reseed_for_worker()
        if self.scene is not None:
            out = self.scene(image=blurry, sharp=sharp)
            blurry, sharp = out["image"], out["sharp"]
        if self.capture is not None:
            blurry = self.capture(image=blurry)["image"]
        return np.ascontiguousarray(blurry), np.ascontiguousarray(sharp)

    def __repr__(self) -> str:
        def names(compose: A.Compose | None) -> list[str]:
            return [] if compose is None else [type(t).__name__ for t in compose.transforms]

        return f"PairAugment(name={self.name!r}, scene={names(self.scene)}, capture={names(self.capture)})"


def make_pipeline(cfg: Any = None, seed: int | None = None) -> PairAugment:
    """Build the paired augmentation from the ``augment`` config node (DictConfig or dict; None = identity).

    ``cfg`` keys: ``name`` (informational), ``seed`` (int, default 0; the ``seed`` argument overrides
    it), ``scene`` and ``capture``: ordered mappings ``transform name -> {albumentations 2.x kwargs}``
    (see ``KNOWN_TRANSFORMS`` and the module docstring). Returns a :class:`PairAugment`: a picklable
    callable ``(blurry uint8 HxWx3, sharp uint8 HxWx3) -> (blurry, sharp)``.

    Raises ``ValueError`` naming ``augment.<section>.<transform>[.<argument>]`` for unknown transforms
    (listing the known ones), misspelt/renamed or invalid arguments, and geometric transforms placed
    under ``capture``.
    """
    cfg = _to_plain(cfg) if cfg is not None else {}
    if not isinstance(cfg, Mapping):
        raise ValueError(f"augment config must be a mapping, got {type(cfg).__name__}")
    unknown = set(cfg) - _TOP_LEVEL_KEYS
    if unknown:
        raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_LEVEL_KEYS)}")
    if seed is None:
        seed = cfg.get("seed", 0)
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"augment.seed must be an integer, got {seed!r}")

    composes: dict[str, A.Compose | None] = {}
    for section in _SECTIONS:
        entries = cfg.get(section) or {}
        if not isinstance(entries, Mapping):
            raise ValueError(f"augment.{section} must be a mapping of transform name -> arguments")
        transforms = [_build_transform(section, str(name), kwargs) for name, kwargs in entries.items()]
        if not transforms:
            composes[section] = None
            continue
        targets = {"sharp": "image"} if section == "scene" else {}
        composes[section] = A.Compose(transforms, additional_targets=targets, strict=True, seed=0, p=1.0)
    return PairAugment(composes["scene"], composes["capture"], seed=int(seed), name=str(cfg.get("name", "")))
