"""Callbacks: validation image triplets, and the end-of-training figures (before/after, PSNR curve)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from deblur.metrics.agreement import output_psnr  # noqa: E402
from deblur.utils.files import atomic_write  # noqa: E402

#: column titles of the validation triplets
TRIPLET_COLUMNS = ("blurry", "output", "sharp")


def triplet_figure(
    blurry: torch.Tensor, pred: torch.Tensor, sharp: torch.Tensor, names: list[str] | None = None
) -> plt.Figure:
    """(N, 3, H, W) x3 -> a figure of N rows (labelled with ``names``) and the columns
    :data:`TRIPLET_COLUMNS`, each panel at the image's own resolution (no resampling beyond display)."""
    from matplotlib.figure import Figure

    n, _, h, w = blurry.shape
    scale = max(1.0, 160.0 / max(h, w))  # small crops drawn at least 160 px wide
    fig = Figure(figsize=(3 * w * scale / 100 + 0.4, n * h * scale / 100 + 0.4), dpi=100)
    axes = fig.subplots(n, 3, squeeze=False)
    for row in range(n):
        for col, images in enumerate((blurry, pred, sharp)):
            ax = axes[row][col]
            ax.imshow(images[row].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(TRIPLET_COLUMNS[col])
        if names:
            axes[row][0].set_ylabel(names[row], fontsize="small")
    fig.tight_layout(pad=0.3)
    return fig


def figure_array(fig: plt.Figure) -> np.ndarray:
    """A matplotlib figure rendered by Agg as an (H, W, 3) uint8 RGB array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _save_figure(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


class ValidationImages(L.Callback):
    """After each validation (rank 0): save blurry | output | sharp triplets (column titles, a row per
    validation photo named on the left: the module's ``last_val_samples``, distinct photos first) as
    ``<output_dir>/images/step_XXXXXXX.png`` and send the same picture to TensorBoard or W&B when one is
    the logger."""

    def __init__(self, output_dir: str, every_n_validations: int = 1) -> None:
        self.output_dir = Path(output_dir) / "images"
        self.every = max(1, every_n_validations)
        self._count = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        samples = getattr(pl_module, "last_val_samples", None)
        if trainer.sanity_checking or samples is None or not trainer.is_global_zero:
            return
        if not all(bool(torch.isfinite(t).all()) for t in samples):
            return  # never an image from non-finite outputs (diverged weights): the run fails instead
        self._count += 1
        if (self._count - 1) % self.every:
            return
        names = list(getattr(pl_module, "last_val_names", []) or []) or None
        array = figure_array(triplet_figure(*samples, names=names))
        step = trainer.global_step
        atomic_write(
            self.output_dir / f"step_{step:07d}.png", lambda tmp: plt.imsave(tmp, array, format="png")
        )
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):  # TensorBoard
                experiment.add_image("val/triplets", array, global_step=step, dataformats="HWC")
            elif hasattr(logger, "log_image"):  # W&B
                logger.log_image(
                    key="val/triplets", images=[array], step=step, caption=[" | ".join(TRIPLET_COLUMNS)]
                )


class TrainingFigures(L.Callback):
    """Records ``val/psnr`` (and the input baseline) after each validation; at the end of fit (rank 0)
    writes ``<output_dir>/val_psnr.png`` (the curve) and ``<output_dir>/before_after.png``.

    The history travels in checkpoints (``state_dict``), so the curve of a resumed run covers the whole
    run, not only the part since the resume."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.history: list[tuple[int, float, float]] = []

    def state_dict(self) -> dict[str, list[list[float]]]:
        return {"history": [[float(v) for v in row] for row in self.history]}

    def load_state_dict(self, state_dict: dict[str, list[list[float]]]) -> None:
        rows = state_dict.get("history", [])
        self.history = [(int(step), float(psnr), float(base)) for step, psnr, base in rows]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: callbacks' epoch-end hooks run before the
        # LightningModule logs the epoch's metrics, so callback_metrics would still hold the previous ones
        if trainer.state.fn != "fit":
            return
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or "val/psnr" not in metrics:
            return
        self.history.append(
            (
                trainer.global_step,
                float(metrics["val/psnr"]),
                float(metrics.get("val/psnr_input", float("nan"))),
            )
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        weights = [t for t in pl_module.state_dict().values() if t.is_floating_point()]
        if not all(bool(torch.isfinite(t).all()) for t in weights):
            return  # never a figure of non-finite weights: the run fails instead (deblur.training)
        if self.history:
            steps, psnr, baseline = zip(*self.history, strict=True)
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.plot(steps, psnr, marker="o", label="deblurred")
            if len(steps) == 1:  # one validation: a dashed line across the axes, not an invisible point
                ax.axhline(baseline[0], linestyle="--", color="gray", label="blurry input")
            else:
                ax.plot(steps, baseline, linestyle="--", color="gray", label="blurry input")
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("validation PSNR (dB)")
            ax.grid(alpha=0.3)
            ax.legend()
            _save_figure(fig, self.output_dir / "val_psnr.png")
        samples = getattr(pl_module, "last_val_samples", None)
        if samples is not None:
            blurry, pred, sharp = (t[0].permute(1, 2, 0).clamp(0, 1).numpy() for t in samples)
            fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
            titles = [
                f"blurry ({output_psnr(samples[2][0], samples[0][0]):.2f} dB)",
                f"deblurred ({output_psnr(samples[2][0], samples[1][0]):.2f} dB)",
                "sharp",
            ]
            for ax, image, title in zip(axes, (blurry, pred, sharp), titles, strict=True):
                ax.imshow(image)
                ax.set_title(title)
                ax.axis("off")
            _save_figure(fig, self.output_dir / "before_after.png")
