"""The paired-sample contract every dataset in ``deblur.data`` follows.

A dataset yields ``{"blurry": (3, H, W) float32 in [0, 1], "sharp": same, "name": str,
"source": str}``. ``source`` names the sharp photo a pair was made from (:meth:`PairDataset.source`):
pairs that share it show the same scene (the built-in dataset makes several blurs of each photo), so
"distinct images" means distinct sources (:func:`distinct_first` orders samples so that they come
first). Subclasses only say how to load sample ``i`` as two HxWx3 uint8 arrays; this base class crops
(random for training, centred for evaluation), applies the paired transform (``(blurry, sharp) ->
(blurry, sharp)`` on uint8 arrays, see :func:`deblur.data.augment.make_pipeline`) and converts to tensors.

Windows. A transform with a ``margin(crop_size) -> int`` method (``PairAugment``: rotations, lens
distortion) gets a window of ``crop_size + 2 * margin`` per side instead of the crop (drawn inside the
image like the crop, as large as the image allows), and the centred ``crop_size`` crop of its output is
kept: the transform's borders stay outside the crop. The window is drawn exactly as the crop would be
(same random draws), so a transform with margin 0 crops as before.

Randomness. ``dataset[i]`` draws the crop from torch's RNG and the augmentation from the pipeline's own
stream (per worker). ``dataset[(i, draw_seed)]`` (what :class:`deblur.data.samplers.EpochShuffleSampler`
yields during training) seeds both from ``draw_seed`` instead, so the sample is a function of
``(i, draw_seed)`` alone: the same whatever the worker, the rank or the point a run was resumed at.
A draw ``(i, draw_seed, crop_size)`` (progressive training, :mod:`deblur.data.progressive`) is cropped to
its own ``crop_size`` instead of the dataset's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from deblur.io import size_text

PairTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 (or uint16) array -> (3, H, W) float32 tensor in [0, 1]."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(scale)


def crop_box(
    height: int,
    width: int,
    size: int | tuple[int, int],
    random: bool,
    generator: torch.Generator | None = None,
) -> tuple[int, int]:
    """Top-left corner of a ``size`` x ``size`` (or ``(h, w)``) crop: uniform random (from ``generator``,
    else torch's global RNG, per worker) or centred."""
    size_h, size_w = size if isinstance(size, tuple) else (size, size)
    if random:
        top = int(torch.randint(0, height - size_h + 1, (), generator=generator).item())
        left = int(torch.randint(0, width - size_w + 1, (), generator=generator).item())
        return top, left
    return (height - size_h) // 2, (width - size_w) // 2


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size`` x ``size`` crop of an HxWxC array (H, W >= size)."""
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


class PairDataset(Dataset):
    """Base class: crop -> paired transform -> tensors. Subclasses implement ``__len__`` and ``load``."""

    def __init__(
        self,
        crop_size: int | None = None,
        random_crop: bool = False,
        transform: PairTransform | None = None,
    ) -> None:
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be a positive number of pixels or None, got {crop_size}")
        self.crop_size = crop_size
        self.random_crop = random_crop
        self.transform = transform

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:  # pragma: no cover - abstract
        """Return (blurry HxWx3 uint8, sharp HxWx3 uint8, name) for sample ``index``."""
        raise NotImplementedError

    def source(self, index: int) -> str:
        """The sharp photo sample ``index`` shows, without loading it (default: the index of the pair,
        every pair its own photo)."""
        return str(index % len(self))

    def __getitem__(self, item: int | tuple[int, int] | tuple[int, int, int]) -> dict[str, Any]:
        """``item``: an index, or a draw ``(index, draw_seed)`` or ``(index, draw_seed, crop_size)`` (see
        the module docstring)."""
        index, seed = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        blurry, sharp, name = self.load(index)
        if blurry.shape != sharp.shape:
            raise ValueError(f"sample {name!r}: blurry {blurry.shape} and sharp {sharp.shape} differ in size")
        size = item[2] if isinstance(item, tuple) and len(item) > 2 else self.crop_size
        if size is not None:
            h, w = blurry.shape[:2]
            if h < size or w < size:
                raise ValueError(f"sample {name!r}: image {size_text(h, w)} is smaller than crop_size={size}")
            margin = self.transform_margin(size)
            window = (min(h, size + 2 * margin), min(w, size + 2 * margin))
            top, left = crop_box(h, w, window, self.random_crop, generator)
            blurry = blurry[top : top + window[0], left : left + window[1]]
            sharp = sharp[top : top + window[0], left : left + window[1]]
        if self.transform is not None:
            if seed is not None and hasattr(self.transform, "seed_draw"):
                self.transform.seed_draw(seed)
            blurry, sharp = self.transform(blurry, sharp)
        if size is not None and blurry.shape[:2] != (size, size):
            if min(blurry.shape[:2]) < size:
                raise ValueError(
                    f"sample {name!r}: the augmentation returned {blurry.shape[0]}x{blurry.shape[1]}, "
                    f"smaller than crop_size={size} (augment transforms must keep the size)"
                )
            blurry, sharp = centre_crop(blurry, size), centre_crop(sharp, size)
        source = self.source(index)
        return {"blurry": to_tensor(blurry), "sharp": to_tensor(sharp), "name": name, "source": source}

    def transform_margin(self, size: int) -> int:
        """Pixels the transform wants around a ``size`` crop (its ``margin(size)``; 0 without one)."""
        margin = getattr(self.transform, "margin", None)
        return int(margin(size)) if callable(margin) else 0


class InMemoryPairDataset(PairDataset):
    """Pairs held as arrays in memory: ``[(blurry uint8 HxWx3, sharp uint8 HxWx3, name), ...]``.

    ``repeats`` lets a small bank of large images serve many random crops per epoch. ``sources``: the
    photo of each pair (see :meth:`PairDataset.source`; None: each pair's name).
    """

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray, str]],
        repeats: int = 1,
        sources: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not pairs:
            raise ValueError("InMemoryPairDataset needs at least one pair")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if sources is not None and len(sources) != len(pairs):
            raise ValueError(f"sources has {len(sources)} entries for {len(pairs)} pairs")
        self.pairs = pairs
        self.repeats = repeats
        self.sources = [str(s) for s in sources] if sources is not None else [name for _, _, name in pairs]

    def __len__(self) -> int:
        return len(self.pairs) * self.repeats

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        return self.pairs[index % len(self.pairs)]

    def source(self, index: int) -> str:
        return self.sources[index % len(self.pairs)]


def distinct_first(sources: Sequence[str]) -> list[int]:
    """Indices ``0 .. len(sources) - 1`` reordered so that distinct sources come first: the first sample of
    every source (in order of appearance), then the second of every source, and so on. The first ``k``
    indices therefore cover ``min(k, number of sources)`` distinct photos.

    >>> distinct_first(["a", "a", "b", "b", "c"])
    [0, 2, 4, 1, 3]
    """
    rank: dict[str, int] = {}
    order = []
    for index, source in enumerate(sources):
        rank[source] = rank.get(source, -1) + 1
        order.append((rank[source], index))
    return [index for _, index in sorted(order)]


def dataset_sources(dataset: Dataset) -> list[str]:
    """The :meth:`PairDataset.source` of every sample of ``dataset`` (a :class:`PairDataset` or a
    ``torch.utils.data.Subset`` of one), without loading images; any other dataset: every sample its own
    source."""
    if isinstance(dataset, Subset):
        inner = dataset_sources(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    if isinstance(dataset, PairDataset):
        return [dataset.source(i) for i in range(len(dataset))]
    return [str(i) for i in range(len(dataset))]
