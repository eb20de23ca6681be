"""Shared command line of the ablation collectors (``experiments/<study>/collect.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from deblur.analysis.tables import BASELINES, ablation_table, load_runs, summarize
from deblur.utils.files import atomic_write_text


def collect_ablation(
    sweep_dirs: list[Path],
    model: str,
    components: Callable,
    variant: Callable,
    paper: dict,
    title: str,
    out: Path | None = None,
    note: str = "",
) -> Path:
    """Read every job's metrics.json under ``sweep_dirs`` (runs of ``model``, and of a baseline network
    such as ``nafnet``: one row of its own, e.g. "NAFNet (baseline)"), write results.md (default: into the
    first sweep dir) and return its path."""
    runs = [r for r in load_runs(sweep_dirs) if (r.get("model") or "") in (model, *BASELINES)]
    if not runs:
        raise SystemExit(f"no metrics.json of a {model} run under {[str(d) for d in sweep_dirs]}")
    table = ablation_table(summarize(runs, components, variant), paper, title, note)
    target = Path(out) if out else Path(sweep_dirs[0]) / "results.md"
    atomic_write_text(target, table)
    print(table, end="")
    print(f"wrote {target} ({len(runs)} runs)")
    return target


def parse(description: str, default_study: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "sweep_dir", nargs="*", type=Path,
        default=[Path("logs/train/multiruns") / default_study],
        help=f"sweep folder(s) searched for metrics.json (default: logs/train/multiruns/{default_study})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="results.md path (default: <sweep_dir>/)")
    return parser.parse_args()
