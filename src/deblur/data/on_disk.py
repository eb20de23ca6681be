"""The benchmark datasets on disk: GoPro, HIDE, RealBlur-J/-R, any two paired folders, and a folder of
unpaired blurry images. ``DATASET_BUILDERS`` plugs them into :data:`deblur.data.datamodule.DATASETS`.

Each loader lists the pairs of its layout (see :data:`deblur.data.validate.EXPECTED_LAYOUTS` and
``docs/datasets.md``), checks them (:func:`deblur.data.validate.validate_listing`: orphans, sizes,
unreadable files) and serves them through :class:`FilePairDataset`. Splits: ``train`` and ``val``; ``val``
is the papers' test split (GoPro ``test/``, HIDE ``test/``, RealBlur ``*_test_list.txt``).

Reading (:func:`read_rgb`, on :func:`deblur.io.read_image`): RGB, EXIF orientation applied; grayscale
images are replicated to 3 channels; an alpha channel is dropped; **16-bit images are scaled to 8 bits**
(``round(v * 255 / 65535)``) so that training batches are uniform uint8 -> [0, 1]; ``.npy`` files
(``deblur-prepare format=npy``) are memory-mapped, so a random crop reads only its rows.

Sample names are the blurry file's path relative to its split folder (GoPro ``<seq>/000047.png``, HIDE
``test-close-ups/<file>``, RealBlur ``sceneNNN/blur/blur_M.png``); ``deblur-eval`` saves predictions
under these names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from deblur.data.base import PairDataset, PairTransform
from deblur.data.blurry import BLURRY_FOLDERS, all_identical
from deblur.data.validate import DatasetError, Listing, layout_error, require_dir, validate_listing
from deblur.io import (
    ARRAY_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    list_images,
    read_image,
    to_rgb,
    to_uint8,
)

log = logging.getLogger(__name__)

#: what the dataset loaders list: images and deblur-prepare's .npy arrays
DATA_EXTENSIONS = IMAGE_EXTENSIONS | ARRAY_EXTENSIONS
SPLITS = ("train", "val")
#: GoPro and HIDE call the evaluation split "test".
SPLIT_FOLDER = {"train": "train", "val": "test"}
BLUR_KINDS = ("blur", "blur_gamma")
HIDE_SUBSETS = {"close-ups": "test-close-ups", "long-shot": "test-long-shot"}
REALBLUR = {
    "realblur_j": ("RealBlur-J_ECC_IMCORR_centroid_itensity_ref", "RealBlur_J"),
    "realblur_r": ("RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref", "RealBlur_R"),
}

Pair = tuple[Path, Path, str]


# ---------------------------------------------------------------- reading
def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image (or a ``.npy`` cache) as an ``(H, W, 3)`` uint8 RGB array, upright.

    Decoding and the EXIF orientation rule are :func:`deblur.io.read_image`'s; grayscale -> 3 equal
    channels; alpha dropped; 16-bit -> 8-bit by ``round(v * 255 / 65535)``. ``.npy`` files are returned
    memory-mapped (uint8 ``(H, W, 3)`` as written by ``deblur-prepare``). Raises :class:`DatasetError`
    naming the file when it cannot be decoded.
    """
    return to_rgb(read_uint8(path))


