"""Schemas of the ``data`` group: the loader settings every dataset shares, the built-in dataset, and the
on-disk datasets (``conf/data/{synthetic,gopro,hide,realblur_j,realblur_r,pairs,folder}.yaml``).

Registered in group ``data`` as ``<name>_schema`` by :func:`register_dataset_configs` (called from
:func:`deblur.config.schema.register_configs`). The defaults here are the one source: each YAML option
repeats them for reading only, and a test keeps the two equal. ``root`` is mandatory (``???``): the user
passes ``data.root=<path>``. Choices (``blur_kind``, ``subset``, ``on_bad_pair``) are plain strings checked by
the loaders (no Enums: the resolved config travels in checkpoints, which load with ``weights_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class DataConfig:
    """Loader settings shared by every dataset."""

    name: str = "synthetic"
    crop_size: int | None = 128
    val_crop_size: int | None = None
    batch_size: int = 4
    val_batch_size: int = 1
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    #: progressive patches: [{step, crop_size, batch_size}, ...] (deblur.data.progressive); null = off
    progressive: list[Any] | None = None


@dataclass
class SyntheticDataConfig(DataConfig):
    """The built-in dataset (``deblur.data.synthetic``): trajectory blur on scikit-image photos, sized for
    ``make train`` on a CPU (96-pixel training crops, 128-pixel centre crops for validation)."""

    name: str = "synthetic"
    crop_size: int | None = 96
    val_crop_size: int | None = 128
    val_batch_size: int = 4
    seed: int = 0
    val_seed: int = 1234
    pairs_per_photo: int = 4
    val_pairs_per_photo: int = 4
    max_side: int | None = 320
    repeats: int = 8
    noise_std: float | None = None


@dataclass
class FileDataConfig(DataConfig):
    """Options shared by the datasets read from disk; loader defaults sized for real 1280x720 data."""

    root: str = MISSING
    crop_size: int | None = 256
    val_crop_size: int | None = None
    batch_size: int = 4
    val_batch_size: int = 1
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    #: random crops served per training pair and epoch
    repeats: int = 1
    #: error: a bad or unpaired file stops the run at setup; skip: leave it out (logged, counted)
    on_bad_pair: str = "error"
    #: read every image header at setup (sizes, corrupt files); false checks only the pairing
    validate: bool = True


@dataclass
class GoProDataConfig(FileDataConfig):
    name: str = "gopro"
    #: blur (what modern papers use) | blur_gamma
    blur_kind: str = "blur"


@dataclass
class HIDEDataConfig(FileDataConfig):
    name: str = "hide"
    #: test split: all | close-ups | long-shot
    subset: str = "all"


@dataclass
class RealBlurJDataConfig(FileDataConfig):
    name: str = "realblur_j"


@dataclass
class RealBlurRDataConfig(FileDataConfig):
    name: str = "realblur_r"


@dataclass
class PairsDataConfig(FileDataConfig):
    """Two folders matched by relative file name (extension ignored); folders relative to ``root``."""

    name: str = "pairs"
    blurry_dir: str = "blurry"
    sharp_dir: str = "sharp"
    train_blurry_dir: str | None = None
    train_sharp_dir: str | None = None
    val_blurry_dir: str | None = None
    val_sharp_dir: str | None = None
    recursive: bool = True


@dataclass
class FolderDataConfig(FileDataConfig):
    """Blurry images without ground truth: prediction / qualitative validation only."""

    name: str = "folder"
    crop_size: int | None = None
    batch_size: int = 1
    recursive: bool = True


DATASET_SCHEMAS = {
    "synthetic": SyntheticDataConfig,
    "gopro": GoProDataConfig,
    "hide": HIDEDataConfig,
    "realblur_j": RealBlurJDataConfig,
    "realblur_r": RealBlurRDataConfig,
    "pairs": PairsDataConfig,
    "folder": FolderDataConfig,
}


def register_dataset_configs(cs: ConfigStore) -> None:
    """Store each schema in group ``data`` as ``<name>_schema``."""
    for name, node in DATASET_SCHEMAS.items():
        cs.store(group="data", name=f"{name}_schema", node=node)
    cs.store(group="data", name="data_schema", node=DataConfig)
