"""Score predictions against ground truth as the papers do: one image pair (:func:`score`) or two folders
(:func:`score_folders`, the library behind ``deblur-score``; ``deblur-eval`` scores through it too).

Protocols (:data:`METRIC_COLUMNS`):

* ``gopro`` (also the HIDE protocol): 8-bit images, PSNR peak 255 over all channels, MATLAB 3-D SSIM
  (``ssim``) and the per-channel 2-D SSIM of Python codebases (``ssim_per_channel``), see
  :mod:`deblur.metrics.protocol`;
* ``realblur``: gain match + ECC homography alignment, masked PSNR and SSIM (data range 1), see
  :mod:`deblur.metrics.realblur`;
* ``basicsr``: BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with its settings ``crop_border`` and
  ``test_y_channel`` (recorded in the summary), see :mod:`deblur.metrics.basicsr`.

Images are scored as 8-bit RGB: files are read with :func:`deblur.io.read_image` (EXIF orientation
applied, alpha dropped), a gray image is replicated to three channels and a 16-bit one is rounded to 8 bits
(``round(v * 255 / 65535)``); float images in [0, 1] are rounded to 8 bits as a saved PNG would be
(:func:`deblur.metrics.protocol.to_uint8`). Per-image values are averaged over the images, as the papers do.

Folders are matched by each file's path relative to its folder without the extension (``a/b.png`` matches
``a/b.jpg``); the extensions are :data:`deblur.io.IMAGE_EXTENSIONS`. Outputs of :func:`write_outputs`
(written atomically; the inputs are only read):

* ``scores.csv``: one row per image: ``name, psnr, ssim[, ssim_per_channel][, lpips]``;
* ``summary.json``: ``psnr``, ``ssim`` (and ``ssim_per_channel`` for gopro, ``lpips`` with
  ``metrics.lpips``), ``count``, ``protocol``, ``pred_dir``, ``gt_dir`` and bookkeeping (skipped files, ECC
  fallbacks);
* ``summary.md``: the same as a Markdown table (:func:`summary_markdown`).
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deblur.errors import UserError
from deblur.io import IMAGE_EXTENSIONS, list_images, read_image, size_text, to_rgb
from deblur.io import to_uint8 as to_8bit
from deblur.metrics.basicsr import basicsr_scores, check_crop_border, check_crop_fits
from deblur.metrics.benchmarks import benchmark_pairing, detect_benchmark, refuse_blurry_ground_truth
from deblur.metrics.not_predictions import BASELINE_LABEL, check_folders, check_pairs, check_scores
from deblur.metrics.protocol import psnr_255, ssim_3d, ssim_per_channel, to_uint8
from deblur.metrics.realblur import realblur_scores
from deblur.utils.files import atomic_write_json, atomic_write_text
from deblur.utils.pixels import check_pixels
from deblur.utils.values import check_bool, check_int, format_number, mean

log = logging.getLogger(__name__)

#: Supported protocols and the per-image metric columns each writes (after ``name``).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "gopro": ("psnr", "ssim", "ssim_per_channel"),
    "realblur": ("psnr", "ssim"),
    "basicsr": ("psnr", "ssim"),
}
#: the settings of protocol ``basicsr`` (BasicSR's keys) and their defaults; other protocols take none
BASICSR_SETTINGS = {"crop_border": 0, "test_y_channel": False}
PROTOCOLS = tuple(METRIC_COLUMNS)
ON_MISSING = ("error", "skip")
#: How many unmatched names an error message lists before giving only the count.
MAX_LISTED = 10

#: an image given to the scorer: a file, or an array already in memory
ImageSource = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class Pairing:
    """Result of :func:`pair_folders`: matched ``(name, pred_path, gt_path)`` triples sorted by name, and
    the names (relative paths) present on one side only."""

    pairs: list[tuple[str, Path, Path]]
    pred_only: list[str]
    gt_only: list[str]


def check_protocol(protocol: str) -> str:
    """``protocol`` when it is one of :data:`PROTOCOLS`; else ValueError listing them."""
    if protocol not in METRIC_COLUMNS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    return protocol


def protocol_settings(protocol: str, crop_border: Any = 0, test_y_channel: Any = False) -> dict[str, Any]:
    """The checked settings of ``protocol``: ``{"crop_border", "test_y_channel"}`` for ``basicsr``, ``{}`` for
    the others. UserError naming the key for a bad value, or for a non-default value given to another
    protocol (it would be ignored)."""
    check_protocol(protocol)
    crop_border = check_crop_border(crop_border)
    if not isinstance(test_y_channel, bool):
        raise UserError(f"test_y_channel must be true or false (BasicSR's key), got {test_y_channel!r}")
    if protocol == "basicsr":
        return {"crop_border": crop_border, "test_y_channel": test_y_channel}
    given = {"crop_border": crop_border, "test_y_channel": test_y_channel}
    for key, value in given.items():
        if value != BASICSR_SETTINGS[key]:
            shown = str(value).lower() if isinstance(value, bool) else value
            raise UserError(f"{key}={shown} applies to protocol=basicsr only; the protocol is {protocol}")
    return {}


def _check_folder(key: str, path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{key} {what}: {folder}")
    return folder.resolve()


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, recursive: bool = True) -> Pairing:
    """Match the images of ``pred_dir`` and ``gt_dir`` by relative path without the extension.

    The pair name is the prediction's relative path (with its extension). Hidden files are ignored; two
    files of one folder differing only in the extension raise ``ValueError`` naming both.
    """
    pred = list_images(pred_dir, recursive)
    gt = list_images(gt_dir, recursive)
    refuse_blurry_ground_truth(gt, Path(gt_dir))
    common = sorted(pred.keys() & gt.keys())
    pairs = [(pred[k].relative_to(pred_dir).as_posix(), pred[k], gt[k]) for k in common]
    return Pairing(
        pairs=pairs,
        pred_only=sorted(pred[k].relative_to(pred_dir).as_posix() for k in pred.keys() - gt.keys()),
        gt_only=sorted(gt[k].relative_to(gt_dir).as_posix() for k in gt.keys() - pred.keys()),
    )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "")


# ------------------------------------------------------------------------------------------ one pair
def as_uint8_rgb(image: Any, what: str = "image") -> np.ndarray:
    """An image as the protocols score it: ``(H, W, 3)`` uint8 RGB.

    Takes a numpy array ``(H, W)`` / ``(H, W, 3)`` of uint8, uint16 (``round(v * 255 / 65535)``) or floats
    in [0, 1] (rounded to nearest as a saved PNG), or a tensor ``(3, H, W)`` / ``(H, W)`` of floats in
    [0, 1]. Gray is replicated to three channels (the one rule for a gray prediction, whether it comes as
    an array or as a saved file). Empty images, NaN / infinite samples and float samples outside [0, 1]
    are refused with a ValueError naming ``what`` (:func:`deblur.utils.pixels.check_pixels`).
    """
    if hasattr(image, "detach"):  # a torch.Tensor, without importing torch here
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        elif image.ndim != 2:
            raise ValueError(f"expected a (3, H, W) or (H, W) tensor, got shape {tuple(image.shape)}")
        image = image.detach().cpu()
        image = (image.float() if image.is_floating_point() else image).numpy()
    image = np.asarray(image)
    check_pixels(image, what)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        image = to_uint8(image)
    elif image.dtype in (np.uint8, np.uint16):
        image = to_8bit(image)
    else:
        raise ValueError(f"expected uint8, uint16 or float images in [0, 1], got dtype {image.dtype}")
    return to_rgb(image)


def score_pair(
    pred_uint8: np.ndarray,
    gt_uint8: np.ndarray,
    protocol: str = "gopro",
    crop_border: int = 0,
    test_y_channel: bool = False,
) -> dict[str, Any]:
    """Score one ``uint8`` pair (``(H, W, 3)`` or ``(H, W)``, equal shapes) under ``protocol``.

    gopro: ``{"psnr", "ssim" (3-D MATLAB SSIM), "ssim_per_channel"}``; realblur: ``{"psnr", "ssim",
    "ecc_converged"}``; basicsr: ``{"psnr", "ssim"}`` with ``crop_border`` / ``test_y_channel``
    (:func:`protocol_settings`). :func:`score` takes any image kind.
    """
    settings = protocol_settings(protocol, crop_border, test_y_channel)
    if protocol == "basicsr":
        return basicsr_scores(pred_uint8, gt_uint8, **settings)
    if protocol == "gopro":
        return {
            "psnr": psnr_255(pred_uint8, gt_uint8),
            "ssim": ssim_3d(pred_uint8, gt_uint8),
            "ssim_per_channel": ssim_per_channel(pred_uint8, gt_uint8),
        }
    return realblur_scores(pred_uint8, gt_uint8)


def score(
    pred: Any, target: Any, protocol: str = "gopro", *, crop_border: int = 0, test_y_channel: bool = False
) -> dict[str, Any]:
    """Score one prediction against its ground truth with a paper's protocol.

    Args:
        pred, target: numpy arrays ``(H, W, 3)`` or ``(H, W)`` of uint8 (or uint16), or of floats in [0, 1],
            or tensors ``(3, H, W)`` of floats in [0, 1]; the same size. Floats are rounded to 8 bits as a
            saved PNG would be (clipped to [0, 1], times 255, rounded to nearest): the papers' protocol.
        protocol: ``gopro`` (GoPro, HIDE), ``realblur`` (RealBlur-J/-R) or ``basicsr`` (BasicSR's
            ``calculate_psnr`` / ``calculate_ssim``).
        crop_border, test_y_channel: protocol ``basicsr`` only: pixels cut from each border, and score
            the BT.601 luma Y only (:mod:`deblur.metrics.basicsr`).

    Returns:
        gopro: ``{"psnr", "ssim", "ssim_per_channel"}`` (PSNR in dB, peak 255; ``ssim`` = MATLAB's 3-D
        SSIM); realblur: ``{"psnr", "ssim", "ecc_converged"}`` (after ECC alignment, masked); basicsr:
        ``{"psnr", "ssim"}``. Identical images have an infinite PSNR.

    Raises:
        ValueError: an unknown protocol, an unsupported image kind, images of different sizes, an empty
            image, NaN or infinite samples, or float samples outside [0, 1] (a float image in 0..255 is
            the usual mistake: divide it by 255 or pass uint8).

    Examples:
        >>> import numpy as np
        >>> target = np.full((16, 16, 3), 128, np.uint8)
        >>> pred = target.copy()
        >>> pred[0, 0, 0] = 138      # one sample off by 10: MSE = 100 / 768
        >>> round(score(pred, target)["psnr"], 2)
        56.98
        >>> round(score(pred / 255.0, target)["psnr"], 2)   # floats in [0, 1]: rounded to 8 bits first
        56.98
        >>> score(target, target)["ssim"]
        1.0
    """
    settings = protocol_settings(protocol, crop_border, test_y_channel)
    pred, target = as_uint8_rgb(pred, "pred"), as_uint8_rgb(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"size mismatch: prediction is {_shape(pred)} but ground truth is {_shape(target)}")
    return score_pair(pred, target, protocol, **settings)


def _load(source: ImageSource) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return as_uint8_rgb(source)
    return as_uint8_rgb(read_image(source)[0])


def _shape(img: np.ndarray) -> str:
    return size_text(img.shape[0], img.shape[1])


def score_files(
    name: str, pred: ImageSource, gt: ImageSource, protocol: str = "gopro", **settings: Any
) -> dict[str, Any]:
    """Read (when given as files) and score one pair; returns the row ``{"name": name, <metrics>}``.

    ``pred`` and ``gt``: image files or arrays (see :func:`as_uint8_rgb`). A size mismatch names both.
    ``settings``: the protocol's settings (:func:`protocol_settings`).
    """
    pred_img, gt_img = _load(pred), _load(gt)
    if pred_img.shape != gt_img.shape:
        what = (
            f"for {name}" if isinstance(pred, np.ndarray) else str(pred),
            f"for {name}" if isinstance(gt, np.ndarray) else str(gt),
        )
        raise ValueError(
            f"size mismatch: prediction {what[0]} is {_shape(pred_img)} "
            f"but ground truth {what[1]} is {_shape(gt_img)}"
        )
    if settings.get("crop_border"):
        check_crop_fits(settings["crop_border"], *pred_img.shape[:2], what=name)
    return {"name": name, **score_pair(pred_img, gt_img, protocol, **settings)}


# ------------------------------------------------------------------------------------------ LPIPS
def lpips_scorer(metrics: Mapping[str, Any] | None, device: Any = "cpu") -> Any:
    """The LPIPS network the ``metrics`` node asks for (:class:`deblur.metrics.lpips_score.LpipsScorer`), or
    None when ``metrics.lpips`` is off. UserError naming the key for a bad node or weights file."""
    from deblur.metrics.lpips_score import LpipsScorer, check_lpips_config

    cfg = check_lpips_config(metrics)
    return LpipsScorer(cfg["lpips_net"], cfg["lpips_weights"], device) if cfg["lpips"] else None


def with_lpips(
    jobs: Iterable[tuple[str, ImageSource, ImageSource]], scorer: Any, values: list[float | None]
) -> Iterator[tuple[str, ImageSource, ImageSource]]:
    """Pass ``(name, pred, gt)`` jobs on unchanged, appending to ``values`` the LPIPS of each pair in job
    order (read here when given as files). A pair of two sizes gets None: the scorer fails naming both."""
    for name, pred, gt in jobs:
        pred_img, gt_img = _load(pred), _load(gt)
        values.append(scorer(pred_img, gt_img, what=name) if pred_img.shape == gt_img.shape else None)
        yield name, pred, gt


def add_lpips(rows: list[dict[str, Any]], values: list[float | None]) -> None:
    """Put each row's LPIPS (from :func:`with_lpips`; :func:`score_rows` keeps the job order) into the row
    as ``lpips``."""
    for row, value in zip(rows, values, strict=True):
        row["lpips"] = value


# ------------------------------------------------------------------------------------------ many pairs
def _worker_init() -> None:
    """One thread per scoring process: the pool is the parallelism."""
    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def score_rows(
    jobs: Iterable[tuple[str, ImageSource, ImageSource]],
    protocol: str = "gopro",
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Score ``(name, pred, gt)`` jobs (files or arrays); rows in the order of ``jobs``.

    ``settings``: the protocol's settings (``crop_border`` / ``test_y_channel`` for ``basicsr``).

    ``num_workers`` 0 scores each job as it comes; ``N > 0`` hands the jobs to a pool of N spawned
    processes while ``jobs`` goes on (e.g. a generator running a network), then waits for all rows.
    ``progress(rows done)`` is called as rows complete.
    """
    settings = protocol_settings(protocol, **settings)
    workers = check_int("num_workers", num_workers)
    if hasattr(jobs, "__len__"):
        workers = min(workers, max(len(jobs), 1))
    rows: list[dict[str, Any]] = []
    if workers == 0:
        for name, pred, gt in jobs:
            rows.append(score_files(name, pred, gt, protocol, **settings))
            if progress is not None:
                progress(len(rows))
        return rows
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=spawn, initializer=_worker_init)
    try:
        futures: list[Future] = [
            pool.submit(score_files, name, p, g, protocol, **settings) for name, p, g in jobs
        ]
        for future in futures:
            rows.append(future.result())
            if progress is not None:
                progress(len(rows))
    finally:
        pool.shutdown(cancel_futures=True)
    return rows


