"""The MSFS-Net authors' released weights next to the paper's Tables 2-3:
``python experiments/msfs_published/collect.py [ROOT] [--out F]``.

Reads every ``ROOT/*/results.json`` written by ``deblur-eval`` (one folder per released file x TLC x
RealBlur protocol, as the README's commands name them; default ROOT: ``logs/eval/runs/msfs_published``) and
writes ``ROOT/results.md``: one row per evaluation (weights file, TLC on/off, the protocol each dataset was
scored with) beside the paper's MSFS-Net row.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from deblur.analysis.tables import MSFS_TABLE3
from deblur.evaluation import TITLES
from deblur.metrics.scoring import protocol_text
from deblur.utils.files import atomic_write_text

DATASETS = ("gopro", "hide", "realblur_j", "realblur_r")


def _cell(value: Any, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def row(results: dict[str, Any]) -> list[str]:
    """One table row of a ``results.json``: the file, TLC, then PSNR / SSIM per dataset (with protocol)."""
    tlc = results.get("tlc") or {}
    label = Path(str(results.get("ckpt_path"))).name
    label += " + self-ensemble x8" if results.get("self_ensemble") else ""  # an x8 number, not one run's
    cells = [label, f"on ({tlc.get('base_size')})" if tlc.get("enabled") else "off"]
    for name in DATASETS:
        summary = results.get("datasets", {}).get(name)
        if summary is None:
            cells += ["", ""]
            continue
        mark = " (aligned)" if summary.get("protocol") == "realblur" else ""
        if summary.get("protocol") == "basicsr":  # not the papers' protocol: say which numbers these are
            mark = f" ({protocol_text(summary)})"
        cells += [_cell(summary.get("psnr"), 2) + mark, _cell(summary.get("ssim"), 4)]
    return cells


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown: every evaluation of the released files, then the paper's row."""
    head = ["Weights", "TLC", *(f"{TITLES[d]} {m}" for d in DATASETS for m in ("PSNR", "SSIM"))]
    lines = [
        "# MSFS-Net released weights, evaluated by deblur-eval",
        "",
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(head) - 2),
    ]
    lines += ["| " + " | ".join(row(r)) + " |" for r in runs]
    paper = ["MSFS-Net (paper, Tables 2-3)", "?"]
    for name in DATASETS:
        pub = MSFS_TABLE3.get(name)
        paper += [_cell(pub[0], 2), _cell(pub[1], 3)] if pub else ["-", "-"]
    lines += ["| " + " | ".join(paper) + " |", ""]
    lines.append(
        "GoPro / HIDE: 8-bit outputs rounded to nearest, PSNR peak 255, MATLAB 3-D SSIM. RealBlur: "
        "'(aligned)' = gain + ECC homography alignment and masked metrics (the RealBlur benchmark's "
        "protocol); without the mark, unaligned (the authors' MATLAB script). The paper does not say whether "
        "TLC was used ('?'). A cell marked 'basicsr (...)' is BasicSR's calculate_psnr / calculate_ssim with "
        "those settings (protocol=basicsr), not the papers' protocol."
    )
    lines += ["", "Network precision and device: " + "; ".join(run_device(r) for r in runs) + "."]
    return "\n".join(lines) + "\n"


def run_device(results: dict[str, Any]) -> str:
    """``w.pth: fp32 on <device> (torch 2.x)`` for one ``results.json``."""
    label = Path(str(results.get("ckpt_path"))).name
    precision = (results.get("inference") or {}).get("precision", "fp32")
    device = results.get("device_name", results.get("device"))
    return f"{label}: {precision} on {device} (torch {results.get('torch', '?')})"


def collect(root: Path, out: Path | None = None) -> Path:
    paths = sorted(Path(root).glob("*/results.json"))
    if not paths:
        raise SystemExit(f"no results.json under {root}/*/: run the README's deblur-eval commands first")
    runs = [json.loads(p.read_text()) for p in paths]
    text = table(runs)
    target = Path(out) if out else Path(root) / "results.md"
    atomic_write_text(target, text)
    print(text, end="")
    print(f"wrote {target} ({len(runs)} evaluations)")
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("logs/eval/runs/msfs_published"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    collect(args.root, args.out)