def read_uint8(path: str | os.PathLike) -> np.ndarray:
    """:func:`read_rgb` without the gray -> RGB step: a gray file gives ``(H, W)`` uint8, others
    ``(H, W, 3)``. ``deblur-eval`` reads the blurry images so, so that a gray image is deblurred as
    ``deblur-predict`` deblurs it (one gray result, the mean of the network's three output channels)."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read array file {path}: {err}") from err
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise DatasetError(f"{path}: expected a uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
        return arr
    try:
        image, _ = read_image(path)
    except ImageReadError as err:
        raise DatasetError(str(err)) from err
    return to_uint8(image)


# ---------------------------------------------------------------- datasets
class FilePairDataset(PairDataset):
    """Pairs of image files ``[(blurry_path, sharp_path, name), ...]`` read with :func:`read_rgb`.

    ``repeats`` serves each pair that many times per epoch (more random crops per decoded image list).
    """

    has_ground_truth = True

    def __init__(self, pairs: list[Pair], repeats: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not pairs:
            raise DatasetError("FilePairDataset needs at least one pair")
        if repeats < 1:
            raise DatasetError(f"data.repeats must be >= 1, got {repeats}")
        self.pairs = list(pairs)
        self.repeats = repeats

    def __len__(self) -> int:
        return len(self.pairs) * self.repeats

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        blurry, sharp, name = self.pairs[index % len(self.pairs)]
        return read_rgb(blurry), read_rgb(sharp), name

    def source(self, index: int) -> str:
        """The sharp file of the pair: every distinct ground-truth image is its own photo (frames of one
        GoPro video count as distinct images)."""
        return str(self.pairs[index % len(self.pairs)][1])


class FolderDataset(FilePairDataset):
    """Blurry images without ground truth (prediction and qualitative viewing only).

    ``load`` returns the blurry image as both images of the pair, and every sample carries
    ``"has_ground_truth": False`` (also the class attribute ``has_ground_truth``): scores computed on it
    compare the input with itself and mean nothing. Cannot be used for training.
    """

    has_ground_truth = False

    def __init__(self, images: list[tuple[Path, str]], **kwargs: Any) -> None:
        super().__init__([(path, path, name) for path, name in images], **kwargs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        path, _, name = self.pairs[index % len(self.pairs)]
        image = read_rgb(path)
        return image, image, name

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = super().__getitem__(index)
        sample["has_ground_truth"] = False
        return sample


# ---------------------------------------------------------------- listing helpers
def scan_images(folder: Path, recursive: bool = True) -> dict[str, Path]:
    """:func:`deblur.io.list_images` of images and ``.npy`` arrays; ambiguity is a :class:`DatasetError`."""
    try:
        return list_images(folder, recursive, extensions=DATA_EXTENSIONS)
    except ValueError as err:
        raise DatasetError(str(err)) from err


def match_folders(blurry_dir: Path, sharp_dir: Path, prefix: str = "", recursive: bool = True) -> Listing:
    """Pair two folders by relative path without extension; name = ``prefix`` + the blurry relative path."""
    blurry = scan_images(blurry_dir, recursive)
    sharp = scan_images(sharp_dir, recursive)
    pairs = [
        (blurry[k], sharp[k], prefix + blurry[k].relative_to(blurry_dir).as_posix())
        for k in sorted(blurry.keys() & sharp.keys())
    ]
    return Listing(
        pairs=pairs,
        blurry_only=[str(blurry[k]) for k in sorted(blurry.keys() - sharp.keys())],
        sharp_only=[str(sharp[k]) for k in sorted(sharp.keys() - blurry.keys())],
    )


def _root(cfg: dict[str, Any], name: str) -> Path:
    root = cfg.get("root")
    if root in (None, "", "???"):
        raise layout_error(name, f"data.root is not set: name the dataset folder (data={name} data.root=...)")
    return require_dir(str(root), name, "dataset root")


def check_data_root(cfg: dict[str, Any]) -> None:
    """Raise :class:`DatasetError` naming ``data.root`` if a dataset with a root has none, or it is not a
    folder (``deblur-train`` checks this before timing the network, so nothing is built first)."""
    if "root" in cfg:
        _root(cfg, str(cfg.get("name")))


def _split(split: str) -> str:
    if split == "test":
        return "val"
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def _choice(cfg: dict[str, Any], key: str, options: Any, default: str) -> str:
    value = cfg.get(key) or default
    if value not in options:
        raise DatasetError(f"data.{key}={value!r} is not valid; options: {', '.join(options)}")
    return value


def _read_list(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a list file as (line number, whitespace-separated fields)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if fields:
            lines.append((number, fields))
    return lines


# ---------------------------------------------------------------- layouts
def list_gopro(cfg: dict[str, Any], split: str) -> Listing:
    """GoPro: nested ``<split>/<seq>/{blur,blur_gamma,sharp}`` or flattened ``<split>/{blur,sharp}`` /
    ``<split>/{input,target}`` (auto-detected)."""
    root = _root(cfg, "gopro")
    kind = _choice(cfg, "blur_kind", BLUR_KINDS, "blur")
    folder = SPLIT_FOLDER[_split(split)]
    split_dir = require_dir(root / folder, "gopro", f"split folder '{folder}/' (split {split})")
    if (split_dir / "sharp").is_dir() and (split_dir / kind).is_dir():
        return match_folders(split_dir / kind, split_dir / "sharp")
    if (split_dir / "input").is_dir() and (split_dir / "target").is_dir():
        if kind != "blur":
            raise DatasetError(
                f"data.blur_kind={kind} needs the nested GoPro layout; {split_dir} is a flattened "
                "input/target copy (set data.blur_kind=blur)"
            )
        return match_folders(split_dir / "input", split_dir / "target")
    if (split_dir / "sharp").is_dir():
        raise layout_error("gopro", f"{split_dir} has sharp/ but no {kind}/ folder (data.blur_kind={kind})")
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    with_kind = [seq for seq in sequences if (seq / kind).is_dir()]
    if not with_kind:
        raise layout_error(
            "gopro", f"no <sequence>/{kind}/ folders under {split_dir} (data.blur_kind={kind})"
        )
    listing = Listing()
    for seq in sequences:
        blur_dir, sharp_dir = seq / kind, seq / "sharp"
        if blur_dir.is_dir() and sharp_dir.is_dir():
            listing.extend(match_folders(blur_dir, sharp_dir, prefix=f"{seq.name}/"))
        elif blur_dir.is_dir():
            listing.blurry_only += [str(p) for p in scan_images(blur_dir).values()]
        elif sharp_dir.is_dir():
            listing.sharp_only += [str(p) for p in scan_images(sharp_dir).values()]
    return listing


def list_hide(cfg: dict[str, Any], split: str) -> Listing:
    """HIDE: blurry ``train/`` or ``test/test-{close-ups,long-shot}/``, sharp ``GT/`` by file name,
    names from ``train.txt`` / ``test.txt`` when present (else the folders are listed)."""
    root = _root(cfg, "hide")
    split = _split(split)
    gt_dir = require_dir(root / "GT", "hide", "ground-truth folder 'GT/'")
    subset = _choice(cfg, "subset", ("all", *HIDE_SUBSETS), "all")
    if split == "train":
        folders = [require_dir(root / "train", "hide", "split folder 'train/'")]
        list_file = root / "train.txt"
    else:
        test_dir = require_dir(root / "test", "hide", "split folder 'test/'")
        chosen = list(HIDE_SUBSETS.values()) if subset == "all" else [HIDE_SUBSETS[subset]]
        folders = [require_dir(test_dir / sub, "hide", f"test subset folder 'test/{sub}/'") for sub in chosen]
        list_file = root / "test.txt"
    prefix = (lambda folder: "") if split == "train" else (lambda folder: f"{folder.name}/")

    listing = Listing()
    if not list_file.is_file():
        log.info("HIDE: %s not found; listing the image folders instead", list_file)
        for folder in folders:
            for path in scan_images(folder, recursive=False).values():
                sharp = gt_dir / path.name
                if sharp.is_file():
                    listing.pairs.append((path, sharp, prefix(folder) + path.name))
                else:
                    listing.blurry_only.append(str(path))
        return listing

    if split == "train":
        all_subfolders = [root / "train"]
    else:
        all_subfolders = [root / "test" / sub for sub in HIDE_SUBSETS.values()]
    for number, fields in _read_list(list_file):
        entry = fields[0]
        file_name = Path(entry).name
        # an entry may be a bare name or a path ("test-close-ups/x.png"); find its folder
        candidates = [root / entry, root / ("train" if split == "train" else "test") / entry]
        candidates += [folder / file_name for folder in all_subfolders]
        blurry = next((c for c in candidates if c.is_file()), None)
        if blurry is not None and blurry.parent not in folders:
            continue  # another subset
        if blurry is None and split == "val" and subset != "all":
            continue  # cannot tell its subset; reported only when all subsets are asked for
        sharp = gt_dir / file_name
        if blurry is None:
            if sharp.is_file():
                listing.sharp_only.append(str(sharp))
            else:
                listing.missing.append(f"{list_file.name} line {number}: {entry} (no blurry nor GT/ file)")
        elif not sharp.is_file():
            listing.blurry_only.append(str(blurry))
        else:
            listing.pairs.append((blurry, sharp, prefix(blurry.parent) + file_name))
    return listing


def list_realblur(cfg: dict[str, Any], split: str, name: str) -> Listing:
    """RealBlur: ``RealBlur_{J,R}_{train,test}_list.txt``, one ``<gt_path> <blur_path>`` per line (ground
    truth first), relative to ``data.root``; trailing spaces are fine."""
    root = _root(cfg, name)
    folder, stem = REALBLUR[name]
    list_file = root / f"{stem}_{'train' if _split(split) == 'train' else 'test'}_list.txt"
    if not list_file.is_file():
        raise layout_error(name, f"list file not found: {list_file} (data.root={root})")
    if not (root / folder).is_dir():
        log.warning("%s: no %s/ under data.root=%s; trusting the list file's paths", name, folder, root)
    listing = Listing()
    for number, fields in _read_list(list_file):
        if len(fields) != 2:
            raise DatasetError(
                f"{list_file} line {number}: expected '<gt_path> <blur_path>', got {' '.join(fields)!r}"
            )
        gt_rel, blur_rel = fields
        refuse_blurry_list_entry(list_file, number, gt_rel, blur_rel)
        sharp, blurry = root / gt_rel, root / blur_rel
        parts = Path(blur_rel).parts
        pair_name = Path(*parts[1:]).as_posix() if len(parts) > 1 and parts[0] == folder else blur_rel
        if blurry.is_file() and sharp.is_file():
            listing.pairs.append((blurry, sharp, pair_name))
        elif blurry.is_file():
            listing.blurry_only.append(str(blurry))
        elif sharp.is_file():
            listing.sharp_only.append(str(sharp))
        else:
            listing.missing.append(f"{list_file.name} line {number}: {gt_rel} {blur_rel}")
    return listing


def _pair_keys(cfg: dict[str, Any], split: str) -> list[tuple[str, str]]:
    """[(config key, folder)] for the blurry and sharp sides of ``split``: ``<split>_blurry_dir`` if set,
    else ``blurry_dir`` (default ``blurry``); likewise for sharp."""
    keys = []
    for side in ("blurry", "sharp"):
        key = f"{split}_{side}_dir" if cfg.get(f"{split}_{side}_dir") else f"{side}_dir"
        keys.append((key, str(cfg.get(key) or side)))
    return keys


def pair_dirs(cfg: dict[str, Any], split: str) -> tuple[Path, Path]:
    """The (blurry, sharp) folders of the ``pairs`` dataset for ``split`` (relative to data.root, or
    absolute)."""
    root = _root(cfg, "pairs")
    (bkey, brel), (skey, srel) = _pair_keys(cfg, _split(split))
    blurry = require_dir(root / brel, "pairs", "blurry folder", key=f"data.{bkey}")
    sharp = require_dir(root / srel, "pairs", "sharp folder", key=f"data.{skey}")
    return blurry, sharp


def list_pairs_layout(cfg: dict[str, Any], split: str) -> Listing:
    """Two folders matched by relative path without extension; the sharp folder may not be the blurry one,
    nor hold only copies of the blurry files (:func:`refuse_sharp_is_blurry`)."""
    blurry, sharp = pair_dirs(cfg, split)
    same = [f for _, f in _pair_keys(cfg, "train")] == [f for _, f in _pair_keys(cfg, "val")]
    if _split(split) == "val" and same:
        log.warning("data=pairs: validation uses the training folders %s / %s", blurry, sharp)
    listing = match_folders(blurry, sharp, recursive=bool(cfg.get("recursive", True)))
    refuse_sharp_is_blurry(listing, [key for key, _ in _pair_keys(cfg, _split(split))], blurry, sharp)
    return listing


def refuse_blurry_list_entry(list_file: Path, number: int, gt_rel: str, blur_rel: str) -> None:
    """A RealBlur list line whose ground-truth column (the first) names a file in a folder of blurry frames
    (``blur/``), or the blurry file itself, is a :class:`DatasetError` naming the file and line."""

    if gt_rel == blur_rel or BLURRY_FOLDERS & {part.lower() for part in Path(gt_rel).parts[:-1]}:
        raise DatasetError(
            f"{list_file} line {number}: the ground-truth column (the first, '<gt_path> <blur_path>') names "
            f"a blurry frame: {gt_rel}; a blurry image is never ground truth. Fix the list file."
        )


def refuse_sharp_is_blurry(listing: Listing, keys: list[str], blurry: Path, sharp: Path) -> None:
    """data=pairs: the sharp folder being the blurry folder (also through links), or every sharp file being
    byte-identical to its blurry partner, is a :class:`DatasetError` naming the keys."""

    if blurry.resolve() == sharp.resolve():
        problem = f"data.{keys[1]} and data.{keys[0]} are the same folder ({sharp.resolve()})"
    elif all_identical((b, s) for b, s, _ in listing.pairs):
        problem = (
            f"every file of data.{keys[1]}={sharp} is byte-identical to its partner in data.{keys[0]}="
            f"{blurry}"
        )
    else:
        return
    raise DatasetError(
        f"data=pairs: {problem}: the ground truth would be the blurry images. Set data.{keys[1]} to the "
        "folder of sharp images."
    )


def list_folder(cfg: dict[str, Any]) -> list[tuple[Path, str]]:
    """Every image under ``data.root`` as (path, relative name)."""
    root = _root(cfg, "folder")
    images = scan_images(root, recursive=bool(cfg.get("recursive", True)))
    if not images:
        raise layout_error("folder", f"no images found in data.root={root}")
    return [(path, path.relative_to(root).as_posix()) for path in images.values()]


LISTERS: dict[str, Callable[[dict[str, Any], str], Listing]] = {
    "gopro": list_gopro,
    "hide": list_hide,
    "realblur_j": lambda cfg, split: list_realblur(cfg, split, "realblur_j"),
    "realblur_r": lambda cfg, split: list_realblur(cfg, split, "realblur_r"),
    "pairs": list_pairs_layout,
}


def list_pairs(name: str, cfg: dict[str, Any], split: str, min_size: int | None = None) -> list[Pair]:
    """The checked pairs of dataset ``name`` for ``split`` (``train`` | ``val``), per ``cfg`` (a data config
    dict: ``root`` and the dataset's options, ``on_bad_pair``, ``validate``)."""
    if name not in LISTERS:
        raise DatasetError(f"data={name} has no image pairs; paired datasets: {', '.join(LISTERS)}")
    split = _split(split)
    listing = LISTERS[name](cfg, split)
    return validate_listing(
        listing,
        name,
        cfg.get("root"),
        split,
        on_bad_pair=cfg.get("on_bad_pair") or "error",
        min_size=min_size,
        check_headers=bool(cfg.get("validate", True)),
    )


def build_dataset(
    name: str, cfg: dict[str, Any], split: str, transform: PairTransform | None = None
) -> Dataset:
    """Dataset ``name`` for ``split``: training = random ``crop_size`` crops + ``transform`` + ``repeats``;
    validation = centred ``val_crop_size`` crops (null = full images), no transform."""
    split = _split(split)
    train = split == "train"
    crop = cfg.get("crop_size") if train else cfg.get("val_crop_size")
    kwargs: dict[str, Any] = {
        "crop_size": crop,
        "random_crop": train,
        "transform": transform if train else None,
        "repeats": int(cfg.get("repeats") or 1) if train else 1,
    }
    if name == "folder":
        if train:
            raise DatasetError(
                "data=folder holds blurry images without ground truth: it cannot be used for training "
                "(use it with deblur-predict, or as qualitative validation images)"
            )
        return FolderDataset(list_folder(cfg), **kwargs)
    pairs = list_pairs(name, cfg, split, min_size=crop)
    log.info("data=%s split %s: %d pairs from %s", name, split, len(pairs), cfg.get("root"))
    return FilePairDataset(pairs, **kwargs)


def _builder(name: str) -> Callable[[dict[str, Any], str, PairTransform | None], Dataset]:
    def build(cfg: dict[str, Any], split: str, transform: PairTransform | None = None) -> Dataset:
        return build_dataset(name, cfg, split, transform)

    build.__name__ = f"build_{name}"
    return build


#: data.name -> builder(data_cfg, split, transform) -> Dataset, merged into DeblurDataModule's registry
DATASET_BUILDERS: dict[str, Callable[[dict[str, Any], str, PairTransform | None], Dataset]] = {
    name: _builder(name) for name in ("gopro", "hide", "realblur_j", "realblur_r", "pairs", "folder")
}
