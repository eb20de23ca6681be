"""``deblur-score``: score a folder of predictions against a folder of ground truth.

    deblur-score pred_dir=results/gopro gt_dir=data/GOPRO_Large/test_flat protocol=gopro
    deblur-score pred_dir=results/realblur_j gt_dir=data/realblur_j_gt protocol=realblur num_workers=2

Files are matched by their path relative to each folder without the extension (``a/b.png`` matches
``a/b.jpg``); with ``recursive=false`` only the top level is read. Protocols:

* ``gopro`` (also the HIDE protocol): 8-bit images, PSNR peak 255 over all channels, MATLAB 3-D SSIM
  (``ssim``) and the per-channel 2-D SSIM of Python codebases (``ssim_per_channel``);
* ``realblur``: gain match + ECC homography alignment, masked PSNR and SSIM (data range 1).

Per-image values are averaged over the images, as the papers do. Outputs, written atomically into
``cfg.paths.output_dir`` (Hydra's run dir; the inputs are only read):

* ``scores.csv``: one row per image: ``name, psnr, ssim[, ssim_per_channel]``;
* ``summary.json``: ``psnr``, ``ssim`` (and ``ssim_per_channel`` for gopro), ``count``, ``protocol``,
  ``pred_dir``, ``gt_dir`` and bookkeeping (skipped files, ECC fallbacks);
* ``summary.md``: the same as a Markdown table.

The scoring is importable (:func:`score_folders`, :func:`write_outputs`) for ``deblur-eval``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig

from deblur.data.datasets import scan_images
from deblur.metrics.protocol import psnr_255, ssim_3d, ssim_per_channel
from deblur.metrics.realblur import realblur_scores
from deblur.paths import CONF_DIR
from deblur.utils.files import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

#: Supported protocols and the per-image metric columns each writes (after ``name``).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "gopro": ("psnr", "ssim", "ssim_per_channel"),
    "realblur": ("psnr", "ssim"),
}
PROTOCOLS = tuple(METRIC_COLUMNS)
ON_MISSING = ("error", "skip")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
#: How many unmatched names an error message lists before giving only the count.
MAX_LISTED = 10


@dataclass(frozen=True)
class Pairing:
    """Result of :func:`pair_folders`: matched ``(name, pred_path, gt_path)`` triples sorted by name, and
    the names (relative paths) present on one side only."""

    pairs: list[tuple[str, Path, Path]]
    pred_only: list[str]
    gt_only: list[str]


def _check_protocol(protocol: str) -> str:
    if protocol not in METRIC_COLUMNS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    return protocol


def _check_folder(key: str, path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{key} {what}: {folder}")
    return folder.resolve()


def list_images(folder: str | os.PathLike, recursive: bool = True) -> dict[str, Path]:
    """Image files under ``folder``, keyed by their relative POSIX path without the extension.

    Hidden files and folders (names starting with ``.``) are ignored. Two files that differ only in the
    extension (``a.png`` and ``a.jpg``) are ambiguous and raise ``ValueError`` naming both.
    """
    return scan_images(Path(folder), recursive, extensions=IMAGE_EXTENSIONS)


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, recursive: bool = True) -> Pairing:
    """Match the images of ``pred_dir`` and ``gt_dir`` by relative path without the extension.

    The pair name is the prediction's relative path (with its extension).
    """
    pred = list_images(pred_dir, recursive)
    gt = list_images(gt_dir, recursive)
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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image file as ``uint8`` RGB ``(H, W, 3)`` or grayscale ``(H, W)``; alpha is dropped."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image file {path}")
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: expected an 8-bit image, got dtype {img.dtype}")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def score_pair(pred_uint8: np.ndarray, gt_uint8: np.ndarray, protocol: str = "gopro") -> dict[str, Any]:
    """Score one ``uint8`` pair (``(H, W, 3)`` or ``(H, W)``) under ``protocol``.

    gopro: ``{"psnr", "ssim" (3-D MATLAB SSIM), "ssim_per_channel"}``; realblur: ``{"psnr", "ssim",
    "ecc_converged"}``.
    """
    _check_protocol(protocol)
    if protocol == "gopro":
        return {
            "psnr": psnr_255(pred_uint8, gt_uint8),
            "ssim": ssim_3d(pred_uint8, gt_uint8),
            "ssim_per_channel": ssim_per_channel(pred_uint8, gt_uint8),
        }
    return realblur_scores(pred_uint8, gt_uint8)


def score_files(name: str, pred_path: Path, gt_path: Path, protocol: str) -> dict[str, Any]:
    """Read and score one pair of files; returns the row ``{"name": name, <metrics>}``."""
    pred = read_image(pred_path)
    gt = read_image(gt_path)
    if pred.shape != gt.shape:
        raise ValueError(
            f"size mismatch: prediction {pred_path} is {_shape(pred)} "
            f"but ground truth {gt_path} is {_shape(gt)}"
        )
    return {"name": name, **score_pair(pred, gt, protocol)}


def _shape(img: np.ndarray) -> str:
    return "x".join(str(s) for s in img.shape)


def _score_job(job: tuple[str, Path, Path, str]) -> dict[str, Any]:
    return score_files(*job)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def score_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    protocol: str = "gopro",
    *,
    recursive: bool = True,
    on_missing: str = "error",
    num_workers: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every matched image pair of two folders; returns ``(rows, summary)``.

    ``rows``: one dict per pair, sorted by name: ``name`` and the protocol's metrics (see
    :data:`METRIC_COLUMNS`; realblur rows also carry ``ecc_converged``). ``summary``: the per-image means
    (``psnr``, ``ssim`` and, for gopro, ``ssim_per_channel``), ``count``, ``protocol``, ``pred_dir``,
    ``gt_dir``, ``recursive``, the skipped names (``pred_without_gt``, ``gt_without_pred``) and, for
    realblur, ``ecc_fallbacks`` (names scored with the identity warp because ECC failed).

    Raises ``FileNotFoundError`` for a missing folder (naming the key and path), ``ValueError`` for an
    unknown ``protocol``/``on_missing``, unmatched files with ``on_missing="error"`` (listing up to 10
    per side and the counts), no pairs at all, or a size mismatch (naming both files). ``num_workers > 0``
    scores in a pool of that many spawned processes. The input folders are only read. A pair of identical
    images has an infinite PSNR (as MATLAB's ``psnr``), which makes the mean infinite (``Infinity`` in
    ``summary.json``).
    """
    _check_protocol(protocol)
    if on_missing not in ON_MISSING:
        raise ValueError(f"unknown on_missing {on_missing!r}; choose one of: {', '.join(ON_MISSING)}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    pred_root = _check_folder("pred_dir", pred_dir)
    gt_root = _check_folder("gt_dir", gt_dir)

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

    jobs = [(name, p, g, protocol) for name, p, g in pairing.pairs]
    total = len(jobs)
    step = max(1, total // 10)
    rows: list[dict[str, Any]] = []
    if num_workers == 0:
        results = map(_score_job, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(num_workers, total), initializer=_worker_init)
        results = pool.imap(_score_job, jobs, chunksize=1)
    try:
        for row in results:
            rows.append(row)
            if len(rows) % step == 0 or len(rows) == total:
                log.info("scored %d/%d images", len(rows), total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    summary: dict[str, Any] = {col: _mean([r[col] for r in rows]) for col in METRIC_COLUMNS[protocol]}
    summary.update(
        count=len(rows),
        protocol=protocol,
        pred_dir=str(pred_root),
        gt_dir=str(gt_root),
        recursive=bool(recursive),
        pred_without_gt=pairing.pred_only,
        gt_without_pred=pairing.gt_only,
    )
    if protocol == "realblur":
        fallbacks = [r["name"] for r in rows if not r.get("ecc_converged", True)]
        if fallbacks:
            log.warning(
                "ECC alignment failed for %d image(s), scored unaligned: %s",
                len(fallbacks),
                _listing(fallbacks),
            )
        summary["ecc_fallbacks"] = fallbacks
    return rows, summary


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def summary_markdown(summary: dict[str, Any]) -> str:
    """A Markdown table of a :func:`score_folders` summary (PSNR 2 decimals, SSIM 4)."""
    metrics = METRIC_COLUMNS[summary["protocol"]]
    titles = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ssim_per_channel": "SSIM (per-channel)"}
    if summary["protocol"] == "gopro":
        titles["ssim"] = "SSIM (3-D, MATLAB)"
    header = ["protocol", "images", *(titles[m] for m in metrics)]
    values = [
        summary["protocol"],
        str(summary["count"]),
        *(_fmt(summary[m], 2 if m == "psnr" else 4) for m in metrics),
    ]
    lines = [
        f"# Scores: `{summary['pred_dir']}` vs `{summary['gt_dir']}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        "| " + " | ".join(values) + " |",
    ]
    notes = []
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
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return {
        "scores": atomic_write_text(out / "scores.csv", buf.getvalue()),
        "summary": atomic_write_json(out / "summary.json", summary),
        "markdown": atomic_write_text(out / "summary.md", summary_markdown(summary)),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.pred_dir`` against ``cfg.gt_dir`` and write the outputs into ``cfg.paths.output_dir``.

    Returns the summary. Used by :func:`main`; callable with a config from Hydra's compose API.
    """
    pred_dir, gt_dir = str(cfg.pred_dir), str(cfg.gt_dir)  # '???' fails here with Hydra's message
    output_dir = Path(cfg.paths.output_dir).resolve()
    for key, folder in (("pred_dir", pred_dir), ("gt_dir", gt_dir)):
        if Path(folder).expanduser().exists() and Path(folder).expanduser().resolve() == output_dir:
            raise ValueError(f"the output dir must differ from {key} (inputs are never written to): {folder}")
    rows, summary = score_folders(
        pred_dir,
        gt_dir,
        protocol=str(cfg.protocol),
        recursive=_as_bool("recursive", cfg.recursive),
        on_missing=str(cfg.on_missing),
        num_workers=_as_int("num_workers", cfg.num_workers),
    )
    paths = write_outputs(rows, summary, output_dir)
    print(summary_markdown(summary), end="")
    print(f"wrote {', '.join(p.name for p in paths.values())} to {output_dir}")
    return summary


def _as_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return value


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="score")
def main(cfg: DictConfig) -> None:
    """Console entry point ``deblur-score``."""
    run(cfg)


if __name__ == "__main__":
    main()
