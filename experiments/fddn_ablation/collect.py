"""FDDN Table 5 from a sweep: ``python experiments/fddn_ablation/collect.py [SWEEP_DIR] [--out F]
[--method NAME=FOLDER]``.

Rows = variants (``model.variant`` of each job's resolved config), columns Distillation Block / Frequency
Split Block / Frequency Distillation Block, PSNR, SSIM, parameters, size in MB, and the paper's numbers
(with its model sizes). Writes ``<SWEEP_DIR>/results.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _collect import collect_ablation, parse  # noqa: E402

from deblur.analysis.tables import FDDN_TABLE5, fddn_components, fddn_variant  # noqa: E402
from deblur.cli.common import user_errors  # noqa: E402

TITLE = "FDDN ablations (Table 5 form)"
NOTE = (
    "Sizes: the ablation blocks at the full model's widths do not reproduce the paper's MB column "
    "(see README, design notes); the paper's sizes are shown for comparison."
)


def collect(sweep_dirs: list[Path], out: Path | None = None, methods: list[str] = ()) -> Path:
    return collect_ablation(
        sweep_dirs, "fddn", fddn_components, fddn_variant, FDDN_TABLE5, TITLE, out, NOTE, methods
    )


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "fddn_ablation")
    user_errors("experiments/fddn_ablation/collect.py")(collect)(args.sweep_dir, args.out, args.method)
