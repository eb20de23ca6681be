"""Dataclass schemas registered in Hydra's ConfigStore.

Each YAML option of a typed group lists its schema first in its defaults (``- msfs_schema``), so a wrong
type fails at composition with the key's full name, e.g. ``model.width=abc`` ->
"Value 'abc' of type 'str' could not be converted to Integer ... full_key: model.width".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from deblur.config.datasets import DataConfig, SyntheticDataConfig, register_dataset_configs

__all__ = ["DataConfig", "SyntheticDataConfig", "register_configs"]


# ---------------------------------------------------------------- models
@dataclass
class MSFSNetConfig:
    """``deblur.models.MSFSNet`` arguments (defaults: the published 21.6 M-parameter model)."""

    name: str = "msfs"
    in_channels: int = 3
    width: int = 64
    encoder_blocks: int = 8
    latent_blocks: int = 10
    decoder_blocks: int = 30
    reduction: int = 16
    use_fsm: bool = True
    use_csffm: bool = True
    # false: no encoder-to-decoder skip at all (ablation=msfs/no_skip; use_csffm is then ignored)
    use_skip: bool = True
    csffm_init: list[float] = field(default_factory=lambda: [-1.0, -0.6])
    norm: str = "batch"
    # the public layout (model=msfs_public, docs/models.md); the defaults are our corrected one
    fsm_conv_shortcut: bool = False
    concat_encoder_first: bool = False
    out_kernel_size: int = 3
    shared_anchor_projection: bool = False
    aux_outputs: bool = False
    skip_first_encoder_blocks: bool = False


@dataclass
class FDDNConfig:
    """``deblur.models.FDDN`` arguments (defaults: the paper's 8.08 MB model)."""

    name: str = "fddn"
    in_channels: int = 3
    width: int = 12
    num_fdb: int = 16
    ratio: float = 0.5
    variant: str = "full"
    decoder_rcabs: int = 1
    cca_reduction: int = 16
    rcab_reduction: int = 16


@dataclass
class NAFNetConfig:
    """``deblur.models.nafnet.NAFNet`` arguments (defaults: the GoPro width-32 model, 17.11 M parameters)."""

    name: str = "nafnet"
    in_channels: int = 3
    width: int = 32
    encoder_blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 28])
    middle_blocks: int = 1
    decoder_blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])


# ---------------------------------------------------------------- losses
@dataclass
class MSFSLossConfig:
    """Eq. 7 of MSFS-Net; see ``deblur.losses.msfs`` for the positive/detach options."""

    name: str = "msfs"
    lambda_high: float = 0.005
    lambda_low: float = 0.005
    positive: str = "output"
    detach_positive: bool = True
    detach_negative: bool = True
    eps: float = 1e-7
    # BatchNorm in the re-encoding passes: batch (own batch statistics, running estimates updated) |
    # frozen (the blurry pass's statistics, running estimates untouched); docs/models.md
    reencode_batchnorm: str = "batch"


@dataclass
class FDDNLossConfig:
    """Eq. 14 of FDDN: MSE + lambda * VGG16 relu3_3 perceptual loss."""

    name: str = "fddn"
    lambda_perceptual: float = 0.1
    pretrained: bool = True
    weights_path: str | None = None


@dataclass
class PSNRLossConfig:
    """NAFNet's PSNR loss: ``10 * log10(MSE + eps)`` per image, averaged (``deblur.losses.psnr``)."""

    name: str = "psnr"
    eps: float = 1e-8


@dataclass
class L1LossConfig:
    """``mean |pred - target|`` (``deblur.losses.pixel``); the default of a ``_target_`` network."""

    name: str = "l1"


@dataclass
class CharbonnierLossConfig:
    """``mean sqrt((pred - target)^2 + eps^2)`` (``deblur.losses.pixel``)."""

    name: str = "charbonnier"
    eps: float = 1e-3


@dataclass
class FFTLossConfig:
    """MIMO-UNet's L1 + ``fft_weight`` x L1 between the images' 2-D FFTs (``deblur.losses.pixel``)."""

    name: str = "fft"
    fft_weight: float = 0.1


# ---------------------------------------------------------------- optimisation
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
    """Store the schemas in Hydra's ConfigStore (call before composing; idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group="model", name="msfs_schema", node=MSFSNetConfig)
    cs.store(group="model", name="fddn_schema", node=FDDNConfig)
    cs.store(group="model", name="nafnet_schema", node=NAFNetConfig)
    cs.store(group="loss", name="msfs_schema", node=MSFSLossConfig)
    cs.store(group="loss", name="fddn_schema", node=FDDNLossConfig)
    cs.store(group="loss", name="psnr_schema", node=PSNRLossConfig)
    cs.store(group="loss", name="l1_schema", node=L1LossConfig)
    cs.store(group="loss", name="charbonnier_schema", node=CharbonnierLossConfig)
    cs.store(group="loss", name="fft_schema", node=FFTLossConfig)
    cs.store(group="optim", name="optim_schema", node=OptimConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    register_dataset_configs(cs)  # built-in dataset, GoPro, HIDE, RealBlur, pairs, folder
    # types of deblur-analyze's analysis.* keys
    from deblur.analysis.settings import AnalyzeSettings

    cs.store(group="analysis", name="analysis_schema", node=AnalyzeSettings)
