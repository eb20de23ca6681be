"""The benchmark datasets as Python objects: ``deblur.datasets.open("gopro", "/data/GOPRO_Large", "val")``.

A thin public face of :mod:`deblur.data.on_disk` (the loaders ``deblur-train`` and ``deblur-eval`` use):
the same layouts, checks and messages, with the dataset's ``conf/data/<name>.yaml`` defaults.
"""

from __future__ import annotations

import os
from typing import Any

from torch.utils.data import Dataset

from deblur.config.data_schema import DATASET_SCHEMAS

#: the datasets :func:`open` reads from disk
NAMES = ("gopro", "hide", "realblur_j", "realblur_r", "pairs", "folder")


def open(name: str, root: str | os.PathLike, split: str = "val", **options: Any) -> Dataset:  # noqa: A001
    """One split of a benchmark dataset in its published layout (``docs/datasets.md``).

    Args:
        name: ``gopro``, ``hide``, ``realblur_j``, ``realblur_r``, ``pairs`` or ``folder``.
        root: the dataset folder as downloaded (``data.root``).
        split: ``val`` (the papers' test split: whole images unless ``val_crop_size`` is given) or
            ``train`` (random ``crop_size`` crops, no augmentation).
        options: any ``data.<key>`` of the dataset (``blur_kind="blur_gamma"``, ``subset="close-ups"``,
            ``on_bad_pair="skip"``, ``crop_size=256`` ...).

    Returns:
        A dataset whose items are ``{"blurry": (3, H, W), "sharp": (3, H, W), "name": str}`` float tensors in
        [0, 1] (``folder`` has blurry images only; ``sharp`` repeats them).

    Raises:
        deblur.data.validate.DatasetError: the layout does not match (the message shows the expected one).

    Examples:
        >>> import deblur
        >>> deblur.datasets.open("gopro", "/nonexistent")          # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        deblur.data.validate.DatasetError: ...
    """
    from deblur.data.on_disk import build_dataset

    if name not in NAMES:
        raise ValueError(f"name={name!r} is not a benchmark dataset; options: {', '.join(NAMES)}")
    schema = DATASET_SCHEMAS[name]()
    unknown = sorted(set(options) - set(vars(schema)))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; options: {sorted(vars(schema))}")
    cfg = {**vars(schema), **options, "root": str(root)}
    return build_dataset(name, cfg, split)


__all__ = ["NAMES", "open"]
