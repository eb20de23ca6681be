"""What :func:`deblur.metrics.scoring.score_folders` refuses to score as predictions.

A number scored from a folder that holds no predictions looks like any other result, so these are refused
(:class:`NotPredictions`, a user error):

* ``pred_dir`` and ``gt_dir`` are one folder (also through symlinks or relative paths);
* every prediction is byte-identical to its ground truth (a copy of the ground truth);
* the predictions are a dataset's blurry frames: ``pred_dir`` is a folder of blurry frames by name
  (``blur/``, ``blur_gamma/``, ``input/``, ``blurry/``, ``blurred/``), or the root / a split folder of the
  GoPro, HIDE or RealBlur dataset that ``gt_dir`` belongs to, or (with a benchmark ``gt_dir``) every
  prediction is the file of its pair's blurry input or byte-identical to it.

Scoring the blurry frames on purpose (the "blurry input" row of a table) takes ``blurry_baseline=True``:
the blurry-frame checks are then skipped and every output of the run is labelled
:data:`BASELINE_LABEL`. The first two refusals hold then too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from deblur.data.blurry import BLURRY_FOLDERS, all_identical
from deblur.errors import UserError
from deblur.metrics.benchmarks import detect_benchmark

#: ``summary["baseline"]`` and the ``baseline`` column of ``scores.csv`` of a ``blurry_baseline`` run
BASELINE_LABEL = "blurry_input"
#: the key that scores blurry frames on purpose (conf/score.yaml and the API argument)
BASELINE_KEY = "blurry_baseline"
#: folders of a benchmark root that hold blurry frames (or their split)
_SPLIT_FOLDERS = frozenset({"train", "test"})
#: how many parent folders are searched for the dataset a folder lies in
_MAX_DEPTH = 4


class NotPredictions(UserError):
    """The folder given as predictions holds the ground truth or a dataset's blurry frames."""


def _realblur_folders() -> set[str]:
    from deblur.data.on_disk import REALBLUR

    return {folder for folder, _ in REALBLUR.values()}


def dataset_of(folder: Path) -> tuple[Path, str] | None:
    """``(dataset root, folder's path relative to it)`` when ``folder`` lies in a GoPro / HIDE / RealBlur
    dataset (itself or up to :data:`_MAX_DEPTH` parents); None otherwise."""
    for candidate in [folder, *folder.parents][: _MAX_DEPTH + 1]:
        try:
            found = detect_benchmark(candidate)
        except UserError:  # a RealBlur root with both lists: a dataset all the same
            found = ("realblur", candidate)
        if found is not None:
            root = found[1].resolve()
            return root, folder.relative_to(root).as_posix() if folder.is_relative_to(root) else ""
    return None


def _in_blurry_part(relative: str) -> bool:
    first = relative.split("/")[0] if relative not in ("", ".") else ""
    return first == "" or first in _SPLIT_FOLDERS or first in _realblur_folders()


def _refuse_blurry(reason: str) -> NotPredictions:
    return NotPredictions(
        f"{reason}; its score would be the blurry input's, not a result. Give the folder of predictions as "
        f"pred_dir, or, to score the blurry frames on purpose (a table's baseline row), set "
        f"{BASELINE_KEY}=true: every output is then labelled as the blurry-input baseline."
    )


def check_folders(pred_root: Path, gt_root: Path, blurry_baseline: bool = False) -> None:
    """Before pairing: refuse one folder given twice and (without ``blurry_baseline``) a ``pred_dir`` that
    is a folder of blurry frames by name or the dataset (or split) ``gt_dir`` belongs to."""
    if pred_root.resolve() == gt_root.resolve():
        raise NotPredictions(
            f"pred_dir and gt_dir are the same folder ({pred_root.resolve()}): the ground truth scored "
            "against itself is not a result. Give the folder of predictions as pred_dir."
        )
    if blurry_baseline:
        return
    if pred_root.name.lower() in BLURRY_FOLDERS:
        raise _refuse_blurry(f"pred_dir={pred_root} is a folder of blurry frames ({pred_root.name}/)")
    pred_dataset = dataset_of(pred_root)
    if pred_dataset is not None and _in_blurry_part(pred_dataset[1]):
        gt_dataset = dataset_of(gt_root)
        if gt_dataset is not None and gt_dataset[0] == pred_dataset[0]:
            raise _refuse_blurry(
                f"pred_dir={pred_root} is the dataset {pred_dataset[0]} (or one of its split folders) that "
                f"gt_dir={gt_root} belongs to: it holds the dataset's blurry frames"
            )


def check_pairs(
    pred_root: Path,
    gt_root: Path,
    pairs: list[tuple[str, Path, Path]],
    inputs: Mapping[Path, Path] | None = None,
    blurry_baseline: bool = False,
) -> None:
    """After pairing (``(name, prediction, ground truth)``): refuse predictions that are all copies of
    their ground truth and (without ``blurry_baseline``) ones that all are their pair's blurry input
    (``inputs``: ``{prediction: blurry file}``, known when ``gt_dir`` is a benchmark dataset)."""
    if all_identical((pred, gt) for _, pred, gt in pairs):
        raise NotPredictions(
            f"every one of the {len(pairs)} prediction(s) in pred_dir={pred_root} is byte-identical to its "
            f"ground truth in gt_dir={gt_root}: a copy of the ground truth is not a result"
        )
    if not blurry_baseline and inputs and all_identical(inputs.items()):
        raise _refuse_blurry(
            f"every file of pred_dir={pred_root} is the blurry input of its pair in gt_dir={gt_root} "
            "(the same file or byte-identical)"
        )


def check_scores(rows: list[Mapping], pred_root: Path, gt_root: Path) -> None:
    """After scoring: refuse predictions whose pixels all equal their ground truth (infinite PSNR for every
    pair), e.g. the ground truth re-saved with another PNG compression: a copy is not a result."""
    if rows and all(math.isinf(float(row.get("psnr", 0.0))) for row in rows):
        raise NotPredictions(
            f"every one of the {len(rows)} prediction(s) in pred_dir={pred_root} has the same pixels as its "
            f"ground truth in gt_dir={gt_root} (infinite PSNR): a copy of the ground truth is not a result"
        )
