"""Other methods' rows in the study tables, from ``deblur-score`` runs on their outputs.

A method is given to a collector as ``--method NAME=FOLDER`` (repeatable; one name may be given several
folders, e.g. one per dataset). FOLDER is a ``deblur-score`` run folder (it holds ``summary.json``) or a
folder of such runs (``FOLDER/<sub>/summary.json``, e.g. ``deblur-eval``'s ``<dataset>/`` folders). Each
summary gives one cell group of the row: its dataset (``summary["dataset"]``, which ``deblur-score`` records
when ``gt_dir`` is a benchmark root, else the name of its folder when that is a dataset's name) and its
protocol with the protocol's settings (:data:`PROTOCOL_KEYS`).

A row is only set beside the table's numbers when it was scored the same way: a summary whose protocol
(or protocol setting) differs from the table's for that dataset, whose dataset the table does not have
or cannot be told, or a second summary for the same method and dataset is refused
(:class:`MethodMismatch`, one message naming the folder and both protocols). A ``blurry_baseline=true``
run is labelled as the blurry-input baseline, never as a method.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deblur.errors import UserError
from deblur.metrics.not_predictions import BASELINE_LABEL

#: the summary keys that say how a number was scored: a row is comparable when all of them agree
PROTOCOL_KEYS = ("protocol", "crop_border", "test_y_channel")
#: the protocol of the ablation tables (Tables 4 / 5): the training run's own validation metrics
VALIDATION = "validation"
#: what each protocol is, for the messages
PROTOCOL_TEXT = {
    VALIDATION: "the training runs' validation metrics (torchmetrics PSNR / SSIM of float outputs on the "
    "validation split)",
    "gopro": "8-bit PSNR peak 255 + MATLAB 3-D SSIM",
    "realblur": "ECC-aligned, masked PSNR / SSIM",
    "basicsr": "BasicSR's calculate_psnr / calculate_ssim",
}


class MethodMismatch(UserError):
    """A method's scores were not made the way the table's were (protocol, its settings, or dataset)."""


@dataclass(frozen=True)
class MethodScore:
    """One ``deblur-score`` summary of a method: its means on one dataset and how they were scored."""

    label: str
    folder: Path
    dataset: str | None
    scoring: tuple[tuple[str, Any], ...]  # (key, value) of PROTOCOL_KEYS present in the summary
    psnr: float
    ssim: float
    count: int
    baseline: str | None
    self_ensemble: bool = False  # a deblur-eval folder run with self_ensemble=true (x8 outputs)

    @property
    def protocol(self) -> str:
        return dict(self.scoring)["protocol"]

    @property
    def row_label(self) -> str:
        """The row's name; a blurry-input run says it is the baseline, an x8 self-ensemble's says so."""
        if self.baseline == BASELINE_LABEL:
            return f"{self.label} (blurry-input baseline)"
        return f"{self.label} + self-ensemble x8" if self.self_ensemble else self.label


def scoring_of(summary: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The :data:`PROTOCOL_KEYS` a summary records (``protocol`` first), as comparable pairs."""
    return tuple((k, summary[k]) for k in PROTOCOL_KEYS if summary.get(k) is not None)


def describe(scoring: tuple[tuple[str, Any], ...]) -> str:
    """``'gopro'`` or ``'basicsr' (crop_border=4, test_y_channel=True)``, with what the protocol is."""
    values = dict(scoring)
    protocol = values.pop("protocol", "(unrecorded)")
    settings = ", ".join(f"{k}={v}" for k, v in values.items())
    text = f"{protocol!r}" + (f" ({settings})" if settings else "")
    return text + (f": {PROTOCOL_TEXT[protocol]}" if protocol in PROTOCOL_TEXT else "")


def parse_method(spec: str) -> tuple[str, Path]:
    """``NAME=FOLDER`` -> ``(NAME, FOLDER)``; a UserError for anything else."""
    name, sep, folder = str(spec).partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise UserError(
            f"--method {spec!r}: expected NAME=FOLDER, e.g. --method MPRNet=logs/score/runs/mprnet_gopro "
            "(FOLDER: a deblur-score run folder, or a folder of them)"
        )
    return name.strip(), Path(folder.strip())


