"""One-time preparation of a paired dataset for fast training: sub-images or decoded arrays.

Why: a random 256x256 crop of a 1280x720 GoPro pair costs two full PNG decodes (the loader's throughput
per machine: ``make bench``, ``docs/benchmarks/``). With few CPU cores per GPU and many epochs the loader,
not the GPU, sets the pace. Cutting each training pair once into overlapping sub-images (default 512x512,
stride 256) means each sample decodes about a quarter of the pixels; ``format=npy`` stores decoded
``uint8`` arrays instead, which the loader memory-maps so a crop reads only its own rows (no decoding at
all, but about 11.6 GB of disk for the GoPro training pairs at full size, twice that as 512/256 sub-images).

Output: the flattened GoPro layout, so that ``data=gopro data.root=<output_root>`` reads it::

    <output_root>/train/{blur,sharp}/<name>_y<top>_x<left>.png   sub-images of the training pairs
    <output_root>/test/{blur,sharp}/<name>.png                   evaluation pairs, full size (val_mode=full)
    <output_root>/prepare.json                                    source, options and counts

``<name>`` keeps the source's sample name (GoPro ``<seq>/000047``), so sub-folders mirror the sequences.
Any paired dataset (gopro, hide, realblur_j, realblur_r, pairs) can be the source. The source is only
read: an output root inside the source (or the reverse) is refused. Existing outputs are kept, so an
interrupted run resumes; ``overwrite=True`` rewrites them. Every file is written atomically.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deblur.data.on_disk import SPLIT_FOLDER, list_pairs, read_rgb
from deblur.data.validate import DatasetError
from deblur.utils.files import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

FORMATS = ("png", "npy")
VAL_MODES = ("full", "patches", "none")


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """Offsets of ``patch``-long windows stepping by ``stride`` over ``length``; the last ends at the border.

    A side shorter than ``patch`` gives one window at 0 (the sub-image is then that side's full length).
    """
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def _save(path: Path, rgb: np.ndarray, fmt: str, png_compression: int) -> None:
    if fmt == "npy":
        atomic_write(path, lambda tmp: np.save(tmp, np.ascontiguousarray(rgb)), suffix=".npy")
        return
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)

    def _write(tmp: str) -> None:
        if not cv2.imwrite(tmp, bgr, [cv2.IMWRITE_PNG_COMPRESSION, png_compression]):
            raise OSError(f"OpenCV could not write {path}")

    atomic_write(path, _write, suffix=".png")


def _prepare_pair(job: tuple[Any, ...]) -> tuple[int, int]:
    """Write one pair's outputs; returns (files written, files kept because they existed)."""
    blurry_path, sharp_path, name, out_split, mode, patch, stride, fmt, png_compression, overwrite = job
    stem = Path(name).with_suffix("").as_posix()
    blur_dir, sharp_dir = Path(out_split) / "blur", Path(out_split) / "sharp"
    written = kept = 0
    if mode == "full":
        targets = [(blur_dir / f"{stem}.{fmt}", blurry_path), (sharp_dir / f"{stem}.{fmt}", sharp_path)]
        for target, source in targets:
            if target.exists() and not overwrite:
                kept += 1
                continue
            if fmt == "png" and Path(source).suffix.lower() == ".png":
                atomic_write(target, lambda tmp, src=source: shutil.copyfile(src, tmp))  # bytes as they are
            else:
                _save(target, np.asarray(read_rgb(source)), fmt, png_compression)
            written += 1
        return written, kept

    blurry, sharp = read_rgb(blurry_path), read_rgb(sharp_path)
    if blurry.shape != sharp.shape:
        raise DatasetError(f"size mismatch: {blurry_path} {blurry.shape} vs {sharp_path} {sharp.shape}")
    h, w = blurry.shape[:2]
    for top in patch_starts(h, patch, stride):
        for left in patch_starts(w, patch, stride):
            suffix = f"_y{top:04d}_x{left:04d}.{fmt}"
            for folder, image in ((blur_dir, blurry), (sharp_dir, sharp)):
                target = folder / f"{stem}{suffix}"
                if target.exists() and not overwrite:
                    kept += 1
                    continue
                _save(target, image[top : top + patch, left : left + patch], fmt, png_compression)
                written += 1
    return written, kept


def _check_apart(source_root: Path, output_root: Path, pairs: list[tuple[Path, Path, str]]) -> None:
    src, out = source_root.resolve(), output_root.resolve()
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        raise DatasetError(
            f"output_root={output_root} overlaps the source data.root={source_root}: the prepared copy must "
            "live outside the source dataset (which is never written to)"
        )
    for blurry, sharp, _ in pairs:
        for path in (blurry, sharp):
            if path.resolve().is_relative_to(out):
                raise DatasetError(
                    f"output_root={output_root} holds source file {path}; choose another folder"
                )


def prepare_dataset(
    source: dict[str, Any],
    output_root: str | os.PathLike,
    *,
    splits: tuple[str, ...] | list[str] = ("train", "val"),
    patch_size: int = 512,
    stride: int = 256,
    fmt: str = "png",
    val_mode: str = "full",
    png_compression: int = 1,
    overwrite: bool = False,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Prepare the dataset described by ``source`` (a data config dict: ``name``, ``root``, options).

    Training pairs are cut into ``patch_size`` sub-images every ``stride`` pixels (``patch_size=None``:
    whole images, useful with ``fmt="npy"``); the ``val`` split is copied full size (``val_mode="full"``,
    what evaluation needs), cut like training (``"patches"``) or left out (``"none"``). Returns (and
    writes as ``prepare.json``) the manifest.
    """
    name = source.get("name")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if val_mode not in VAL_MODES:
        raise ValueError(f"val_mode must be one of {', '.join(VAL_MODES)}, got {val_mode!r}")
    if patch_size is not None and (patch_size < 1 or stride < 1):
        raise ValueError(f"patch_size and stride must be positive, got {patch_size} and {stride}")
    unknown = [s for s in splits if s not in SPLIT_FOLDER]
    if unknown:
        raise ValueError(f"splits must be among {', '.join(SPLIT_FOLDER)}, got {unknown}")
    out_root = Path(output_root).expanduser()
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        mode = "full" if patch_size is None else ("patches" if split == "train" else val_mode)
        if mode == "none":
            continue
        pairs = list_pairs(str(name), source, split)
        _check_apart(Path(str(source["root"])).expanduser(), out_root, pairs)
        out_split = out_root / SPLIT_FOLDER[split]
        jobs = [
            (str(b), str(s), n, str(out_split), mode, patch_size, stride, fmt, png_compression, overwrite)
            for b, s, n in pairs
        ]
        log.info("prepare: %s split %s, %d pairs -> %s (%s)", name, split, len(jobs), out_split, mode)
        written = kept = 0
        if num_workers > 0:
            with multiprocessing.get_context("spawn").Pool(min(num_workers, len(jobs))) as pool:
                results = list(pool.imap_unordered(_prepare_pair, jobs, chunksize=1))
        else:
            results = [_prepare_pair(job) for job in jobs]
        for w, k in results:
            written, kept = written + w, kept + k
        counts[split] = {"pairs": len(jobs), "files_written": written, "files_kept": kept}
        log.info("prepare: %s: wrote %d file(s), kept %d existing", split, written, kept)
    manifest = {
        "source": {k: v for k, v in source.items() if k in ("name", "root", "blur_kind", "subset")},
        "output_root": str(out_root),
        "layout": "{train,test}/{blur,sharp}",
        "patch_size": patch_size,
        "stride": stride,
        "format": fmt,
        "val_mode": val_mode,
        "splits": counts,
    }
    atomic_write_json(out_root / "prepare.json", manifest)
    return manifest
