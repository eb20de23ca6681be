"""One W&B run per training job (also in a multirun): the resolved config and training settings logged
before fit, the run's figures after it, ``wandb.finish()`` whatever happens. Without a W&B logger
nothing is done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from deblur.lit.wandb import log_run_figures, wandb_loggers


@contextmanager
def wandb_run(cfg: DictConfig, trainer: L.Trainer, settings: dict[str, Any]) -> Iterator[None]:
    """Around fit and the final validation: ``cfg`` resolved (not ``${...}`` strings) and ``settings``
    (the resolved precision, layout, device, torch) as hyperparameters; on success the figures of
    ``paths.output_dir`` and the frequency gap as a plot (rank 0)."""
    loggers = wandb_loggers(trainer)
    output_dir = Path(cfg.paths.output_dir)
    try:
        for logger in loggers:  # rank 0 only
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            logger.log_hyperparams(settings)
        yield
        if trainer.is_global_zero:
            for logger in loggers:
                log_run_figures(logger, output_dir, trainer.callback_metrics, trainer.global_step)
    finally:
        if loggers:
            import wandb

            wandb.finish()
