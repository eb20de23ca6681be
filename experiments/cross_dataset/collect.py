"""MSFS-Net Table 3 from deblur-eval: ``python experiments/cross_dataset/collect.py EVAL_DIR [EVAL_DIR ...]
[--method NAME=FOLDER ...] [--out F]``.

Reads each ``EVAL_DIR/results.json`` (written by ``deblur-eval``) and writes ``results_table3.md`` into the
first (or ``--out``): one row per evaluated GoPro-trained network (a NAFNet checkpoint's row is labelled
"NAFNet (baseline)") on every evaluated dataset, one per other method (``--method NAME=FOLDER``, repeatable:
a ``deblur-score`` run on that method's outputs, or a folder of them, one per dataset; refused when scored
under another protocol than the table's, see :mod:`deblur.analysis.methods`), the blurry input (from an
evaluation run with ``blurry_baseline=true``), beside the paper's MSFS-Net row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deblur.analysis.methods import load_methods
from deblur.analysis.tables import cross_dataset_table
from deblur.cli.common import user_errors
from deblur.utils.files import atomic_write_text


def collect(eval_dir: Path | list[Path], out: Path | None = None, methods: list[str] = ()) -> Path:
    """Write the table (``methods``: ``NAME=FOLDER`` specs of other methods' deblur-score runs)."""
    dirs = [Path(eval_dir)] if isinstance(eval_dir, (str, Path)) else [Path(d) for d in eval_dir]
    scores = load_methods(methods)
    table = cross_dataset_table([json.loads((d / "results.json").read_text()) for d in dirs], methods=scores)
    target = Path(out) if out else dirs[0] / "results_table3.md"
    atomic_write_text(target, table)
    print(table, end="")
    print(f"wrote {target}")
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "eval_dir", type=Path, nargs="+", help="deblur-eval's output folder(s) (each holds results.json)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--method", action="append", default=[], metavar="NAME=FOLDER",
        help="another method's row: NAME=a deblur-score run folder on its outputs (or a folder of them, one "
        "per dataset); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    user_errors("experiments/cross_dataset/collect.py")(collect)(args.eval_dir, args.out, args.method)