def _dataset_names() -> tuple[str, ...]:
    from deblur.evaluation import DEFAULT_PROTOCOLS

    return tuple(DEFAULT_PROTOCOLS)


def _read(label: str, path: Path) -> MethodScore:
    where = f"--method {label}={path.parent}"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{where}: cannot read {path}: {err}") from None
    missing = [k for k in ("protocol", "psnr", "ssim", "count") if k not in summary]
    if missing:
        raise UserError(
            f"{where}: {path} is not a deblur-score summary (it lacks {', '.join(missing)}); give the folder "
            "deblur-score wrote (logs/score/runs/<time>)"
        )
    dataset = summary.get("dataset")
    if dataset is None and path.parent.name in _dataset_names():
        dataset = path.parent.name
    return MethodScore(
        label=label,
        folder=path.parent,
        dataset=dataset,
        scoring=scoring_of(summary),
        psnr=float(summary["psnr"]),
        ssim=float(summary["ssim"]),
        count=int(summary["count"]),
        baseline=summary.get("baseline"),
        self_ensemble=summary.get("self_ensemble") is True,
    )


def load_method(label: str, folder: str | Path) -> list[MethodScore]:
    """Every ``deblur-score`` summary of method ``label`` in ``folder`` (itself, else its sub-folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"--method {label}={folder}: the folder {what}")
    own = folder / "summary.json"
    paths = [own] if own.is_file() else sorted(folder.glob("*/summary.json"))
    if not paths:
        raise UserError(
            f"--method {label}={folder}: no summary.json in it or its sub-folders; give the folder "
            "deblur-score wrote for the method's outputs (logs/score/runs/<time>)"
        )
    return [_read(label, p) for p in paths]


def load_methods(specs: Iterable[str]) -> list[MethodScore]:
    """The scores of every ``NAME=FOLDER`` spec, in the order given."""
    return [score for spec in specs for score in load_method(*parse_method(spec))]


def check_match(
    scores: Iterable[MethodScore], table: Mapping[str, tuple[tuple[str, Any], ...]], hint: str = ""
) -> None:
    """Refuse any score not made as the table's numbers were: ``table`` maps each dataset of the table to
    its scoring (:func:`scoring_of`; the key ``None`` = every dataset, for a table without dataset columns).
    Raises :class:`MethodMismatch` naming the folder and both protocols, or the datasets."""
    seen: dict[tuple[str, str | None], Path] = {}
    for s in scores:
        if None in table:
            expected = table[None]
        elif s.dataset is None:
            raise MethodMismatch(
                f"--method {s.label}={s.folder}: cannot tell which dataset it was scored on (gt_dir was a "
                "plain folder); score with gt_dir=<the dataset's root>, or put the run in a folder named "
                f"after the dataset ({', '.join(table)})"
            )
        elif s.dataset not in table:
            raise MethodMismatch(
                f"--method {s.label}={s.folder}: scored on dataset {s.dataset!r}, which the table does not "
                f"have (its datasets: {', '.join(table)})"
            )
        else:
            expected = table[s.dataset]
        if s.scoring != expected:
            where = f" on {s.dataset}" if s.dataset and None not in table else ""
            raise MethodMismatch(
                f"--method {s.label}={s.folder}: scored under protocol {describe(s.scoring)}, but the "
                f"table's numbers{where} are protocol {describe(expected)}; a row scored under another "
                f"protocol is not comparable.{' ' + hint if hint else ''}"
            )
        key = (s.row_label, s.dataset)
        if key in seen:
            raise MethodMismatch(
                f"--method {s.label}: two scores for dataset {s.dataset!r} ({seen[key]} and {s.folder}); "
                "give one deblur-score run per dataset"
            )
        seen[key] = s.folder


def method_rows(scores: Iterable[MethodScore]) -> dict[str, dict[str | None, MethodScore]]:
    """``{row label: {dataset: score}}`` in the order the methods were given."""
    rows: dict[str, dict[str | None, MethodScore]] = {}
    for s in scores:
        rows.setdefault(s.row_label, {})[s.dataset] = s
    return rows
