"""Check a command line's overrides before Hydra runs: one message per mistake, naming the key.

Hydra reports a wrong override with its own advice (``To append to your config use +trainer.max_step=10``)
and exit code 1, and a multirun composes each job only when it starts, so a bad value in the second job of
a sweep fails after the first job has trained. :func:`check_command_line` composes the command's config
once per sweep value (in-process, about 0.1 s each) and turns Hydra's and OmegaConf's errors into a
:class:`deblur.errors.UserError` that names the override and, for an unknown key, the nearest valid keys
(``trainer.max_step`` -> ``did you mean trainer.max_steps?``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
)

from deblur.config.choices import SCHEMA_SUFFIX, check_group_choices
from deblur.config.schema import register_configs
from deblur.errors import UserError
from deblur.paths import CONF_DIR


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def _key_message(override: str, cause: OmegaConfBaseException) -> str:
    """``<override>: <parent> has no key '<key>'; did you mean <nearest>?`` (or the parent's keys)."""
    full_key = str(cause.full_key or cause.key)
    parent = full_key.rpartition(".")[0]
    keys = [str(k) for k in cause.parent_node.keys()] if cause.parent_node is not None else []
    keys = [k for k in keys if k != "hydra"]
    where = f"'{parent}'" if parent else "the config"
    nearest = difflib.get_close_matches(str(cause.key), keys, n=3, cutoff=0.6)
    prefix = f"{parent}." if parent else ""
    if nearest:
        hint = "nearest valid keys: " + ", ".join(prefix + k for k in nearest)
    else:
        hint = "its keys: " + ", ".join(sorted(keys))
    return f"{override}: {where} has no key '{cause.key}'; {hint}"


def describe_error(err: Exception, override: str | None = None) -> str:
    """One line for Hydra's / OmegaConf's error ``err`` about ``override`` (the override text, if known)."""
    cause = err.__cause__
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.key is not None:
        return _key_message(override or str(cause.full_key), cause)
    if isinstance(cause, OmegaConfBaseException):
        return f"{override or cause.full_key}: {_first_line(cause.msg or str(cause))}"
    if isinstance(err, MissingConfigException) and err.options:
        options = sorted(o for o in err.options if not o.endswith(SCHEMA_SUFFIX))
        return f"{_first_line(str(err))}; options: {', '.join(options)}"
    text = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    return f"{override}: {text}" if override and override not in text else text


def _culprit(err: Exception, overrides: Sequence[str]) -> str | None:
    """The override the error is about: the one whose key is the error's ``full_key`` or that its message
    quotes."""
    cause = err.__cause__
    full_key = str(getattr(cause, "full_key", "") or "")
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if full_key and key == full_key:
            return override
    for override in overrides:
        if override in str(err) or override.lstrip("+~").split("=", 1)[0] in str(err):
            return override
    return None


def _variants(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: one for a single run; for a multirun, the k-th value of every
    swept override in the k-th list (so each value is composed once). Sweeps Hydra cannot enumerate
    here (``interval(...)`` for Optuna, ``glob(...)``) are left to Hydra."""
    parser = OverridesParser.create()
    columns: list[list[str]] = []
    for text in overrides:
        try:
            parsed = parser.parse_override(text)
        except HydraException as err:
            raise UserError(f"{text}: cannot parse this override: {_first_line(str(err))}") from None
        if not (multirun and parsed.is_sweep_override()):
            columns.append([text])
            continue
        try:
            values = list(parsed.sweep_string_iterator())
        except Exception:  # noqa: BLE001 - interval(), glob(): Hydra's sweeper expands them
            continue
        columns.append([f"{parsed.get_key_element()}={value}" for value in values] or [text])
    width = max((len(c) for c in columns), default=1)
    return [[c[min(k, len(c) - 1)] for c in columns] for k in range(width)]


def check_overrides(
    config_name: str, overrides: Sequence[str], multirun: bool = False, config_dir: str | None = None
) -> None:
    """Raise :class:`UserError` naming the override for any override Hydra would refuse.

    Args:
        config_name: the command's config (``train``, ``predict`` ...; see ``conf/``).
        overrides: the command line's overrides (``trainer.max_steps=10``, ``+new.key=1``, ``model=a,b``).
        multirun: the command line has ``-m``: every value of a swept override is checked.
        config_dir: the user's config folder (``--config-dir``, e.g. holding ``model/mynet.yaml``),
            searched as Hydra searches it.
    """
    extra = [Path(config_dir).resolve()] if config_dir else []
    if extra and not extra[0].is_dir():
        raise UserError(f"--config-dir {config_dir}: no such folder")
    try:
        check_group_choices(overrides, CONF_DIR, extra)
    except ValueError as err:
        raise UserError(str(err)) from None
    register_configs()
    # Hydra searches conf/ and then the user's folder; the primary config is read from the folder holding
    # it (a user's own primary config, --config-name, lives in theirs), the other one searched after it
    primary, other = CONF_DIR, extra[0] if extra else None
    if other is not None and (other / f"{config_name}.yaml").is_file():
        primary, other = other, CONF_DIR
    search = [f"hydra.searchpath=[file://{other}]"] if other is not None else []
    for variant in _variants(overrides, multirun):
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
                compose(config_name, overrides=[*search, *variant], return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as err:
            raise UserError(describe_error(err, _culprit(err, variant))) from None
