"""Check a composed ``deblur-train`` config before anything is built: every bad value names its key.

The dataclass schemas (:mod:`deblur.config.schema`) check *types* when Hydra composes (``model.width=abc``
fails there). What they cannot say is which *values* make sense, nor that a key added with ``+`` is not
an argument of the network (``+model.foo=1`` would otherwise end in ``TypeError: MSFSNet.__init__() got
an unexpected keyword argument 'foo'``). :func:`check_train_config` does both, for the groups ``model``,
``loss``, ``optim``, ``data``, ``augment`` and ``trainer``, and raises one :class:`deblur.errors.UserError`
listing every problem, each as ``<key>=<value>: <what is expected>``.

    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"model": {"name": "msfs", "width": 3}})
    >>> check_train_config(cfg)
    Traceback (most recent call last):
    ...
    deblur.errors.UserError: model.width=3: MSFSNet needs an even integer >= 2
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deblur.errors import UserError

#: Lightning's ``max_time`` string form
MAX_TIME = re.compile(r"^(\d+):(\d\d):(\d\d):(\d\d)$")


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Problems:
    """Collects ``key=value: expectation`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, value: Any, expected: str) -> None:
        shown = repr(value) if isinstance(value, str) else value
        self.lines.append(f"{key}={shown}: {expected}")

    def int_at_least(self, node: Mapping[str, Any], prefix: str, key: str, minimum: int,
                     nullable: bool = False, what: str = "") -> None:  # fmt: skip
        if key not in node:
            return
        value = node[key]
        if value is None and nullable:
            return
        if not _is_int(value) or value < minimum:
            expected = f"an integer >= {minimum}" + (" or null" if nullable else "")
            self.add(f"{prefix}.{key}", value, expected + (f" ({what})" if what else ""))

    def number(self, node: Mapping[str, Any], prefix: str, key: str, test: Callable[[float], bool],
               expected: str, nullable: bool = False) -> None:  # fmt: skip
        if key not in node:
            return
        value = node[key]
        if value is None and nullable:
            return
        if not _is_number(value) or not test(value):
            self.add(f"{prefix}.{key}", value, expected + (" or null" if nullable else ""))

    def choice(self, node: Mapping[str, Any], prefix: str, key: str, options: tuple[str, ...]) -> None:
        if key in node and node[key] not in options:
            self.add(f"{prefix}.{key}", node[key], f"one of {', '.join(options)}")


# ---------------------------------------------------------------- constructor arguments
def _constructor_options(factory: type) -> list[str] | None:
    """Keyword arguments of ``factory.__init__``; None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(factory.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _network_classes() -> dict[str, type]:
    from deblur.models.fddn import FDDN
    from deblur.models.msfs_net import MSFSNet
    from deblur.models.nafnet import NAFNet

    return {"msfs": MSFSNet, "fddn": FDDN, "nafnet": NAFNet}


def _loss_classes() -> dict[str, type]:
    from deblur.losses.msfs import MSFSLoss
    from deblur.losses.perceptual import FDDNLoss
    from deblur.losses.pixel import CharbonnierLoss, FFTLoss, L1Loss
    from deblur.losses.psnr import PSNRLoss

    return {"msfs": MSFSLoss, "fddn": FDDNLoss, "psnr": PSNRLoss,
            "l1": L1Loss, "charbonnier": CharbonnierLoss, "fft": FFTLoss}


def _unknown_keys(problems: _Problems, group: str, node: Mapping[str, Any], classes: dict[str, type]) -> bool:
    """Flag ``group.name`` outside ``classes`` and keys that are no argument of the class; False when the
    name is unknown (the value checks are skipped then)."""
    name = node.get("name")
    if name not in classes:
        problems.add(f"{group}.name", name, f"one of {', '.join(sorted(classes))}")
        return False
    options = _constructor_options(classes[name])
    if options is None:
        return True
    for key in node:
        if key not in options and key not in ("name", "_target_"):
            problems.lines.append(
                f"{group}.{key} is not an option of {group}={name}; options: {', '.join(options)}"
            )
    return True


# ---------------------------------------------------------------- groups
def _check_msfs(problems: _Problems, model: Mapping[str, Any]) -> None:
    p = "model"
    width = model.get("width")
    if "width" in model and (not _is_int(width) or width < 2 or width % 2):
        problems.add("model.width", width, "MSFSNet needs an even integer >= 2")
    for key in ("encoder_blocks", "latent_blocks", "decoder_blocks"):
        problems.int_at_least(model, p, key, 0)
    problems.int_at_least(model, p, "reduction", 1)
    problems.choice(model, p, "norm", ("batch", "none"))
    init = model.get("csffm_init", (0.0, 0.0))
    if not (isinstance(init, list | tuple) and len(init) == 2 and all(_is_number(v) for v in init)):
        problems.add("model.csffm_init", init, "two numbers [theta, gamma]")
    size = model.get("out_kernel_size", 3)
    if not _is_int(size) or size < 1 or size % 2 == 0:
        problems.add("model.out_kernel_size", size, "an odd integer >= 1")


def _check_fddn(problems: _Problems, model: Mapping[str, Any]) -> None:
    from deblur.models.distillation import LATENT_VARIANTS

    p = "model"
    problems.int_at_least(model, p, "width", 2)
    problems.int_at_least(model, p, "num_fdb", 1)
    problems.int_at_least(model, p, "decoder_rcabs", 0)
    problems.int_at_least(model, p, "cca_reduction", 1)
    problems.int_at_least(model, p, "rcab_reduction", 1)
    problems.number(model, p, "ratio", lambda v: 0 < v < 1, "a number strictly between 0 and 1")
    problems.choice(model, p, "variant", LATENT_VARIANTS)


def _block_counts(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_is_int(v) and v >= 0 for v in value)


def _check_nafnet(problems: _Problems, model: Mapping[str, Any]) -> None:
    p = "model"
    problems.int_at_least(model, p, "width", 1)
    problems.int_at_least(model, p, "middle_blocks", 0)
    stages = {}
    for key in ("encoder_blocks", "decoder_blocks"):
        if key in model and not _block_counts(model[key]):
            problems.add(f"model.{key}", model[key], "a list of block counts (integers >= 0), one per stage")
        elif key in model:
            stages[key] = len(model[key])
    if len(stages) == 2 and stages["encoder_blocks"] != stages["decoder_blocks"]:
        problems.add(
            "model.decoder_blocks", model["decoder_blocks"],
            f"one count per encoder stage ({stages['encoder_blocks']}, as model.encoder_blocks)",
        )  # fmt: skip


#: value checks of each network (``model.name``), after the constructor-argument check
_MODEL_CHECKS: dict[str, Callable[[_Problems, Mapping[str, Any]], None]] = {
    "msfs": _check_msfs,
    "fddn": _check_fddn,
    "nafnet": _check_nafnet,
}


def _check_model(problems: _Problems, model: Mapping[str, Any]) -> None:
    from deblur.models.custom import is_target_config, target_problems

    if is_target_config(model):  # a user's own network: it imports, and its keys are its arguments
        problems.lines.extend(target_problems(model))
        return
    if not _unknown_keys(problems, "model", model, _network_classes()):
        return
    problems.int_at_least(model, "model", "in_channels", 1)
    _MODEL_CHECKS[model["name"]](problems, model)


def _check_loss(problems: _Problems, loss: Mapping[str, Any]) -> None:
    if not _unknown_keys(problems, "loss", loss, _loss_classes()):
        return
    for key in ("lambda_high", "lambda_low", "lambda_perceptual"):
        problems.number(loss, "loss", key, lambda v: v >= 0, "a number >= 0")
    problems.choice(loss, "loss", "positive", ("output", "target"))
    problems.number(loss, "loss", "eps", lambda v: v > 0, "a number > 0")
    problems.number(loss, "loss", "fft_weight", lambda v: v >= 0, "a number >= 0")


def _check_optim(problems: _Problems, optim: Mapping[str, Any]) -> None:
    from deblur.lit.optim import SCHEDULERS

    p = "optim"
    problems.choice(optim, p, "name", ("adam", "adamw"))
    problems.number(optim, p, "lr", lambda v: v > 0, "a learning rate > 0")
    betas = optim.get("betas", (0.9, 0.999))
    pair = isinstance(betas, list | tuple) and len(betas) == 2
    if not (pair and all(_is_number(b) and 0 <= b < 1 for b in betas)):
        problems.add("optim.betas", betas, "two numbers in [0, 1)")
    problems.number(optim, p, "eps", lambda v: v > 0, "a number > 0")
    problems.number(optim, p, "weight_decay", lambda v: v >= 0, "a number >= 0")
    sched = optim.get("scheduler") or {}
    s = "optim.scheduler"
    problems.choice(sched, s, "name", SCHEDULERS)
    problems.int_at_least(sched, s, "step_size", 1, what="epochs")
    problems.number(sched, s, "gamma", lambda v: v > 0, "a factor > 0")
    problems.int_at_least(sched, s, "total_steps", 1, nullable=True)
    problems.int_at_least(sched, s, "warmup_steps", 0)
    problems.number(sched, s, "min_lr", lambda v: v >= 0, "a learning rate >= 0")
    problems.number(sched, s, "decrement", lambda v: v >= 0, "a number >= 0")
    problems.int_at_least(sched, s, "start_epoch", 0)
    problems.int_at_least(sched, s, "end_epoch", 1, nullable=True)
    start, end = sched.get("start_epoch"), sched.get("end_epoch")
    if sched.get("name") == "linear" and _is_int(start) and _is_int(end) and end <= start:
        problems.add(f"{s}.end_epoch", end, f"after {s}.start_epoch={start} (or null: the run's end)")


def _check_data(problems: _Problems, data: Mapping[str, Any]) -> None:
    p = "data"
    problems.int_at_least(data, p, "crop_size", 1, nullable=True, what="pixels; null = whole images")
    problems.int_at_least(data, p, "val_crop_size", 1, nullable=True, what="pixels; null = whole images")
    problems.int_at_least(data, p, "batch_size", 1)
    problems.int_at_least(data, p, "val_batch_size", 1)
    problems.int_at_least(data, p, "num_workers", 0)
    problems.int_at_least(data, p, "repeats", 1)
    problems.int_at_least(data, p, "pairs_per_photo", 1)
    problems.int_at_least(data, p, "val_pairs_per_photo", 1)
    problems.int_at_least(data, p, "max_side", 1, nullable=True)
    problems.number(data, p, "noise_std", lambda v: v >= 0, "a number >= 0", nullable=True)
    problems.choice(data, p, "on_bad_pair", ("error", "skip"))
    from deblur.data.progressive import schedule_problems

    problems.lines.extend(schedule_problems(data.get("progressive")))


def _check_trainer(problems: _Problems, trainer: Mapping[str, Any]) -> None:
    p = "trainer"
    steps = trainer.get("max_steps", -1)
    if "max_steps" in trainer and (not _is_int(steps) or (steps < 1 and steps != -1)):
        problems.add("trainer.max_steps", steps, "an integer >= 1, or -1 (no step limit: trainer.max_epochs)")
    problems.int_at_least(trainer, p, "max_epochs", 1, nullable=True)
    problems.int_at_least(trainer, p, "accumulate_grad_batches", 1)
    problems.int_at_least(trainer, p, "log_every_n_steps", 1)
    problems.number(trainer, p, "gradient_clip_val", lambda v: v >= 0, "a number >= 0", nullable=True)
    max_time = trainer.get("max_time")
    if isinstance(max_time, str) and not MAX_TIME.match(max_time.strip()):
        problems.add("trainer.max_time", max_time, "DD:HH:MM:SS, e.g. 00:12:00:00 for 12 hours, or null")
    for key in ("limit_train_batches", "val_check_interval"):
        value = trainer.get(key)
        if value is not None and (not _is_number(value) or value <= 0):
            problems.add(f"trainer.{key}", value, "a number > 0 (a fraction or a count of batches) or null")


def check_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise :class:`UserError` listing every bad value of a ``deblur-train`` config, each by its key.

    Checks the network's and the loss's keys against their constructors (``+model.foo=1`` names the
    options of the network), the value ranges of ``model``, ``loss``, ``optim``, ``data`` and ``trainer``,
    and builds the ``augment`` pipeline (whose own checks name ``augment.<section>.<transform>``). Groups
    missing from ``cfg`` are skipped.
    """
    problems = _Problems()
    checks: dict[str, Callable[[_Problems, Mapping[str, Any]], None]] = {
        "model": _check_model,
        "loss": _check_loss,
        "optim": _check_optim,
        "data": _check_data,
        "trainer": _check_trainer,
    }
    for group, check in checks.items():
        node = _plain(cfg.get(group))
        if isinstance(node, Mapping):
            check(problems, node)
    seed = cfg.get("seed")
    if seed is not None and not _is_int(seed):
        problems.add("seed", seed, "an integer")
    from deblur.lit.ema import ema_problems

    problems.lines += ema_problems(cfg)  # ema.decay (deblur.lit.ema)
    augment = _plain(cfg.get("augment"))
    if isinstance(augment, Mapping):
        from deblur.data.augment import make_pipeline

        try:
            make_pipeline(augment)
        except ValueError as err:
            problems.lines.append(str(err))
    if len(problems.lines) == 1:
        raise UserError(problems.lines[0])
    if problems.lines:
        raise UserError(f"{len(problems.lines)} bad config values:\n  " + "\n  ".join(problems.lines))
