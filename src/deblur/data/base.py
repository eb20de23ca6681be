"""The paired-sample contract every dataset in ``deblur.data`` follows.

A dataset yields ``{"blurry": (3, H, W) float32 in [0, 1], "sharp": same, "name": str}``. Subclasses only
say how to load sample ``i`` as two HxWx3 uint8 arrays; this base class crops (random for training,
centred for evaluation), applies the paired transform (``(blurry, sharp) -> (blurry, sharp)`` on uint8
arrays, see :func:`deblur.data.augment.make_pipeline`) and converts to tensors.

Randomness. ``dataset[i]`` draws the crop from torch's RNG and the augmentation from the pipeline's own
stream (per worker). ``dataset[(i, draw_seed)]`` (what :class:`deblur.data.samplers.EpochShuffleSampler`
yields during training) seeds both from ``draw_seed`` instead, so the sample is a function of
``(i, draw_seed)`` alone: the same whatever the worker, the rank or the point a run was resumed at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

PairTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 (or uint16) array -> (3, H, W) float32 tensor in [0, 1]."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(scale)


def crop_box(
    height: int, width: int, size: int, random: bool, generator: torch.Generator | None = None
) -> tuple[int, int]:
    """Top-left corner of a ``size`` x ``size`` crop: uniform random (from ``generator``, else torch's
    global RNG, per worker) or centred."""
    if random:
        top = int(torch.randint(0, height - size + 1, (), generator=generator).item())
        left = int(torch.randint(0, width - size + 1, (), generator=generator).item())
        return top, left
    return (height - size) // 2, (width - size) // 2


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

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """``item``: an index, or a draw ``(index, draw_seed)`` (see the module docstring)."""
        index, seed = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        blurry, sharp, name = self.load(index)
        if blurry.shape != sharp.shape:
            raise ValueError(f"sample {name!r}: blurry {blurry.shape} and sharp {sharp.shape} differ in size")
        if self.crop_size is not None:
            h, w = blurry.shape[:2]
            size = self.crop_size
            if h < size or w < size:
                raise ValueError(f"sample {name!r}: image {h}x{w} is smaller than crop_size={size}")
            top, left = crop_box(h, w, size, self.random_crop, generator)
            blurry = blurry[top : top + size, left : left + size]
            sharp = sharp[top : top + size, left : left + size]
        if self.transform is not None:
            if seed is not None and hasattr(self.transform, "seed_draw"):
                self.transform.seed_draw(seed)
            blurry, sharp = self.transform(blurry, sharp)
        return {"blurry": to_tensor(blurry), "sharp": to_tensor(sharp), "name": name}


class InMemoryPairDataset(PairDataset):
    """Pairs held as arrays in memory: ``[(blurry uint8 HxWx3, sharp uint8 HxWx3, name), ...]``.

    ``repeats`` lets a small bank of large images serve many random crops per epoch.
    """

    def __init__(
        self, pairs: list[tuple[np.ndarray, np.ndarray, str]], repeats: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not pairs:
            raise ValueError("InMemoryPairDataset needs at least one pair")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.pairs = pairs
        self.repeats = repeats

    def __len__(self) -> int:
        return len(self.pairs) * self.repeats

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        return self.pairs[index % len(self.pairs)]
