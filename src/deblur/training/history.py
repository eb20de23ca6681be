"""The CSV history of a resumed run: ``csv/metrics.csv`` keeps the rows logged before the checkpoint."""

from __future__ import annotations

import csv
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L

from deblur.utils.files import atomic_write

log = logging.getLogger(__name__)


def _csv_step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


def keep_csv_history(trainer: L.Trainer, resume_step: int) -> None:
    """Keep the rows a CSV logger wrote before ``resume_step`` when a run resumes in its own folder.

    Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts writing ("Previous log files in this
    directory will be deleted"). The rows logged up to the checkpoint (steps below ``resume_step``, and the
    final validation at it) are written back, and new rows are appended to them. Rows of steps after the
    checkpoint, which the resumed run trains again, are moved to ``superseded_after_step_<N>.csv``.
    """
    from lightning.pytorch.loggers import CSVLogger

    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        keep = [
            r for r in rows
            if _csv_step(r) < resume_step or (_csv_step(r) == resume_step and r.get("val/psnr"))
        ]  # fmt: skip
        later = [r for r in rows if r not in keep]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Previous log files.*")
            writer = logger.experiment  # deletes metrics.csv

        def write(rows_: list[dict[str, str]], header_: list[str] = header) -> Any:
            def _write(tmp: str) -> None:
                with open(tmp, "w", newline="") as f:
                    out = csv.DictWriter(f, fieldnames=header_, restval="")
                    out.writeheader()
                    out.writerows(rows_)

            return _write

        if later:
            aside = path.with_name(f"superseded_after_step_{resume_step}.csv")
            atomic_write(aside, write(later))
            log.info("%d row(s) of %s logged after step %d (trained again now) moved to %s",
                     len(later), path, resume_step, aside)  # fmt: skip
        if keep:
            atomic_write(path, write(keep))
            writer.metrics_keys = sorted(header)
            log.info("%s: %d row(s) from before the resume kept; new rows are appended", path, len(keep))
