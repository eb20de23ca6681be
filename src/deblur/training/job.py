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

import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from deblur.config.checks import check_train_config
from deblur.run_folder import claim_run_folder
from deblur.training.history import keep_csv_history
from deblur.training.model_and_data import (
    build_datamodule,
    build_module,
    check_data,
    check_loss_weights,
    initialise_weights,
)
from deblur.training.outcome import fit_and_validate
from deblur.training.resume import (
    check_resume,
    finished_job,
    refuse_overwriting,
    resolve_ckpt_path,
    resumes_own_run,
)
from deblur.training.run_log import route_logs_to_run_file
from deblur.training.trainer import build_trainer
from deblur.training.wandb_run import wandb_run
from deblur.training_settings import decide_training_settings

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate as configured; returns (and writes) the metrics.json payload.

    With ``resume=true`` a job whose output dir already holds ``metrics.json`` is not run again (its stored
    payload is returned) unless it stopped by ``max_time`` and ``trainer.max_time`` was raised; one with
    ``checkpoints/last.ckpt`` continues from it.

    The steps, in order: check the config; skip a finished job; resolve the checkpoint to resume and
    refuse to overwrite another run; check the loss's weights, the checkpoint and the dataset (all before
    the speed probe, so a mistake costs nothing); decide precision and memory format; build the data, the
    module (``init_from`` weights) and, once the run folder is claimed, the Trainer; keep the CSV history
    of a resumed run; fit, validate the final weights and write ``metrics.json`` inside one W&B run.

    Raises:
        UserError: a bad config value (naming its key), no checkpoint for ``ckpt_path=last``, a folder that
            holds another run, a training set smaller than one batch, a run that trained 0 steps.
        TrainingDiverged: a non-finite loss or final weights (naming the step and the checkpoint kept).
    """
    from deblur.losses.build import with_default_loss

    if with_default_loss(cfg):
        log.info("model._target_=%s names no loss: training with loss=l1", cfg.model["_target_"])
    check_train_config(cfg)
    route_logs_to_run_file()
    output_dir = Path(cfg.paths.output_dir)
    stored = finished_job(cfg, output_dir)
    if stored is not None:
        return stored
    ckpt_path = resolve_ckpt_path(cfg, output_dir)
    refuse_overwriting(output_dir, ckpt_path)
    check_loss_weights(cfg)
    start_step = check_resume(cfg, ckpt_path)
    check_data(cfg)
    settings = decide_training_settings(cfg, output_dir, ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, settings.channels_last)
    if cfg.get("init_from"):
        initialise_weights(module, str(cfg.init_from), resuming=ckpt_path is not None)
    claim_run_folder()  # checks passed: a user error from here on keeps the .hydra/ Hydra wrote for this run
    trainer = build_trainer(cfg, precision=settings.precision)
    if start_step and resumes_own_run(output_dir, ckpt_path):
        keep_csv_history(trainer, start_step)
    with wandb_run(cfg, trainer, settings.metrics()):
        return fit_and_validate(
            cfg, trainer, module, datamodule, ckpt_path, output_dir, start_step, record=settings.metrics()
        )
