"""Figures in the layout of MSFS-Net Fig. 1, 2 and 7 (matplotlib, written atomically as PNG).

Figures are plain ``matplotlib.figure.Figure`` objects rendered by Agg: no pyplot, no global backend
switch and no figure registry to leak, so this works in scripts, workers and notebooks alike.

* :func:`plot_patch_bands` (Fig. 1): one patch's low and high parts at every scale; a row per (image kind,
  band), a column per scale, each panel titled with the part's entropy.
* :func:`plot_entropy_distributions` (Fig. 2: sharp vs blurry; Fig. 7: sharp vs deblurred): the entropy
  distributions of two sets of images; a row per scale (1, 1/2, 1/4), column (a) the high-frequency
  part, column (b) the low-frequency part, the Jensen-Shannon divergence written in each panel. The
  curves are exactly the distributions the divergence is computed from (see
  :func:`deblur.analysis.frequency.entropy_distributions`), as densities per bit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from deblur.analysis.frequency import (
    BANDS,
    EntropyDistributions,
    FrequencyConfig,
    band_entropies,
    band_split,
    image_pyramid,
)
from deblur.utils.files import atomic_write

#: Subscripts of the paper's legends (HF_sharp, LF_blur, ...).
_SUBSCRIPTS = {"sharp": "sharp", "blurry": "blur", "deblurred": "Deblurred"}
_BAND_LETTER = {"high": "HF", "low": "LF"}
_COLORS = ("tab:blue", "tab:orange")


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (a temporary file renamed over it)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def band_label(band: str, kind: str) -> str:
    """``("high", "blurry") -> "HF$_{blur}$"`` as in the paper's legends."""
    return f"{_BAND_LETTER.get(band, band)}$_{{{_SUBSCRIPTS.get(kind, kind)}}}$"


def plot_entropy_distributions(
    comparison: Mapping[str, Mapping[str, EntropyDistributions]],
    kinds: Sequence[str] = ("sharp", "blurry"),
    title: str | None = None,
    warning: str | None = None,
) -> Figure:
    """Fig. 2 / Fig. 7 layout from ``{band: {scale: EntropyDistributions}}`` (see ``compare_entropies``).

    ``kinds`` names the first and second set (``p`` and ``q``) for the legends. ``warning`` (e.g. too few
    distinct images) is written in red under the panels.
    """
    bands = [band for band in BANDS if band in comparison]
    scales = list(next(iter(comparison.values())))
    size = (4.6 * len(bands), 2.4 * len(scales))
    fig = Figure(figsize=size)
    axes = fig.subplots(len(scales), len(bands), squeeze=False)
    for col, band in enumerate(bands):
        for row, scale in enumerate(scales):
            ax = axes[row][col]
            dist = comparison[band][scale]
            x = dist.centers.numpy()
            for density, kind, color in zip(dist.densities(), kinds, _COLORS, strict=True):
                y = density.numpy()
                ax.plot(x, y, color=color, label=band_label(band, kind))
                ax.fill_between(x, y, color=color, alpha=0.25, linewidth=0)
            ax.text(0.02, 0.95, f"JS = {dist.js:.4f}", transform=ax.transAxes, va="top", ha="left",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
            ax.set_ylim(bottom=0)
            ax.set_ylabel(f"scale {scale}\ndensity")
            ax.legend(loc="upper right", fontsize="small")
            ax.grid(alpha=0.3)
            if row == len(scales) - 1:
                ax.set_xlabel("entropy (bits)")
        letter = "ab"[col] if col < 2 else str(col)
        axes[0][col].set_title(f"({letter}) {'high' if band == 'high' else 'low'}-frequency part")
    if title:
        fig.suptitle(title)
    if warning:
        fig.text(0.5, 0.01, f"WARNING: {warning}", ha="center", va="bottom", color="tab:red",
                 fontsize="small", wrap=True)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout()
    return fig


def _show(ax: Axes, image: torch.Tensor) -> None:
    array = image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        ax.imshow(array[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(array, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_patch_bands(
    patches: Mapping[str, torch.Tensor],
    config: FrequencyConfig | None = None,
    title: str | None = None,
) -> Figure:
    """Fig. 1 layout: ``{kind: (3, H, W) patch in [0, 1]}`` -> the low and high parts at every scale.

    A row per (kind, band), a column per scale; parts are shown in colour (split per RGB channel) at
    their own resolution; each panel's title is the entropy the analysis uses (luminance by default).
    The signed high part is shown as ``0.5 + gain * high`` with one ``gain`` per scale, shared by every
    kind (the 99th percentile of |high| of the first kind's patch at that scale maps to the range's
    edge), so kinds compare directly.
    """
    config = config or FrequencyConfig()
    scales = config.scales
    kinds = list(patches)
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    entropies = {}
    for kind, patch in patches.items():
        if patch.ndim != 3:
            raise ValueError(f"patch {kind!r} must be (C, H, W), got shape {tuple(patch.shape)}")
        batch = patch.detach().float().cpu().unsqueeze(0)
        levels = image_pyramid(batch, config.num_scales, config.downsample)
        parts[kind] = [tuple(t[0] for t in band_split(level, config.sigma)) for level in levels]
        entropies[kind] = band_entropies(batch, config)
    gains = [0.5 / max(float(torch.quantile(high.abs().flatten(), 0.99)), 1e-3)
             for _, high in parts[kinds[0]]]
    rows = [(kind, band) for kind in kinds for band in ("low", "high")]
    size = (2.5 * len(scales), 2.5 * len(rows))
    fig = Figure(figsize=size)
    axes = fig.subplots(len(rows), len(scales), squeeze=False)
    for r, (kind, band) in enumerate(rows):
        for c, scale in enumerate(scales):
            low, high = parts[kind][c]
            _show(axes[r][c], low if band == "low" else 0.5 + gains[c] * high)
            axes[r][c].set_title(f"H = {float(entropies[kind][band][scale][0]):.3f} bits", fontsize="small")
            if r == 0:
                axes[r][c].annotate(f"scale {scale}", (0.5, 1.25), xycoords="axes fraction", ha="center",
                                    fontweight="bold")
            if c == 0:
                axes[r][c].set_ylabel(band_label(band, kind))
    caption = f"Gaussian sigma {config.sigma:g} px; high part shown as 0.5 + gain x high"
    fig.suptitle(f"{title}\n{caption}" if title else caption, y=1.0)
    fig.tight_layout()
    return fig
