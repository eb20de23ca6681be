"""Training as ``deblur-train`` runs it: build data, module and Trainer from a composed config, fit,
validate the final weights and write ``metrics.json``.

:func:`train` takes a ``conf/train.yaml`` config (from ``deblur-train`` or :func:`deblur.compose`):

    >>> import deblur                                                    # doctest: +SKIP
    >>> cfg = deblur.compose("train", ["debug=fdr", "paths.output_dir=/tmp/run"])  # doctest: +SKIP
    >>> metrics = deblur.train(cfg)                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deblur.data.datamodule import DeblurDataModule
from deblur.lit.checkpointing import AtomicCheckpointIO, RNGState, check_checkpoint_model
from deblur.lit.restoration import RestorationModule
from deblur.lit.wandb import log_run_figures
from deblur.lit.wandb import wandb_loggers as wandb_loggers_of
from deblur.utils.files import atomic_write_json

log = logging.getLogger(__name__)

#: keys of metrics.json that other tools (collectors, notebooks) rely on
METRIC_KEYS = ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input")


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_strategy(cfg: DictConfig) -> Any:
    """``strategy`` group -> a Lightning strategy name or instance."""
    node = cfg.get("strategy")
    if node is None:
        return "auto"
    if "_target_" in node:
        return instantiate(node)
    return node.get("name", "auto")


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    nodes = cfg.get("callbacks") or {}
    callbacks = [instantiate(node) for node in nodes.values() if node is not None and "_target_" in node]
    return [*callbacks, RNGState()]  # RNG states travel in checkpoints: exact resume


def _wandb_names() -> dict[str, str]:
    """W&B group (the sweep folder's name: the study, or the sweep's time) and run name of a Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    names = {"name": hc.job.override_dirname or hc.job.name}
    if hc.mode == RunMode.MULTIRUN:
        names["group"] = Path(hc.sweep.dir).name
    return names


def build_loggers(cfg: DictConfig) -> list[Any] | bool:
    nodes = cfg.get("logger") or {}
    loggers = []
    for node in nodes.values():
        if node is None or "_target_" not in node:
            continue
        extra = {}
        if node._target_.endswith("WandbLogger"):  # fill group / name left null from the Hydra job
            extra = {k: v for k, v in _wandb_names().items() if node.get(k) is None}
        loggers.append(instantiate(node, **extra))
    return loggers or False


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    # None is meaningful for some keys (check_val_every_n_epoch=None: validate by steps), so pass all
    kwargs = dict(_container(cfg.trainer))
    kwargs.update(overrides)
    return L.Trainer(
        strategy=build_strategy(cfg),
        callbacks=build_callbacks(cfg),
        logger=build_loggers(cfg),
        default_root_dir=cfg.paths.output_dir,
        plugins=[AtomicCheckpointIO()],  # checkpoints written to a temporary file, then renamed
        **kwargs,
    )


def _param_count(module: RestorationModule) -> int:
    return sum(p.numel() for p in module.net.parameters())


