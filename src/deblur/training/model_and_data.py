"""What a run trains, built from its config: the dataset checked (:func:`check_data`) and its
:class:`~deblur.data.datamodule.DeblurDataModule`, the loss's pretrained weights checked
(:func:`check_loss_weights`), the :class:`~deblur.lit.restoration.RestorationModule` (network, loss,
optimiser) and ``init_from`` weights loaded into its network; :func:`training_speed` is one run's memory
format and precision decided afresh."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deblur.data.datamodule import DeblurDataModule
from deblur.data.on_disk import check_data_root
from deblur.lit.restoration import RestorationModule
from deblur.training.run_log import say
from deblur.training_settings import given_settings, probe_settings

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def check_data(cfg: DictConfig) -> None:
    """A dataset with a root has one: checked before the speed probe times anything
    (:func:`deblur.data.on_disk.check_data_root`, a ``DatasetError`` naming ``data.root``)."""
    check_data_root(_plain(cfg.data))


def build_datamodule(cfg: DictConfig) -> DeblurDataModule:
    """The ``data`` and ``augment`` groups' datamodule; ``seed`` seeds its shuffling (exact resume)."""
    return DeblurDataModule(
        data=_plain(cfg.data), augment=_plain(cfg.get("augment")), shuffle_seed=int(cfg.seed)
    )


def build_module(cfg: DictConfig, channels_last: bool) -> RestorationModule:
    """The ``model``, ``loss`` and ``optim`` groups' LightningModule, in the decided memory format."""
    return RestorationModule(
        model=_plain(cfg.model),
        loss=_plain(cfg.loss),
        optim=_plain(cfg.optim),
        channels_last=channels_last,
    )


def training_speed(cfg: DictConfig) -> tuple[bool, str]:
    """``(channels_last, trainer precision)`` of a run: as configured, or probed where left open.

    ``channels_last: null`` and / or ``trainer.precision: auto`` time a few training steps of the configured
    network and loss at the training crop (:func:`deblur.speed.training_probe.choose_training_speed`,
    cached per machine) and take the fastest; ``speed=fixed`` takes the fixed rule instead. The defaults
    are fixed (``channels_last: true``, ``32-true``): docs/training.md says why.

    One run's choice, decided afresh; :func:`deblur.training.train` decides through
    :func:`deblur.training_settings.decide_training_settings` (once per study, kept by a resumed run).
    """
    chosen = probe_settings(cfg, given_settings(cfg))
    log.info("training speed: channels_last=%s, precision=%s", chosen.channels_last, chosen.precision)
    return chosen.channels_last, chosen.precision


def check_loss_weights(cfg: DictConfig) -> None:
    """A loss with pretrained weights (FDDN's VGG16 perceptual loss) gets them before the speed probe and
    the Trainer, or fails naming ``loss.weights_path``; the run's log says what the loss uses."""
    loss = _plain(cfg.loss)
    if "pretrained" in loss:
        from deblur.losses.perceptual import check_vgg16_weights

        say(check_vgg16_weights(bool(loss["pretrained"]), loss.get("weights_path")))


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
        say(f"init_from={path} not applied: resuming from the run's checkpoint, which holds newer weights")
        return
    source, _ = load_model(path, model=module.hparams["model"], key="init_from")
    module.net.load_state_dict(source.state_dict(), strict=True)
    say(f"init_from: network weights from {path} (step counter, optimiser and schedule start fresh)")
