# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablation results: MSFS-Net Table 4 and FDDN Table 5
#
# Reads the `metrics.json` that `deblur-train` writes into every run folder of a sweep, e.g.
#
#     deblur-train -m ablation=msfs/full,msfs/no_fsm,msfs/no_skip,msfs/no_clm,msfs/no_consistency
#     deblur-train -m ablation=fddn/full,fddn/no_distillation,fddn/no_fsb,fddn/no_fdb
#
# and builds tables in the papers' layout: a ✓/✗ column per component, then PSNR and SSIM (and the
# model size for FDDN), plus the change against the full model and the blurry-input baseline. Runs of
# the same model and ablation (several seeds) are averaged (± the standard deviation). Components are
# read from each run's resolved config, not from its name.
#
# **Parameters** (environment variables, or edit the next cell; papermill can inject them too):
#
# * `DEBLUR_NB_SWEEP_DIR`: a folder searched recursively for `metrics.json`; several folders may be
#   given, separated by `:`. Default: the newest `logs/train/multiruns/<time>` under `$PROJECT_ROOT`
#   (else the repository), where `conf/hydra/default.yaml` puts sweeps.
# * `DEBLUR_NB_OUTPUT_DIR`: if set, the tables (`table4_msfs.md`, `table5_fddn.md`, `ablation_runs.csv`)
#   and the bar plots (`ablation_bars.png`) are written there.

# %% tags=["parameters"]
# ruff: noqa: E402
import os

SWEEP_DIR = os.environ.get("DEBLUR_NB_SWEEP_DIR") or None
OUTPUT_DIR = os.environ.get("DEBLUR_NB_OUTPUT_DIR") or None

# %%
import csv
import math
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from deblur.analysis.tables import fddn_components, load_runs, msfs_components, summarize
from deblur.paths import REPO_ROOT


def default_sweep_dir() -> Path | None:
    multiruns = Path(os.environ.get("PROJECT_ROOT") or REPO_ROOT) / "logs" / "train" / "multiruns"
    sweeps = sorted(p for p in multiruns.glob("*") if p.is_dir()) if multiruns.is_dir() else []
    return sweeps[-1] if sweeps else None


folders = [Path(p) for p in SWEEP_DIR.split(":")] if SWEEP_DIR else [d for d in [default_sweep_dir()] if d]
runs = load_runs(folders)  # every readable metrics.json below the folders (unreadable ones reported)
print(f"{len(runs)} runs from {[str(f) for f in folders]}")
if not runs:
    print("No metrics.json found: set DEBLUR_NB_SWEEP_DIR to a sweep folder of deblur-train.")

# %% [markdown]
# ## Components of each run, from its resolved config

# %%
YES, NO = "✓", "✗"


# The component columns are read from each job's resolved config by the same functions the
# experiments/ collectors use.


TABLES = {
    "msfs": ("Table 4: ablations of MSFS-Net", msfs_components, "table4_msfs.md"),
    "fddn": ("Table 5: ablations of FDDN", fddn_components, "table5_fddn.md"),
}


def finite(values):
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def mean_std(values):
    values = finite(values)
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def model_of(run):
    return str(run.get("model") or run.get("config", {}).get("model", {}).get("name"))


# One row per (model, ablation), seeds averaged (mean ± std), the full model last: the collectors' summary.
summary = []
for model in sorted({model_of(run) for run in runs}):
    _, components_of, _ = TABLES.get(model, (None, lambda config: {}, None))
    summary += summarize([run for run in runs if model_of(run) == model], components_of)
for row in summary:
    print(f"{row['model']:>6} {row['ablation']:<24} runs={row['runs']} PSNR={row['val/psnr']:.3f}")

# %% [markdown]
# ## Tables in the papers' layout

# %%
def fmt(value, std, digits):
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std and math.isfinite(std) and std > 0 else "")


def mark(flag):
    return "?" if flag is None else (YES if flag else NO)


