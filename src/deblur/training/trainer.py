"""Building the Lightning ``Trainer`` of a run from the config: strategy, callbacks (with the progress bar
and the RNG state for an exact resume), loggers (W&B names from the Hydra job), atomic checkpoint writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deblur.lit.ema import ema_callbacks
from deblur.lit.resumption import AtomicCheckpointIO, RNGState


def build_strategy(cfg: DictConfig) -> Any:
    """``strategy`` group -> a Lightning strategy name or instance."""
    node = cfg.get("strategy")
    if node is None:
        return "auto"
    if "_target_" in node:
        return instantiate(node)
    return node.get("name", "auto")


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The ``callbacks`` group's callbacks (entries without ``_target_`` or null are left out), then the
    progress bar (:func:`_progress_bar`) and :class:`~deblur.lit.resumption.RNGState`."""
    nodes = cfg.get("callbacks") or {}
    callbacks = [instantiate(node) for node in nodes.values() if node is not None and "_target_" in node]
    callbacks += ema_callbacks(cfg)  # ema.decay: Lightning's EMAWeightAveraging (deblur.lit.ema)
    return [*callbacks, *_progress_bar(cfg, callbacks), RNGState()]  # RNG states in checkpoints: exact resume


def _progress_bar(cfg: DictConfig, callbacks: list[L.Callback]) -> list[L.Callback]:
    """Lightning's bar with an honest epoch / step description (:mod:`deblur.lit.progress`), when the
    trainer shows one and no configured callback is a bar."""
    from lightning.pytorch.callbacks import ProgressBar

    from deblur.lit.progress import progress_bar

    shown = (cfg.get("trainer") or {}).get("enable_progress_bar", True) is not False
    if not shown or any(isinstance(c, ProgressBar) for c in callbacks):
        return []
    return [progress_bar()]


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
    """The ``logger`` group's loggers (False when none: Lightning then logs nowhere); a W&B logger's
    ``group`` / ``name`` left null come from the Hydra job (:func:`_wandb_names`)."""
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
    """The run's ``L.Trainer``: every ``trainer`` key (``overrides``, e.g. the decided ``precision``, on
    top), the strategy, callbacks and loggers above, ``paths.output_dir`` as its root folder and
    :class:`~deblur.lit.resumption.AtomicCheckpointIO`."""
    # None is meaningful for some keys (check_val_every_n_epoch=None: validate by steps), so pass all
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs.update(overrides)
    return L.Trainer(
        strategy=build_strategy(cfg),
        callbacks=build_callbacks(cfg),
        logger=build_loggers(cfg),
        default_root_dir=cfg.paths.output_dir,
        plugins=[AtomicCheckpointIO()],  # checkpoints written to a temporary file, then renamed
        **kwargs,
    )
