"""MSFS-Net Table 4 from a sweep: ``python experiments/msfs_ablation/collect.py [SWEEP_DIR] [--out F]``.

Rows = variants (named from each job's resolved config), columns FSM / CSFFM / CLM / Consistency
(model.use_fsm, model.use_csffm, loss.lambda_high > 0, loss.lambda_low > 0), PSNR, SSIM, parameters,
size in MB, and the paper's numbers. Writes ``<SWEEP_DIR>/results.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _collect import collect_ablation, parse  # noqa: E402

from deblur.analysis.tables import MSFS_TABLE4, msfs_components, msfs_variant  # noqa: E402

TITLE = "MSFS-Net ablations (Table 4 form)"


def collect(sweep_dirs: list[Path], out: Path | None = None) -> Path:
    return collect_ablation(sweep_dirs, "msfs", msfs_components, msfs_variant, MSFS_TABLE4, TITLE, out)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "msfs_ablation")
    collect(args.sweep_dir, args.out)
