"""The run's outcome: fit, validate the final weights, and write ``metrics.json`` (its keys, why training
stopped, the resolved settings) with the final table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from deblur.config.presets import model_preset
from deblur.data.datamodule import DeblurDataModule
from deblur.data.progressive import progressive_record
from deblur.errors import UserError
from deblur.lit.ema import ema_decay
from deblur.lit.restoration import RestorationModule
from deblur.models.size import size_mb
from deblur.training.stopping import TrainingDiverged, fit, kept_checkpoint, says_what_a_full_disk_kept
from deblur.training.summary import planned_steps, print_summary, stop_reason
from deblur.utils.files import atomic_write_json

#: keys of metrics.json that other tools (collectors, notebooks) rely on
METRIC_KEYS = ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input")


def _param_count(module: RestorationModule) -> int:
    return sum(p.numel() for p in module.net.parameters())


def _validate_final(trainer: L.Trainer, module: RestorationModule, datamodule: DeblurDataModule) -> list:
    """``trainer.validate`` of the final weights. When fit's last validation was at this very step (same
    weights, same numbers), its loggers are left out, so ``csv/metrics.csv`` and W&B get no second row."""
    repeat = module.last_validation_step == trainer.global_step
    loggers = trainer.loggers
    if repeat:
        trainer.loggers = []
    try:
        return trainer.validate(module, datamodule=datamodule, verbose=False)
    finally:
        trainer.loggers = loggers


@says_what_a_full_disk_kept
def fit_and_validate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: RestorationModule,
    datamodule: DeblurDataModule,
    ckpt_path: str | None,
    output_dir: Path,
    start_step: int = 0,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit, validate the final weights, write metrics.json; ``record``: the resolved training settings
    (:meth:`deblur.training_settings.TrainingSettings.metrics`), top-level keys of metrics.json."""
    fit(trainer, module, datamodule, ckpt_path, output_dir)
    stopped_by = stop_reason(trainer)
    steps = trainer.global_step
    if steps == 0:
        raise UserError(
            f"training ran 0 optimizer steps (stopped by {stopped_by}; "
            f"trainer.max_steps={trainer.max_steps}, "
            f"trainer.max_time={cfg.trainer.get('max_time')}, trainer.limit_train_batches="
            f"{cfg.trainer.get('limit_train_batches')}); no metrics.json written"
        )

    # Final validation of the final weights (not the best checkpoint): the numbers the run ends with.
    results = _validate_final(trainer, module, datamodule)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing and not cfg.trainer.get("fast_dev_run"):
        raise RuntimeError(f"validation did not produce {missing}; got {sorted(metrics)}")
    bad = [k for k in ("val/psnr", "val/ssim") if k in metrics and not math.isfinite(metrics[k])]
    if bad:
        raise TrainingDiverged(
            f"the final weights at step {steps} give {', '.join(f'{k}={metrics[k]}' for k in bad)}: training "
            f"diverged; {kept_checkpoint(output_dir)}. No metrics.json written."
        )
    params = _param_count(module)
    payload = {
        **{k: metrics.get(k, math.nan) for k in METRIC_KEYS},
        "val/psnr_gain": metrics.get("val/psnr", math.nan) - metrics.get("val/psnr_input", math.nan),
        "model": cfg.model.get("name") or cfg.model.get("_target_"),
        "model_preset": model_preset(OmegaConf.to_container(cfg.model, resolve=True)),
        "ablation": cfg.get("ablation_name"),
        "ema_decay": ema_decay(cfg),  # null: no EMA, else validation and checkpoints used the average
        "parameters": params,
        "size_mb": size_mb(params),
        "global_step": steps,
        "epoch": trainer.current_epoch,
        "steps": steps,
        "planned_steps": planned_steps(trainer),
        "stopped_by": stopped_by,
        "resumed_from_step": start_step or None,
        "output_dir": str(output_dir),
        **progressive_record(OmegaConf.to_container(cfg.data, resolve=True), steps),  # data.progressive
        **(record or {}),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", payload)
        print_summary(payload)
    return payload
