"""MSFS-Net Table 4 from a sweep: ``python experiments/msfs_ablation/collect.py [SWEEP_DIR] [--out F]
[--csffm-reading skip|concat] [--method NAME=FOLDER]``.

Rows = variants (named from each job's resolved config), columns FSM / CSFFM / CLM / Consistency
(model.use_fsm, model.use_csffm and model.use_skip, loss.lambda_high > 0, loss.lambda_low > 0), PSNR, SSIM,
parameters, size in MB, and the paper's numbers. Writes ``<SWEEP_DIR>/results.md``.

"w/o CSFFM" has two readings (docs/models.md, "Two readings of w/o CSFFM"): ``msfs/no_skip`` (no
encoder-to-decoder skip at all, ``model.use_skip=false``) and ``msfs/no_csffm`` (a plain skip concatenation
of the same two features, ``model.use_csffm=false``). The paper's "w/o CSFFM" numbers stand beside
``msfs/no_skip`` by default (``--csffm-reading skip``), beside ``msfs/no_csffm`` with ``--csffm-reading
concat``; a sweep may hold both rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _collect import add_method_option, collect_ablation  # noqa: E402

from deblur.analysis.tables import MSFS_TABLE4, msfs_components, msfs_variant  # noqa: E402
from deblur.cli.common import user_errors  # noqa: E402

TITLE = "MSFS-Net ablations (Table 4 form)"
#: which ablation the paper's "w/o CSFFM" row is compared with
READINGS = {"skip": "msfs/no_skip", "concat": "msfs/no_csffm"}
NOTES = {
    "skip": (
        'The paper\'s "w/o CSFFM" numbers stand beside `msfs/no_skip` (no encoder-to-decoder skip): the '
        'paper removes CSFFM "to ignore the fusion of information from different scales and layers", and '
        "`msfs/no_csffm` (a plain skip of the same two features) differs from the full model by one "
        "learnable scalar per scale, too little for the paper's 2.5 dB drop. `--csffm-reading concat` "
        "compares `msfs/no_csffm` instead."
    ),
    "concat": (
        'The paper\'s "w/o CSFFM" numbers stand beside `msfs/no_csffm` (a plain same-scale skip '
        "concatenation, `--csffm-reading concat`); the default compares `msfs/no_skip` (no skip at all)."
    ),
}


def paper_numbers(reading: str = "skip") -> dict[str, tuple[float, float]]:
    """Table 4's numbers keyed by our row names, the "w/o CSFFM" row under the chosen reading's name."""
    if reading not in READINGS:
        raise ValueError(f"--csffm-reading must be one of {sorted(READINGS)}, got {reading!r}")
    paper = {k: v for k, v in MSFS_TABLE4.items() if k != "msfs/no_csffm"}
    paper[READINGS[reading]] = MSFS_TABLE4["msfs/no_csffm"]
    return paper


def collect(
    sweep_dirs: list[Path], out: Path | None = None, csffm_reading: str = "skip", methods: list[str] = ()
) -> Path:
    paper = paper_numbers(csffm_reading)
    return collect_ablation(
        sweep_dirs, "msfs", msfs_components, msfs_variant, paper, TITLE, out, NOTES[csffm_reading], methods
    )


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dir", nargs="*", type=Path, default=[Path("logs/train/multiruns/msfs_ablation")],
        help="sweep folder(s) searched for metrics.json (default: logs/train/multiruns/msfs_ablation)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="results.md path (default: <sweep_dir>/)")
    parser.add_argument(
        "--csffm-reading", choices=sorted(READINGS), default="skip",
        help="the run the paper's 'w/o CSFFM' row stands beside: skip = msfs/no_skip (default), "
        "concat = msfs/no_csffm",
    )  # fmt: skip
    add_method_option(parser)
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    run = user_errors("experiments/msfs_ablation/collect.py")(collect)
    run(args.sweep_dir, args.out, args.csffm_reading, args.method)
