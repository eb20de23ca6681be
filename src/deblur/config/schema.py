"""Dataclass schemas registered in Hydra's ConfigStore.

Each YAML option of a typed group lists its schema first in its defaults (``- msfs_schema``), so a wrong
type fails at composition with the key's full name, e.g. ``model.width=abc`` ->
"Value 'abc' of type 'str' could not be converted to Integer ... full_key: model.width".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from deblur.config.choices import SCHEMA_SUFFIX
from deblur.config.data_schema import DataConfig, SyntheticDataConfig, register_dataset_configs
from deblur.config.registry import GROUPS, components, schemas

__all__ = ["SCHEDULERS", "DataConfig", "SyntheticDataConfig", "register_configs"]


# ---------------------------------------------------------------- networks and losses
# Each network and loss declares its own schema (deblur.config.registry): deblur.models.<net>.config,
# deblur.losses.configs; register_configs stores them as model/<name>_schema and loss/<name>_schema.


# ---------------------------------------------------------------- optimisation
#: the learning-rate schedules (``optim.scheduler.name``; :mod:`deblur.lit.optim` builds them)
SCHEDULERS = ("constant", "step", "cosine", "linear", "linear_decrement")


@dataclass
class SchedulerConfig:
    """Learning-rate schedule. name: constant | step | cosine | linear | linear_decrement.

    step: x gamma every ``step_size`` epochs (MSFS-Net: x0.5 every 500). cosine: to ``min_lr`` over
    ``total_steps`` optimizer steps (default: the trainer's max_steps). linear: constant until
    ``start_epoch``, then a straight line (updated every step) to ``min_lr`` at ``end_epoch`` (null: the
    end of the run, the trainer's estimated optimizer steps), ``min_lr`` after it (FDDN, ``optim=fddn``:
    500 -> 2500, 1e-3 -> 1e-7). linear_decrement: subtract ``decrement`` per optimizer step after
    ``start_epoch``, floored at ``min_lr`` (the literal reading of FDDN's sentence, ``optim=fddn_literal``).
    """

    name: str = "step"
    step_size: int = 500
    gamma: float = 0.5
    total_steps: int | None = None
    warmup_steps: int = 0
    min_lr: float = 0.0
    decrement: float = 1e-7
    start_epoch: int = 500
    end_epoch: int | None = None


@dataclass
class OptimConfig:
    """Optimizer (Adam or AdamW) and its schedule."""

    name: str = "adam"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.9])
    eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


# ---------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    """The ``lightning.Trainer`` arguments the suite exposes (strategy comes from the ``strategy`` group)."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    max_epochs: int | None = None
    max_steps: int = -1
    max_time: str | None = None
    min_steps: int | None = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    deterministic: Any = False
    benchmark: bool | None = None
    fast_dev_run: Any = False
    overfit_batches: Any = 0.0
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    detect_anomaly: bool = False


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (call before composing; idempotent): the declared networks'
    and losses' (:mod:`deblur.config.registry`), the optimiser's, the trainer's, the datasets' and the
    other registered ones."""
    cs = ConfigStore.instance()
    for group in GROUPS:  # every declared network and loss
        for name, entry in components(group).items():
            cs.store(group=group, name=f"{name}{SCHEMA_SUFFIX}", node=entry.config)
    cs.store(group="optim", name="optim_schema", node=OptimConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    register_dataset_configs(cs)  # built-in dataset, GoPro, HIDE, RealBlur, pairs, folder
    for (group, name), node in schemas().items():  # commands' own settings, e.g. analysis/analysis_schema
        cs.store(group=group, name=name, node=node)