def _resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``: a file, or ``last`` / ``best`` in this run's checkpoints folder. With ``resume=true``
    and no ``ckpt_path``, ``checkpoints/last.ckpt`` when it exists (a multirun rerun continues its jobs)."""
    ckpt_path = cfg.get("ckpt_path")
    folder = output_dir / "checkpoints"
    if ckpt_path is None and cfg.get("resume") and (folder / "last.ckpt").exists():
        return str(folder / "last.ckpt")
    if ckpt_path == "last":
        return str(folder / "last.ckpt") if (folder / "last.ckpt").exists() else "last"
    if ckpt_path == "best":
        best = sorted(folder.glob("best-*.ckpt"))
        return str(best[-1]) if len(best) == 1 else "best"
    return None if ckpt_path is None else str(ckpt_path)


def initialise_weights(module: RestorationModule, path: str, resuming: bool = False) -> None:
    """``init_from=<file>``: start training from the weights in ``path`` (fine-tuning).

    Any file :func:`deblur.checkpoints.load_model` reads (a ``deblur-train`` checkpoint, a plain state dict,
    the MSFS-Net authors' released weights) whose network fits this run's ``model``; only the network's
    weights are taken: the optimiser, the schedule and the step counter start from zero (unlike
    ``ckpt_path``, which resumes a run). When the run resumes from its own checkpoint, that checkpoint's
    weights win and ``init_from`` is not applied again.
    """
    from deblur.checkpoints import load_model

    if resuming:
        print(f"init_from={path} not applied: resuming from the run's checkpoint, which holds newer weights")
        return
    source, _ = load_model(path, model=module.hparams["model"], key="init_from")
    module.net.load_state_dict(source.state_dict(), strict=True)
    print(f"init_from: network weights from {path} (step counter, optimiser and schedule start fresh)")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate as configured; returns (and writes) the metrics.json payload.

    With ``resume=true`` a job whose output dir already holds ``metrics.json`` is not run again (its stored
    payload is returned), and one with ``checkpoints/last.ckpt`` continues from it.
    """
    output_dir = Path(cfg.paths.output_dir)
    done = output_dir / "metrics.json"
    if cfg.get("resume") and done.exists():
        print(f"resume=true: {done} exists, job already finished; skipping")
        return json.loads(done.read_text())
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = _resolve_ckpt_path(cfg, output_dir)
    if ckpt_path not in (None, "last", "best", "hpc", "registry"):
        check_checkpoint_model(ckpt_path, _container(cfg.model))
    datamodule = DeblurDataModule(
        data=_container(cfg.data), augment=_container(cfg.get("augment")), shuffle_seed=int(cfg.seed)
    )
    module = RestorationModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optim=_container(cfg.optim),
        channels_last=bool(cfg.get("channels_last", False)),
    )
    if cfg.get("init_from"):
        initialise_weights(module, str(cfg.init_from), resuming=ckpt_path is not None)
    trainer = build_trainer(cfg)
    wandb_loggers = wandb_loggers_of(trainer)
    try:
        for logger in wandb_loggers:  # the resolved config, not ${...} strings (rank 0 only)
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        payload = _fit_and_validate(cfg, trainer, module, datamodule, ckpt_path, output_dir)
        if trainer.is_global_zero:
            for logger in wandb_loggers:  # figures, and the frequency gap as a plot
                log_run_figures(logger, output_dir, trainer.callback_metrics, trainer.global_step)
    finally:
        if wandb_loggers:
            import wandb

            wandb.finish()  # one W&B run per job, also in a multirun
    return payload


def _fit_and_validate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: RestorationModule,
    datamodule: DeblurDataModule,
    ckpt_path: str | None,
    output_dir: Path,
) -> dict[str, Any]:
    with warnings.catch_warnings():
        # Lightning warns on a mid-epoch checkpoint unless the loader has state_dict(); ours resumes
        # through the sampler's position source instead (DeblurDataModule.training_position)
        warnings.filterwarnings("ignore", message=".*ended before the epoch ended.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    # Final validation of the final weights (not the best checkpoint): the numbers the run ends with.
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing and not cfg.trainer.get("fast_dev_run"):
        raise RuntimeError(f"validation did not produce {missing}; got {sorted(metrics)}")
    params = _param_count(module)
    payload = {
        **{k: metrics.get(k, math.nan) for k in METRIC_KEYS},
        "val/psnr_gain": metrics.get("val/psnr", math.nan) - metrics.get("val/psnr_input", math.nan),
        "model": cfg.model.name,
        "ablation": cfg.get("ablation_name"),
        "parameters": params,
        "size_mb": params * 4 / 2**20,
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "output_dir": str(output_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", payload)
        _print_summary(payload)
    return payload


def _print_summary(payload: dict[str, Any]) -> None:
    rows = [
        ("", "PSNR (dB)", "SSIM"),
        ("blurry input", f"{payload['val/psnr_input']:.2f}", f"{payload['val/ssim_input']:.4f}"),
        (f"{payload['model']} output", f"{payload['val/psnr']:.2f}", f"{payload['val/ssim']:.4f}"),
    ]
    print(
        "\nFinal validation ("
        + f"{payload['global_step']} steps, {payload['parameters'] / 1e6:.2f} M parameters)"
    )
    for name, psnr, ssim in rows:
        print(f"  {name:<22}{psnr:>10}{ssim:>10}")
    print(f"  gain: {payload['val/psnr_gain']:+.2f} dB    outputs: {payload['output_dir']}\n")
