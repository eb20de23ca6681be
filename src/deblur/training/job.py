"""Training as ``deblur-train`` runs it: build data, module and Trainer from a composed config, fit,
validate the final weights and write ``metrics.json``.

:func:`train` takes a ``conf/train.yaml`` config (from ``deblur-train`` or :func:`deblur.compose`):

    >>> import deblur                                                    # doctest: +SKIP
    >>> cfg = deblur.compose("train", ["debug=fdr", "paths.output_dir=/tmp/run"])  # doctest: +SKIP
    >>> metrics = deblur.train(cfg)                                      # doctest: +SKIP

What a run promises (docs/trust.md):

* bad config values fail before anything is built, naming their key (:mod:`deblur.config.checks`);
* a run that would train 0 steps, or ends with non-finite numbers, fails (no ``metrics.json``);
* ``metrics.json`` says why training stopped (``stopped_by``: max_steps, max_epochs, max_time, ...) and
  after how many ``steps`` of the ``planned_steps``;
* a resume says where it resumes from; ``ckpt_path=last`` / ``best`` without a checkpoint is an error; a
  new run never overwrites a folder that holds a run; a resumed run appends to ``csv/metrics.csv``;
* ``train.log`` (Hydra's job log) holds the run's log, Lightning's messages and the final table;
* the precision and memory format are decided once per run / study / resumed run and recorded in
  ``metrics.json`` (:mod:`deblur.training_settings`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import check_complete
from deblur.config.checks import check_train_config
from deblur.data.datamodule import DeblurDataModule
from deblur.data.datasets import check_data_root
from deblur.lit.checkpointing import check_checkpoint_model
from deblur.lit.restoration import RestorationModule
from deblur.lit.wandb import log_run_figures
from deblur.lit.wandb import wandb_loggers as wandb_loggers_of
from deblur.run_folder import claim_run_folder
from deblur.training.history import keep_csv_history
from deblur.training.model_and_data import _container, check_loss_weights, initialise_weights
from deblur.training.outcome import _fit_and_validate
from deblur.training.resume import (
    _LIGHTNING_CKPT,
    _announce_resume,
    _continue_after_max_time,
    _refuse_overwriting,
    _resolve_ckpt_path,
)
from deblur.training.run_log import route_logs_to_run_file
from deblur.training.trainer import build_trainer
from deblur.training_settings import decide_training_settings

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate as configured; returns (and writes) the metrics.json payload.

    With ``resume=true`` a job whose output dir already holds ``metrics.json`` is not run again (its stored
    payload is returned) unless it stopped by ``max_time`` and ``trainer.max_time`` was raised; one with
    ``checkpoints/last.ckpt`` continues from it.

    Raises:
        UserError: a bad config value (naming its key), no checkpoint for ``ckpt_path=last``, a folder that
            holds another run, a training set smaller than one batch, a run that trained 0 steps.
        TrainingDiverged: a non-finite loss or final weights (naming the step and the checkpoint kept).
    """
    from deblur.losses.registry import with_default_loss

    if with_default_loss(cfg):
        log.info("model._target_=%s names no loss: training with loss=l1", cfg.model["_target_"])
    check_train_config(cfg)
    route_logs_to_run_file()
    output_dir = Path(cfg.paths.output_dir)
    done = output_dir / "metrics.json"
    if cfg.get("resume") and done.exists():
        stored = json.loads(done.read_text())
        if not _continue_after_max_time(cfg, stored, output_dir):
            return stored
    ckpt_path = _resolve_ckpt_path(cfg, output_dir)
    _refuse_overwriting(output_dir, ckpt_path)
    check_loss_weights(cfg)
    start_step = 0
    if ckpt_path is not None and ckpt_path not in _LIGHTNING_CKPT and "://" not in ckpt_path:
        check_complete(ckpt_path, "ckpt_path")
        check_checkpoint_model(ckpt_path, _container(cfg.model))
        start_step = _announce_resume(cfg, ckpt_path)
    check_data_root(_container(cfg.data))  # a missing dataset is reported before the speed probe
    settings = decide_training_settings(cfg, output_dir, ckpt_path)
    channels_last, precision = settings.channels_last, settings.precision
    L.seed_everything(cfg.seed, workers=True)
    datamodule = DeblurDataModule(
        data=_container(cfg.data), augment=_container(cfg.get("augment")), shuffle_seed=int(cfg.seed)
    )
    module = RestorationModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optim=_container(cfg.optim),
        channels_last=channels_last,
    )
    if cfg.get("init_from"):
        initialise_weights(module, str(cfg.init_from), resuming=ckpt_path is not None)
    claim_run_folder()  # checks passed: a user error from here on keeps the .hydra/ Hydra wrote for this run
    trainer = build_trainer(cfg, precision=precision)
    if start_step and Path(ckpt_path).resolve().parent == (output_dir / "checkpoints").resolve():
        keep_csv_history(trainer, start_step)
    wandb_loggers = wandb_loggers_of(trainer)
    try:
        for logger in wandb_loggers:  # the resolved config, not ${...} strings (rank 0 only)
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            logger.log_hyperparams(settings.metrics())  # the resolved precision, layout, device, torch
        payload = _fit_and_validate(
            cfg, trainer, module, datamodule, ckpt_path, output_dir, start_step, record=settings.metrics()
        )
        if trainer.is_global_zero:
            for logger in wandb_loggers:  # figures, and the frequency gap as a plot
                log_run_figures(logger, output_dir, trainer.callback_metrics, trainer.global_step)
    finally:
        if wandb_loggers:
            import wandb

            wandb.finish()  # one W&B run per job, also in a multirun
    return payload
