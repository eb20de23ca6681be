"""W&B extras for ``deblur-train`` (``logger=wandb``): the figures of a run and its frequency gap plot.

Validation image triplets go to W&B from :class:`deblur.lit.callbacks.ValidationImages`; the resolved
config is logged and ``wandb.finish()`` called by :func:`deblur.training.wandb_run.wandb_run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def wandb_loggers(trainer: Any) -> list[Any]:
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def frequency_gap_figure(metrics: Mapping[str, float]) -> plt.Figure | None:
    """Bars of the final ``val/js_<band>_<scale>`` (deblurred vs sharp) beside ``val/js_input_*``."""
    ours = {k[len("val/js_") :]: float(v) for k, v in metrics.items() if k.startswith("val/js_")}
    ours = {k: v for k, v in ours.items() if not k.startswith("input_")}
    if not ours:
        return None
    names = sorted(ours)
    baseline = [float(metrics.get(f"val/js_input_{n}", float("nan"))) for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [ours[n] for n in names], width=0.4, label="deblurred vs sharp")
    ax.bar([x + 0.2 for x in xs], baseline, width=0.4, color="gray", label="blurry vs sharp")
    ax.set_xticks(list(xs), names, rotation=30)
    ax.set_ylabel("JS divergence of entropies")
    ax.legend()
    fig.tight_layout()
    return fig


def log_run_figures(logger: Any, output_dir: Path, metrics: Mapping[str, float], step: int) -> None:
    """The end-of-training figures (``val_psnr.png``, ``before_after.png``) and the frequency gap plot."""
    import wandb

    for name in ("val_psnr", "before_after"):
        path = Path(output_dir) / f"{name}.png"
        if path.exists():
            logger.log_image(key=f"figures/{name}", images=[str(path)], step=step)
    fig = frequency_gap_figure(metrics)
    if fig is not None:
        logger.log_image(key="figures/frequency_gap", images=[wandb.Image(fig)], step=step)
        plt.close(fig)
