"""Optimizers and learning-rate schedules named in the ``optim`` config group.

* MSFS-Net (paper Sec. 4.1): Adam(beta1 0.9, beta2 0.9, eps 1e-8), lr 1e-4, x0.5 every 500 epochs (``step``).
* FDDN (paper Sec. 4.2): Adam, lr 1e-3; "each iteration attenuates 0.0000001 after 500 epochs", read
  literally as subtracting 1e-7 from the learning rate at every optimizer step after epoch 500
  (``linear_decrement``), floored at ``min_lr``.
* ``cosine``: linear warm-up then cosine decay over the run's optimizer steps, for short runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

SCHEDULERS = ("constant", "step", "cosine", "linear_decrement")


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
    """(factor(step_or_epoch) for ``LambdaLR``, Lightning interval) for the schedule ``cfg``."""
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
    if name == "linear_decrement":
        decrement, start_epoch = float(cfg["decrement"]), int(cfg["start_epoch"])

        def linear(step: int) -> float:
            start = start_epoch * steps_per_epoch()
            return max(min_factor, 1.0 - decrement * max(0, step - start) / base_lr)

        return linear, "step"
    raise ValueError(f"optim.scheduler.name={name!r} is not known; options: {list(SCHEDULERS)}")
