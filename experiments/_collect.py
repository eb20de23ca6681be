"""Shared command line of the ablation collectors (``experiments/<study>/collect.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from deblur.analysis.methods import VALIDATION, check_match, load_methods
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
    methods: list[str] = (),
) -> Path:
    """Read every job's metrics.json under ``sweep_dirs`` (runs of ``model``, and of a baseline network
    such as ``nafnet``: one row of its own, e.g. "NAFNet (baseline)"), write results.md (default: into the
    first sweep dir) and return its path. ``methods`` (``NAME=FOLDER`` of other methods' deblur-score
    runs) are checked against the table's protocol, the jobs' validation metrics, which a deblur-score run
    never matches: they are refused, pointing to the cross-dataset table."""
    check_match(load_methods(methods), {None: (("protocol", VALIDATION),)}, hint=ABLATION_HINT)
    runs = [r for r in load_runs(sweep_dirs) if (r.get("model") or "") in (model, *BASELINES)]
    if not runs:
        raise SystemExit(f"no metrics.json of a {model} run under {[str(d) for d in sweep_dirs]}")
    table = ablation_table(summarize(runs, components, variant), paper, title, note)
    target = Path(out) if out else Path(sweep_dirs[0]) / "results.md"
    atomic_write_text(target, table)
    print(table, end="")
    print(f"wrote {target} ({len(runs)} runs)")
    return target


#: where a method refused by an ablation table can stand beside the networks
ABLATION_HINT = (
    "To set another method beside these networks, run deblur-eval on their checkpoints and use "
    "experiments/cross_dataset/collect.py EVAL_DIR --method NAME=FOLDER."
)


def add_method_option(parser: argparse.ArgumentParser) -> None:
    """``--method NAME=FOLDER`` (repeatable): another method's deblur-score run (deblur.analysis.methods)."""
    parser.add_argument(
        "--method", action="append", default=[], metavar="NAME=FOLDER",
        help="another method's row from a deblur-score run folder (refused unless scored under the table's "
        "protocol)",
    )  # fmt: skip


def parse(description: str, default_study: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "sweep_dir", nargs="*", type=Path,
        default=[Path("logs/train/multiruns") / default_study],
        help=f"sweep folder(s) searched for metrics.json (default: logs/train/multiruns/{default_study})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="results.md path (default: <sweep_dir>/)")
    add_method_option(parser)
    return parser.parse_args()
