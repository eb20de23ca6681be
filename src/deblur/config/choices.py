"""Command-line overrides before Hydra composes: group choices, and flat job folder names.

* :func:`check_group_choices`: Hydra lists the available options for an unknown choice of a flat group
  (``model=foo``), among them the schema nodes of the ConfigStore (``fddn_schema``, which are no choice
  for a user), and none for a nested one (``ablation=msfs/foo``). This check runs first and lists the
  options of every group under ``conf/``, schema nodes left out.
* :func:`flat_name` (the ``${deblur.flat:...}`` resolver, registered by :func:`register_resolvers`): a
  sweep's job folder named after its overrides stays one folder (``ablation=msfs/full`` ->
  ``ablation=msfs-full``), and short enough for any file system.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from deblur.config.registry import GROUPS, components
from deblur.paths import CONF_DIR

_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<group>[A-Za-z_][\w/]*)=(?P<value>.*)$")
_CHOICE_SWEEP = re.compile(r"^choice\((?P<items>.*)\)$")
#: ConfigStore nodes that type a group's options; never an option themselves
SCHEMA_SUFFIX = "_schema"
#: longest job folder name :func:`flat_name` returns (file systems allow 255 bytes)
MAX_NAME = 120


def group_options(conf_dir: Path, group: str) -> list[str]:
    """All options of config group ``group`` (``msfs/full`` style for nested folders), sorted; schema
    nodes (``*_schema``) are left out."""
    root = conf_dir / group
    options = (str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    return sorted(o for o in options if not o.endswith(SCHEMA_SUFFIX))


#: what else a group's node may name besides its declared components
_ALSO = {"model": " (or _target_: your own network, docs/own_network.md)"}


def component_lines(group: str) -> list[str]:
    """``    model.name: fddn, msfs, nafnet ...``: the declared components (:mod:`deblur.config.registry`) a
    ``model`` or ``loss`` node picks by ``name`` (``--help`` lists them under the group); none for other
    groups."""
    if group not in GROUPS:
        return []
    return [f"    {group}.name: {', '.join(sorted(components(group)))}{_ALSO.get(group, '')}"]


def _user_folders(root: DictConfig) -> list[Path]:
    """The config folders given with ``--config-dir`` (their options are listed with ``conf/``'s)."""
    sources = OmegaConf.select(root, "hydra.runtime.config_sources", default=None) or []
    return [Path(str(s.path)) for s in sources if s.provider == "command-line" and s.schema == "file"]


def group_lines(root: DictConfig) -> list[str]:
    """``group: option, option ... (now: choice)`` for each config group of ``conf/`` the command
    composes."""
    choices = OmegaConf.select(root, "hydra.runtime.choices", default=None) or {}
    folders = [CONF_DIR, *_user_folders(root)]
    lines = []
    for group in sorted(str(g) for g in choices):
        dirs = [d for d in folders if (d / group).is_dir()]
        if group == "hydra" or group.startswith("hydra/") or not dirs:
            continue
        options = ", ".join(sorted({option for d in dirs for option in group_options(d, group)}))
        lines += [f"  {group}: {options}  (now: {choices[group] or 'none'})", *component_lines(group)]
    return lines


def _choices(value: str) -> list[str] | None:
    """The choices of an override value: ``a``, ``a,b`` or ``choice(a, b)``; None for other sweep
    functions (``glob(...)``, ``range(...)``) and interpolations, which Hydra resolves."""
    match = _CHOICE_SWEEP.match(value.strip())
    if match:
        value = match["items"]
    elif "(" in value or "$" in value:
        return None
    return [item.strip().strip("'\"") for item in value.split(",")]


def check_group_choices(overrides: Iterable[str], conf_dir: Path, extra_dirs: Iterable[Path] = ()) -> None:
    """Raise ValueError naming the group and listing its options for any unknown choice.

    Handles ``group=a``, multirun lists ``group=a,b`` and ``group=choice(a,b)``; leaves other sweep
    functions (``glob(...)``), ``null``, non-group keys (``model.width=8``) and Hydra's own groups
    (``hydra/launcher=joblib``, whose options are partly Hydra's plugins) to Hydra. ``extra_dirs``: the
    user's config folders (``--config-dir``), whose options count too.
    """
    extra_dirs = list(extra_dirs)
    for override in overrides:
        match = _OVERRIDE.match(override)
        if not match or match["prefix"] == "~":
            continue
        group, value = match["group"], match["value"]
        hydras = group.startswith("hydra/")  # Hydra's own groups: Hydra lists their options
        dirs = [d for d in (conf_dir, *extra_dirs) if (d / group).is_dir()]
        if hydras or not dirs or value in ("null", ""):
            continue
        choices = _choices(value)
        if choices is None:
            continue
        options = sorted({option for d in dirs for option in group_options(d, group)})
        for choice in choices:
            if choice not in options:
                raise ValueError(
                    f"{group}={choice!r} is not an option of '{group}'; options: {', '.join(options)}"
                )


def flat_name(text: str | None) -> str:
    """A one-folder name for ``text`` (a sweep job's ``override_dirname``): path separators become ``-``,
    a leading dot is dropped, and a name longer than :data:`MAX_NAME` characters is cut and ended by a
    hash of the whole text (still unique, still readable).

    Examples:
        >>> flat_name("ablation=msfs/full,seed=1")
        'ablation=msfs-full,seed=1'
        >>> len(flat_name("x" * 500)) == MAX_NAME
        True
    """
    name = re.sub(r"[/\\]+", "-", str(text or "")).lstrip(".")
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - len(digest) - 1]}~{digest}"
    return name


def register_resolvers() -> None:
    """Register ``${deblur.flat:...}`` (:func:`flat_name`) with OmegaConf; idempotent."""
    if not OmegaConf.has_resolver("deblur.flat"):
        OmegaConf.register_new_resolver("deblur.flat", flat_name)
