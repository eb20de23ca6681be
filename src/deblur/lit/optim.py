"""Optimizers and learning-rate schedules named in the ``optim`` config group.

* MSFS-Net (paper Sec. 4.1): Adam(beta1 0.9, beta2 0.9, eps 1e-8), lr 1e-4, x0.5 every 500 epochs (``step``).
* FDDN (paper Sec. 4.2): Adam, lr 1e-3, "each iteration attenuates 0.0000001 after 500 epochs". The paper's
  training setup follows DeblurGAN-v2, whose configuration decays the rate linearly to ``min_lr`` 1e-7.
  ``optim=fddn`` therefore reads it as ``linear``: constant until ``start_epoch`` (500), then a straight
  line from ``lr`` down to ``min_lr`` (1e-7) at ``end_epoch`` (2500, the paper's last epoch), updated at
  every optimizer step. The literal reading, subtracting 1e-7 at every step after epoch 500 and floored at
  ``min_lr`` (``linear_decrement``), is ``optim=fddn_literal``: with GoPro at batch 4 it reaches its floor
  about 19 epochs after epoch 500 (docs/training.md compares both).
* ``cosine``: linear warm-up then cosine decay over the run's optimizer steps, for short runs.

Run ``python -m deblur.lit.optim OUT.png`` to plot the two FDDN readings over 2500 epochs of GoPro.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch

from deblur.config.schema import SCHEDULERS


def build_optimizer(params: Any, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam or AdamW from ``{"name", "lr", "betas", "eps", "weight_decay"}``."""
    name = cfg.get("name", "adam")
    kwargs = dict(
        lr=cfg["lr"],
        betas=tuple(cfg.get("betas", (0.9, 0.999))),
        eps=cfg.get("eps", 1e-8),
        weight_decay=cfg.get("weight_decay", 0.0),
    )
    if name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    raise ValueError(f"optim.name={name!r} is not known; options: ['adam', 'adamw']")


def lr_factor_fn(
    cfg: Mapping[str, Any], base_lr: float, total_steps: Callable[[], int], steps_per_epoch: Callable[[], int]
) -> tuple[Callable[[int], float], str]:
    """(factor(step_or_epoch) for ``LambdaLR``, Lightning interval) for the schedule ``cfg``.

    Args:
        cfg: the ``optim.scheduler`` node (see ``SchedulerConfig``).
        base_lr: ``optim.lr``; ``min_lr`` is turned into the factor ``min_lr / base_lr``.
        total_steps: () -> the run's optimizer steps (cosine without ``total_steps``; linear without
            ``end_epoch``). Called lazily, once the trainer knows its data.
        steps_per_epoch: () -> optimizer steps per epoch (epochs of ``linear`` and ``linear_decrement``).

    Returns:
        ``(factor, interval)``: the multiplier of ``base_lr`` at a step (``interval == "step"``) or an
        epoch (``"epoch"``).
    """
    name = cfg.get("name", "constant")
    if name == "constant":
        return (lambda _: 1.0), "step"
    if name == "step":
        step_size, gamma = int(cfg["step_size"]), float(cfg["gamma"])
        if step_size < 1:
            raise ValueError(f"optim.scheduler.step_size must be >= 1 epoch, got {step_size}")
        return (lambda epoch: gamma ** (epoch // step_size)), "epoch"
    min_factor = float(cfg.get("min_lr", 0.0)) / base_lr
    if name == "cosine":
        warmup = int(cfg.get("warmup_steps", 0))

        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            total = int(cfg.get("total_steps") or total_steps())
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

        return cosine, "step"
    if name == "linear":
        start_epoch = int(cfg.get("start_epoch", 0))
        end_epoch = cfg.get("end_epoch")
        if end_epoch is not None and int(end_epoch) <= start_epoch:
            raise ValueError(
                f"optim.scheduler.end_epoch must be after start_epoch={start_epoch} (or null: the end of "
                f"the run), got {end_epoch}"
            )

        def linear(step: int) -> float:
            per_epoch = steps_per_epoch()
            start = start_epoch * per_epoch
            end = int(end_epoch) * per_epoch if end_epoch is not None else total_steps()
            progress = min(1.0, max(0, step - start) / max(1, end - start))
            return 1.0 - (1.0 - min_factor) * progress

        return linear, "step"
    if name == "linear_decrement":
        decrement, start_epoch = float(cfg["decrement"]), int(cfg["start_epoch"])

        def decrement_fn(step: int) -> float:
            start = start_epoch * steps_per_epoch()
            return max(min_factor, 1.0 - decrement * max(0, step - start) / base_lr)

        return decrement_fn, "step"
    raise ValueError(f"optim.scheduler.name={name!r} is not known; options: {list(SCHEDULERS)}")


def lr_curve(optim: Mapping[str, Any], epochs: int, steps_per_epoch: int, every: int = 1) -> list[float]:
    """Learning rate at optimizer steps ``0, every, 2 * every, ...`` below ``epochs * steps_per_epoch`` of
    the ``optim`` node (``{"lr", "scheduler": {...}}``) on a run of ``epochs`` epochs of ``steps_per_epoch``
    steps; an ``"epoch"``-interval schedule is held constant within each epoch."""
    total = epochs * steps_per_epoch
    base_lr = float(optim["lr"])
    scheduler = optim.get("scheduler", {})
    factor, interval = lr_factor_fn(scheduler, base_lr, lambda: total, lambda: steps_per_epoch)
    steps = range(0, total, every)
    if interval == "epoch":
        return [base_lr * factor(step // steps_per_epoch) for step in steps]
    return [base_lr * factor(step) for step in steps]


def plot_fddn_schedules(path: str, epochs: int = 2500, pairs: int = 2103, batch_size: int = 4) -> None:
    """Plot ``optim=fddn`` (linear) and ``optim=fddn_literal`` (``linear_decrement``) over ``epochs``
    epochs of ``pairs`` training pairs at ``batch_size`` (GoPro: 2103 pairs; the training loader drops the
    last incomplete batch), linear and log scale, into ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from omegaconf import OmegaConf

    from deblur.paths import CONF_DIR
    from deblur.utils.files import atomic_write

    per_epoch = pairs // batch_size
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.1))
    for preset, style in (("fddn", "-"), ("fddn_literal", "--")):
        node = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "optim" / f"{preset}.yaml"), resolve=True)
        curve = lr_curve(node, epochs, per_epoch, every=per_epoch)  # each epoch's first step
        label = f"optim={preset} ({node['scheduler']['name']})"
        for ax in axes:
            ax.plot(range(epochs), curve, style, label=label)
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        ax.set_yscale(scale)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"FDDN schedules, GoPro: {pairs} pairs / batch {batch_size} = {per_epoch} steps/epoch")
    axes[1].set_title("log scale")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover - documentation figure
    plot_fddn_schedules(sys.argv[1] if len(sys.argv) > 1 else "docs/images/fddn_lr_schedules.png")