def summarize(rows: list[dict[str, Any]], protocol: str, **fields: Any) -> dict[str, Any]:
    """The summary of scored rows: the per-image mean of each of the protocol's metrics, ``count``,
    ``protocol``, then ``fields``; for realblur also ``ecc_fallbacks`` (names scored with the identity
    warp because ECC failed)."""
    columns = [*METRIC_COLUMNS[protocol], *(["lpips"] if rows and "lpips" in rows[0] else [])]
    summary: dict[str, Any] = {col: mean(r[col] for r in rows) for col in columns}
    summary.update(count=len(rows), protocol=protocol, **fields)
    if protocol == "realblur":
        fallbacks = [r["name"] for r in rows if not r.get("ecc_converged", True)]
        if fallbacks:
            log.warning(
                "ECC alignment failed for %d image(s), scored unaligned: %s",
                len(fallbacks),
                _listing(fallbacks),
            )
        summary["ecc_fallbacks"] = fallbacks
    return summary


def score_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    protocol: str = "gopro",
    *,
    recursive: bool = True,
    on_missing: str = "error",
    num_workers: int = 0,
    output_dir: str | os.PathLike | None = None,
    dataset: str | None = None,
    blurry_baseline: bool = False,
    crop_border: int = 0,
    test_y_channel: bool = False,
    metrics: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every matched image pair of two folders; returns ``(rows, summary)``.

    Args:
        pred_dir, gt_dir: the predictions and the ground truth (only read). ``gt_dir`` may be a benchmark
            dataset (a GoPro / HIDE / RealBlur root or its ``test/`` folder): then the ground truth is the
            sharp image of each pair of its test split, found as :mod:`deblur.metrics.benchmarks` says, and
            predictions of other frames are ignored (``pred_ignored``). A plain folder is matched by
            relative path; one holding blurry frames (``blur/``, ``input/`` ...) is refused.
        dataset: which benchmark ``gt_dir`` is (None: recognised from its layout; needed only for a
            RealBlur root holding both lists).
        protocol: ``gopro``, ``realblur`` or ``basicsr``.
        crop_border, test_y_channel: protocol ``basicsr`` only (BasicSR's keys: pixels cut from each
            border, score the BT.601 luma only); recorded in the summary.
        metrics: extra metrics (the ``metrics`` node of ``conf/score.yaml``): ``{"lpips": True}`` adds the
            LPIPS of each pair (``lpips`` in rows and summary, ``lpips_net`` in the summary), with
            ``lpips_net`` (``alex`` / ``vgg``) and ``lpips_weights`` (the backbone file, for no network).
        recursive: also match files in sub-folders.
        on_missing: ``error`` (an image without partner fails, listing up to 10 per side and the counts)
            or ``skip`` (score the matched pairs; the others are listed in the summary).
        num_workers: 0 scores in this process; N > 0 in a pool of N spawned processes.
        output_dir: when given, also write ``scores.csv``, ``summary.json`` and ``summary.md`` there
            (:func:`write_outputs`); it must lie outside both input folders.
        blurry_baseline: score a dataset's blurry frames on purpose (a table's "blurry input" row):
            every output is labelled ``baseline: blurry_input``. Without it, ``pred_dir`` holding blurry
            frames is refused (:mod:`deblur.metrics.not_predictions`).

    Returns:
        ``rows``: one dict per pair, sorted by name: ``name`` and the protocol's metrics (see
        :data:`METRIC_COLUMNS`; realblur rows also carry ``ecc_converged``). ``summary``: the per-image
        means (``psnr``, ``ssim`` and, for gopro, ``ssim_per_channel``), ``count``, ``protocol``,
        ``pred_dir``, ``gt_dir``, ``recursive``, the skipped names (``pred_without_gt``,
        ``gt_without_pred``), for realblur ``ecc_fallbacks``, for basicsr ``crop_border`` and
        ``test_y_channel``. A pair of identical images has an
        infinite PSNR (as MATLAB's ``psnr``), which makes the mean infinite (``Infinity`` in JSON).

    Raises:
        FileNotFoundError: a missing folder (naming the key and path).
        ValueError: an unknown ``protocol`` / ``on_missing``, a bad ``num_workers`` / ``recursive``,
            unmatched files with ``on_missing="error"``, no pairs at all, a size mismatch (naming both
            files), or ``output_dir`` inside an input folder.
        deblur.metrics.not_predictions.NotPredictions: ``pred_dir`` is ``gt_dir``, a copy of it, or a
            dataset's blurry frames (without ``blurry_baseline``).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from deblur.io import write_image
        >>> root = Path(tempfile.mkdtemp())
        >>> gt = np.full((16, 16, 3), 100, np.uint8)
        >>> _ = write_image(root / "gt" / "a.png", gt)
        >>> _ = write_image(root / "pred" / "a.png", gt + 1)     # every sample off by one: 48.13 dB
        >>> rows, summary = score_folders(root / "pred", root / "gt")
        >>> summary["count"], round(summary["psnr"], 2), rows[0]["name"]
        (1, 48.13, 'a.png')
    """
    settings = protocol_settings(protocol, crop_border, test_y_channel)
    if on_missing not in ON_MISSING:
        raise ValueError(f"unknown on_missing {on_missing!r}; choose one of: {', '.join(ON_MISSING)}")
    check_int("num_workers", num_workers)
    check_bool("recursive", recursive)
    check_bool("blurry_baseline", blurry_baseline)
    lpips = lpips_scorer(metrics)  # built (and its weights checked) before any scoring
    pred_root = _check_folder("pred_dir", pred_dir)
    gt_root = _check_folder("gt_dir", gt_dir)
    check_folders(pred_root, gt_root, blurry_baseline)
    if output_dir is not None:
        out = Path(output_dir).expanduser().resolve()
        for key, folder in (("pred_dir", pred_root), ("gt_dir", gt_root)):
            if out.is_relative_to(folder):
                raise ValueError(
                    f"the output dir must differ from {key} and lie outside it (inputs are never written "
                    f"to): {out} is in {folder}"
                )

    benchmark = detect_benchmark(gt_root, dataset)
    ignored: list[str] = []
    inputs = None
    if benchmark is not None:
        name, root = benchmark
        matched = benchmark_pairing(list_images(pred_root, recursive), name, root, pred_root)
        pairing = Pairing(pairs=matched.pairs, pred_only=[], gt_only=matched.gt_only)
        ignored, inputs = matched.pred_only, matched.inputs
        log.info("gt_dir is the %s dataset at %s: scoring against the sharp images of its test split (%d "
                 "pairs); %d other prediction(s) ignored", name, root, len(matched.pairs), len(ignored))
    elif dataset is not None:
        raise ValueError(f"dataset={dataset}: gt_dir={gt_root} is not in its layout (see docs/datasets.md)")
    else:
        pairing = pair_folders(pred_root, gt_root, recursive=recursive)
    if (pairing.pred_only or pairing.gt_only) and on_missing == "error":
        lines = [f"unmatched images between pred_dir={pred_root} and gt_dir={gt_root}:"]
        if pairing.pred_only:
            n = len(pairing.pred_only)
            lines.append(f"  {n} prediction(s) without ground truth: {_listing(pairing.pred_only)}")
        if pairing.gt_only:
            n = len(pairing.gt_only)
            lines.append(f"  {n} ground-truth image(s) without prediction: {_listing(pairing.gt_only)}")
        lines.append("Set on_missing=skip to score only the matched pairs.")
        raise ValueError("\n".join(lines))
    if pairing.pred_only or pairing.gt_only:
        log.warning(
            "skipping %d prediction(s) without ground truth and %d ground-truth image(s) without prediction",
            len(pairing.pred_only),
            len(pairing.gt_only),
        )
    if not pairing.pairs:
        raise ValueError(
            f"no image pairs to score: pred_dir={pred_root} and gt_dir={gt_root} share no image names "
            f"(recursive={recursive}; extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )

    check_pairs(pred_root, gt_root, pairing.pairs, inputs, blurry_baseline)
    total = len(pairing.pairs)
    step = max(1, total // 10)

    def progress(done: int) -> None:
        if done % step == 0 or done == total:
            log.info("scored %d/%d images", done, total)

    lpips_values: list[float | None] = []
    jobs = pairing.pairs if lpips is None else with_lpips(pairing.pairs, lpips, lpips_values)
    rows = score_rows(jobs, protocol, num_workers, progress, **settings)
    check_scores(rows, pred_root, gt_root)
    if lpips is not None:
        add_lpips(rows, lpips_values)
    summary = summarize(
        rows,
        protocol,
        **settings,
        **({"lpips_net": lpips.net} if lpips is not None else {}),
        pred_dir=str(pred_root),
        gt_dir=str(gt_root),
        recursive=recursive,
        pred_without_gt=pairing.pred_only,
        gt_without_pred=pairing.gt_only,
        dataset=benchmark[0] if benchmark else None,
        pred_ignored=ignored,
    )
    if blurry_baseline:
        summary["baseline"] = BASELINE_LABEL
        for row in rows:
            row["baseline"] = BASELINE_LABEL
    if output_dir is not None:
        write_outputs(rows, summary, output_dir)
    return rows, summary


# ------------------------------------------------------------------------------------------ outputs
def protocol_text(summary: dict[str, Any]) -> str:
    """The protocol of a summary with its settings, e.g. ``basicsr (crop_border=4, test_y_channel=true)``."""
    protocol = summary["protocol"]
    if protocol != "basicsr":
        return protocol
    settings = {key: summary.get(key, default) for key, default in BASICSR_SETTINGS.items()}
    shown = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items())
    return f"{protocol} ({shown})"


#: what LPIPS is computed on under a protocol that scores PSNR / SSIM on other pixels than the files'
LPIPS_SCOPE = {
    "realblur": "on the prediction as written, not ECC-aligned or masked as PSNR / SSIM are (the ground "
    "truth's misalignment counts)",
    "basicsr": "on the whole images, crop_border / test_y_channel not applied",
}


def lpips_scope(summary: Mapping[str, Any]) -> str:
    """``", <what LPIPS was computed on>"`` when it is not the pixels PSNR / SSIM scored, else ``""``."""
    protocol = summary.get("protocol", "")
    if protocol == "basicsr" and not (summary.get("crop_border") or summary.get("test_y_channel")):
        return ""  # BasicSR with neither setting scores the whole RGB images, as LPIPS does
    return f", {LPIPS_SCOPE[protocol]}" if protocol in LPIPS_SCOPE else ""


def summary_markdown(summary: dict[str, Any]) -> str:
    """A Markdown table of a :func:`score_folders` summary (PSNR 2 decimals, SSIM 4)."""
    metrics = METRIC_COLUMNS[summary["protocol"]]
    if "lpips" in summary:
        metrics = (*metrics, "lpips")
    titles = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ssim_per_channel": "SSIM (per-channel)", "lpips": "LPIPS"}
    if summary["protocol"] == "gopro":
        titles["ssim"] = "SSIM (3-D, MATLAB)"
    header = ["protocol", "images", *(titles[m] for m in metrics)]
    values = [
        summary["protocol"],
        str(summary["count"]),
        *(format_number(summary[m], 2 if m == "psnr" else 4) for m in metrics),
    ]
    baseline = " (blurry-input baseline, not predictions)" if summary.get("baseline") else ""
    lines = [
        f"# Scores{baseline}: `{summary['pred_dir']}` vs `{summary['gt_dir']}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        "| " + " | ".join(values) + " |",
    ]
    notes = []
    if summary["protocol"] == "basicsr":
        notes.append(f"- protocol: {protocol_text(summary)}: BasicSR's calculate_psnr / calculate_ssim")
    if "lpips" in summary:
        scope = lpips_scope(summary)
        notes.append(f"- LPIPS: torchmetrics, net {summary.get('lpips_net')} (lower = closer){scope}")
    if summary.get("baseline"):
        notes.append(f"- baseline: {summary['baseline']} (scored with blurry_baseline=true)")
    if summary.get("pred_without_gt"):
        notes.append(f"- skipped {len(summary['pred_without_gt'])} prediction(s) without ground truth")
    if summary.get("gt_without_pred"):
        notes.append(f"- skipped {len(summary['gt_without_pred'])} ground-truth image(s) without prediction")
    if summary.get("ecc_fallbacks"):
        n = len(summary["ecc_fallbacks"])
        notes.append(f"- ECC alignment failed (identity warp used) for {n} image(s)")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def write_outputs(
    rows: list[dict[str, Any]], summary: dict[str, Any], output_dir: str | os.PathLike
) -> dict[str, Path]:
    """Write ``scores.csv``, ``summary.json`` and ``summary.md`` atomically into ``output_dir``."""
    out = Path(output_dir)
    columns = ["name", *METRIC_COLUMNS[summary["protocol"]]]
    if "lpips" in summary:
        columns.append("lpips")
    if summary.get("baseline"):
        columns.append("baseline")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return {
        "scores": atomic_write_text(out / "scores.csv", buf.getvalue()),
        "summary": atomic_write_json(out / "summary.json", summary),
        "markdown": atomic_write_text(out / "summary.md", summary_markdown(summary)),
    }
