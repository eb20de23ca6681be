"""MSFS-Net Table 3 from deblur-eval: ``python experiments/cross_dataset/collect.py EVAL_DIR [--out F]``.

Reads ``EVAL_DIR/results.json`` (written by ``deblur-eval``) and writes ``EVAL_DIR/results_table3.md`` (or
``--out``): our GoPro-trained network on every evaluated dataset beside the paper's MSFS-Net row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deblur.analysis.tables import cross_dataset_table
from deblur.utils.files import atomic_write_text


def collect(eval_dir: Path, out: Path | None = None) -> Path:
    results = json.loads((Path(eval_dir) / "results.json").read_text())
    table = cross_dataset_table(results)
    target = Path(out) if out else Path(eval_dir) / "results_table3.md"
    atomic_write_text(target, table)
    print(table, end="")
    print(f"wrote {target}")
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path, help="deblur-eval's output folder (holds results.json)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    collect(args.eval_dir, args.out)
