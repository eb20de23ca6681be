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
# # Frequency analysis: MSFS-Net Fig. 1, 2 and 7
#
# MSFS-Net (Section 3.1) motivates separating frequencies with an observation: split an image into a
# low-frequency part (Gaussian low-pass) and a high-frequency part (the residual) at scales 1, 1/2 and
# 1/4, take the Shannon entropy of every part of every image, and compare the *distributions* of those
# entropies over a dataset. Between sharp and blurry images the high-frequency distributions differ
# much more (larger Jensen-Shannon divergence) than the low-frequency ones, and the gap shrinks at
# smaller scales (Fig. 2). A good deblurring network closes the gap (Fig. 7, sharp vs deblurred).
#
# This notebook runs the analysis behind `deblur-analyze` (`deblur.analyze`) with the same config
# (`conf/analyze.yaml`, composed by `deblur.compose`) and shows its outputs. Every choice (low-pass sigma,
# down-sampling, binning of the signed high part, luminance, how entropy sets become distributions) is
# documented in `deblur.analysis.frequency` and set with `analysis.*` overrides.
#
# **Parameters** (environment variables, or edit the next cell; papermill can inject them too):
#
# * `DEBLUR_NB_OVERRIDES`: Hydra overrides of `conf/analyze.yaml`, e.g.
#   `data=gopro data.root=/data/GOPRO_Large device=cuda analysis.batch_size=16` for the paper's setting.
#   Default: the built-in dataset's training split (the paper measures Fig. 2 on training samples).
# * `DEBLUR_NB_CKPT`: the checkpoint to analyse (any file `deblur.load_model` reads: a `deblur-train`
#   checkpoint such as the `checkpoints/last.ckpt` that `make train` prints at its end, or the MSFS-Net
#   authors' `model.pkl`); adds the deblurred images and Fig. 7. Default: none (sharp vs blurry only).
#   It is never guessed from what happens to lie under `logs/`.
# * `DEBLUR_NB_OUTPUT_DIR`: where analysis.json and the figures go (default: a new temporary folder).

# %% tags=["parameters"]
# ruff: noqa: E402
import os
import shlex

OVERRIDES = shlex.split(os.environ.get("DEBLUR_NB_OVERRIDES", ""))
CKPT_PATH = os.environ.get("DEBLUR_NB_CKPT") or None
OUTPUT_DIR = os.environ.get("DEBLUR_NB_OUTPUT_DIR") or None

# %%
import tempfile
from pathlib import Path

from IPython.display import Image, Markdown, display

import deblur
# %matplotlib inline

if CKPT_PATH and not Path(CKPT_PATH).expanduser().is_file():
    raise FileNotFoundError(f"DEBLUR_NB_CKPT={CKPT_PATH} is not a file")
print("checkpoint:", CKPT_PATH or "none (set DEBLUR_NB_CKPT to add the deblurred images and Fig. 7)")

output_dir = Path(OUTPUT_DIR or tempfile.mkdtemp(prefix="deblur-frequency-"))
overrides = [f"paths.output_dir={output_dir}", *OVERRIDES]
if CKPT_PATH:
    overrides.append(f"ckpt_path={CKPT_PATH}")
cfg = deblur.compose("analyze", overrides)
print("overrides:", overrides)

# %% [markdown]
# ## Run the analysis
# Entropies of every sharp, blurry (and deblurred) image, the JS divergences, `analysis.json` and the
# figures, all in `output_dir`. `settings=cfg` passes the inference keys (`device`, speed options, ...).

# %%
payload = deblur.analyze(
    cfg.data,
    cfg.split,
    ckpt_path=cfg.ckpt_path,
    analysis=cfg.analysis,
    settings=cfg,
    output_dir=output_dir,
)
scales, bands = payload["scales"], payload["bands"]

# %% [markdown]
# ## Fig. 1: one patch's low and high parts at three scales
# Each panel's title is the entropy of that part. The high part of the sharp patch holds clear edges
# and texture; the blurry one's is fainter, while the low parts look alike.

# %%
display(Image(filename=str(output_dir / "fig1_patch_bands.png")))

# %% [markdown]
# ## Fig. 2: entropy distributions, sharp vs blurry
# Rows: scales 1, 1/2, 1/4; column (a) the high-frequency part, (b) the low-frequency part; the JS
# divergence (base 2, in [0, 1]) in each panel.

# %%
display(Image(filename=str(output_dir / "fig2_sharp_vs_blurry.png")))

# %% [markdown]
# ## Fig. 7: sharp vs deblurred (only with a checkpoint)

# %%
fig7 = output_dir / "fig7_sharp_vs_deblurred.png"
if fig7.exists():
    display(Image(filename=str(fig7)))
else:
    print("No checkpoint (run `make train` or set DEBLUR_NB_CKPT): Fig. 7 needs deblurred images.")

# %% [markdown]
# ## The divergences, and the paper's two observations checked on this data

# %%
js = payload["js_divergence"]
header = "| comparison | band | " + " | ".join(f"scale {s}" for s in scales) + " |"
rule = "|---|---|" + "---:|" * len(scales)
rows = [
    f"| {name} | {band} | " + " | ".join(f"{table[band][s]:.4f}" for s in scales) + " |"
    for name, table in js.items()
    for band in bands
]
display(Markdown("\n".join([header, rule, *rows])))

gap = js["sharp_vs_blurry"]
high_larger = {s: gap["high"][s] > gap["low"][s] for s in scales}
shrinks = all(gap["high"][a] >= gap["high"][b] for a, b in zip(scales, scales[1:], strict=False))
print("high-band JS > low-band JS (sharp vs blurry), per scale:", high_larger)
print("high-band JS shrinks from scale 1 to the smallest scale:", shrinks)
if "sharp_vs_deblurred" in js:
    after = js["sharp_vs_deblurred"]
    closed = {s: after["high"][s] < gap["high"][s] for s in scales}
    print("the network narrows the high-band gap, per scale:", closed)
    # Fig. 7 (b): deblurring must not push the low-frequency parts apart. The low band's divergence after
    # deblurring should stay at or below the blurry input's; if it widens, the network changes the coarse
    # content (colour, brightness, large structures) it should leave alone.
    widened = {s: after["low"][s] > gap["low"][s] for s in scales}
    print("low-band JS, blurry -> deblurred, per scale:",
          {s: f"{gap['low'][s]:.4f} -> {after['low'][s]:.4f}" for s in scales})
    if any(widened.values()):
        print("the low-band gap WIDENS at scale(s)", [s for s, w in widened.items() if w],
              "-- the network alters low-frequency content; the consistency loss (Eq. 6) targets this")
    else:
        print("the low-band gap does not widen at any scale (as Fig. 7 (b) shows)")

# %% [markdown]
# ## Mean entropy per part and scale
# Blur lowers the entropy of the high part (less detail); the low part barely moves.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(bands), figsize=(9, 3.2))
for ax, band in zip(axes, bands, strict=True):
    for kind, table in payload["entropy_mean"].items():
        ax.plot(scales, [table[band][s] for s in scales], marker="o", label=kind)
    ax.set_title(f"{band}-frequency part")
    ax.set_xlabel("scale")
    ax.set_ylabel("mean entropy (bits)")
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()
timing = payload["timing"]
print(f"{payload['num_pairs']} pairs, {timing['images_per_s']:.1f} images/s on {payload['device']}")
print("outputs:", output_dir)