def build_table(model: str, rows: list[dict]) -> str:
    components = list(rows[0]["components"])
    full = next((r for r in rows if r["ablation"].endswith("/full")), None)
    size_column = model == "fddn"
    head = ["ablation", *components, "PSNR (dB)", "SSIM", *(["Model Size (MB)"] if size_column else []),
            "ΔPSNR vs full", "runs"]
    rule = "|" + "---|" * (1 + len(components)) + "---:|" * (len(head) - 1 - len(components))
    lines = ["| " + " | ".join(head) + " |", rule]
    for r in rows:
        delta = r["val/psnr"] - full["val/psnr"] if full else math.nan
        cells = [r["ablation"], *(mark(r["components"].get(c)) for c in components),
                 fmt(r["val/psnr"], r["val/psnr_std"], 2), fmt(r["val/ssim"], r["val/ssim_std"], 4),
                 *([fmt(r["size_mb"], 0, 2)] if size_column else []),
                 f"{delta:+.2f}" if math.isfinite(delta) else "n/a", str(r["runs"])]
        lines.append("| " + " | ".join(cells) + " |")
    baseline = mean_std(r["val/psnr_input"] for r in rows)[0], mean_std(r["val/ssim_input"] for r in rows)[0]
    lines.append("")
    lines.append(
        f"Blurry input (identity baseline): PSNR {fmt(baseline[0], 0, 2)} dB, SSIM {fmt(baseline[1], 0, 4)}."
    )
    return "\n".join(lines)


tables: dict[str, str] = {}
for model in sorted({r["model"] for r in summary}):
    rows = [r for r in summary if r["model"] == model]
    title = TABLES[model][0] if model in TABLES else f"Runs of {model}"
    if not rows[0]["components"]:
        rows = [{**r, "components": {}} for r in rows]
    tables[model] = f"### {title}\n\n" + build_table(model, rows)
    display(Markdown(tables[model]))

# %% [markdown]
# ## Bar plots: PSNR and SSIM per ablation (error bars: std over runs; dashed: blurry input)

# %%
models = sorted({r["model"] for r in summary})
fig = None
if models:
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.4 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        rows = [r for r in summary if r["model"] == model]
        labels = [r["ablation"].split("/")[-1] for r in rows]
        for j, (metric, unit) in enumerate((("val/psnr", "PSNR (dB)"), ("val/ssim", "SSIM"))):
            ax = axes[i][j]
            values = [r[metric] for r in rows]
            colors = ["tab:green" if r["ablation"].endswith("/full") else "tab:blue" for r in rows]
            ax.bar(labels, values, yerr=[r[metric + "_std"] for r in rows], color=colors, capsize=3)
            baseline = mean_std(r[metric + "_input"] for r in rows)[0]
            if math.isfinite(baseline):
                ax.axhline(baseline, color="gray", linestyle="--", label="blurry input")
                ax.legend(loc="lower right")
            shown = finite(values + [baseline])
            if shown:
                spread = max(shown) - min(shown)
                ax.set_ylim(min(shown) - 0.5 * spread - 1e-3, max(shown) + 0.3 * spread + 1e-3)
            ax.set_title(f"{model}: {unit}")
            ax.tick_params(axis="x", rotation=20)
            ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## Save (only when DEBLUR_NB_OUTPUT_DIR is set)

# %%
if OUTPUT_DIR:
    out = Path(OUTPUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    for model, text in tables.items():
        name = TABLES[model][2] if model in TABLES else f"table_{model}.md"
        (out / name).write_text(text + "\n", encoding="utf-8")
    with open(out / "ablation_runs.csv", "w", newline="", encoding="utf-8") as handle:
        fields = ["model", "ablation", "runs", "val/psnr", "val/psnr_std", "val/ssim", "val/ssim_std",
                  "val/psnr_input", "val/ssim_input", "size_mb", "parameters", "components"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in summary:
            marks = " ".join(f"{k}={mark(v)}" for k, v in row["components"].items())
            writer.writerow({**row, "components": marks})
    if fig is not None:
        fig.savefig(out / "ablation_bars.png", dpi=110, bbox_inches="tight")
    print("wrote", sorted(p.name for p in out.iterdir()))
