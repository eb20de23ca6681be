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

import re
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deblur.config.registry import component, components, config_checks, group_checks, resolve
from deblur.config.rules import Problems, is_int, is_number
from deblur.config.schema import SCHEDULERS
from deblur.config.target import is_target_config, named_target_problem, target_problems
from deblur.errors import UserError

#: Lightning's ``max_time`` string form
MAX_TIME = re.compile(r"^(\d+):(\d\d):(\d\d):(\d\d)$")


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


_is_int, _is_number, _Problems = is_int, is_number, Problems


# ---------------------------------------------------------------- declared components
def _check_component(problems: _Problems, group: str, node: Mapping[str, Any]) -> None:
    """``group.name`` must name a declared component (:mod:`deblur.config.registry`), every other key must
    be an option of its schema, and its values must pass its rules."""
    name = node.get("name")
    entry = component(group, name)
    if entry is None:
        problems.add(f"{group}.name", name, f"one of {', '.join(sorted(components(group)))}")
        return
    options = entry.options()
    for key in node:
        if key not in options and key not in ("name", "_target_"):
            problems.lines.append(
                f"{group}.{key} is not an option of {group}={name}; options: {', '.join(options) or 'none'}"
            )
    problems.lines.extend(entry.problems(node))


def _check_model(problems: _Problems, model: Mapping[str, Any]) -> None:
    if is_target_config(model):  # a user's own network: it imports, and its keys are its arguments
        problems.lines.extend(target_problems(model))
        return
    if "_target_" in model and component("model", model.get("name")) is None:
        problems.lines.append(named_target_problem(model))
        return
    _check_component(problems, "model", model)


def _check_loss(problems: _Problems, loss: Mapping[str, Any]) -> None:
    _check_component(problems, "loss", loss)


def _check_pairing(problems: _Problems, model: Mapping[str, Any], loss: Mapping[str, Any]) -> None:
    """A loss declared for some networks only (``loss=msfs``: MSFS-Net's encoder) refuses any other."""
    entry = component("loss", loss.get("name"))
    if entry is None or not entry.networks:
        return
    network = model.get("name") if not is_target_config(model) else None
    if network in entry.networks:
        return
    label = model.get("name") or model.get("_target_")
    fits = sorted(n for n, e in components("loss").items() if not e.networks or network in e.networks)
    problems.lines.append(
        f"loss.name={entry.name}: trains only model.name={' | '.join(entry.networks)} (it reads that "
        f"network's own encoder), not model {label!r}; losses for it: {', '.join(fits)}"
    )


def _check_optim(problems: _Problems, optim: Mapping[str, Any]) -> None:
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

    Checks the network's and the loss's keys against their declared schemas (``+model.foo=1`` names the
    options of the network) and their value rules (:mod:`deblur.config.registry`), the value ranges of
    ``optim``, ``data`` and ``trainer``, and runs the registered group checks (``augment``: building the
    pipeline, whose own checks name ``augment.<section>.<transform>``). Groups missing from ``cfg`` are
    skipped.
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
    model, loss = _plain(cfg.get("model")), _plain(cfg.get("loss"))
    if isinstance(model, Mapping) and isinstance(loss, Mapping):
        _check_pairing(problems, model, loss)
    seed = cfg.get("seed")
    if seed is not None and not _is_int(seed):
        problems.add("seed", seed, "an integer")
    for path in config_checks():  # e.g. ema.decay (deblur.lit.ema): checks that read the whole config
        problems.lines += resolve(path)(cfg)
    for group, paths in group_checks().items():  # e.g. augment: deblur.data.augment builds its pipeline
        node = _plain(cfg.get(group))
        if isinstance(node, Mapping):
            for path in paths:
                try:
                    resolve(path)(node)
                except ValueError as err:
                    problems.lines.append(str(err))
    if len(problems.lines) == 1:
        raise UserError(problems.lines[0])
    if problems.lines:
        raise UserError(f"{len(problems.lines)} bad config values:\n  " + "\n  ".join(problems.lines))
