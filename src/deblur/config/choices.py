"""Check config-group choices on the command line before Hydra composes.

Hydra lists the available options for an unknown choice of a flat group (``model=foo``) but not for a
nested one (``ablation=msfs/foo``). This check lists them for every group under ``conf/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<group>[A-Za-z_][\w/]*)=(?P<value>.*)$")


def group_options(conf_dir: Path, group: str) -> list[str]:
    """All options of config group ``group`` (``msfs/full`` style for nested folders), sorted."""
    root = conf_dir / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def check_group_choices(overrides: Iterable[str], conf_dir: Path) -> None:
    """Raise ValueError naming the group and listing its options for any unknown choice.

    Handles ``group=a`` and multirun lists ``group=a,b``; leaves sweeps with functions (``choice(...)``),
    ``null`` and non-group keys (``model.width=8``) to Hydra.
    """
    for override in overrides:
        match = _OVERRIDE.match(override)
        if not match or match["prefix"] == "~":
            continue
        group, value = match["group"], match["value"]
        if not (conf_dir / group).is_dir() or "(" in value or value in ("null", ""):
            continue
        options = group_options(conf_dir, group)
        for choice in value.split(","):
            if choice not in options:
                raise ValueError(
                    f"{group}={choice!r} is not an option of '{group}'; options: {', '.join(options)}"
                )
