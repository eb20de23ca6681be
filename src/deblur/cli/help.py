"""``deblur-<cmd> --help``: what the command does, its required keys, examples, then its options.

Hydra prints ``hydra.help.template`` for ``--help``; ``conf/hydra/default.yaml`` sets it to
``${deblur.help:${task_name}}`` (registered by :func:`register_help_resolver`, which every command's entry
point calls), which :func:`command_help` fills in from the command's module docstring
(``deblur.cli.<task>``) and the composed config: the keys still ``???`` (required), and the config groups
the command composes with their options (no ConfigStore ``*_schema`` node) and the declared networks and
losses (``model.name``, ``loss.name``). Hydra's ``$FLAGS_HELP`` and ``$CONFIG`` follow.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deblur.config.choices import group_lines

_ROLE = re.compile(r":\w+:`~?([^`]+)`")  # :func:`deblur.x` -> deblur.x


def _plain_text(doc: str) -> str:
    """A module docstring as terminal text: no reST roles or double backquotes; ``$`` escaped for Hydra's
    ``string.Template``."""
    text = _ROLE.sub(r"\1", inspect.cleandoc(doc)).replace("``", "").replace("\\\\\n", "\\\n")
    return text.replace("$", "$$")


def required_keys(root: DictConfig) -> list[str]:
    """The keys of the command's config (``hydra`` left out) whose value is still ``???``."""
    keys: list[str] = []
    for key in root:
        if key == "hydra":
            continue
        node = root._get_node(key)
        if isinstance(node, DictConfig):
            keys += [str(k) for k in OmegaConf.missing_keys(node)]  # full keys (data.root)
        elif OmegaConf.is_missing(root, key):
            keys.append(str(key))
    return sorted(keys)


def command_help(task: str, *, _root_: Any) -> str:
    """The ``--help`` template of ``deblur-<task>`` (a ``string.Template``: Hydra substitutes
    ``$FLAGS_HELP`` and ``$CONFIG``)."""
    doc = importlib.import_module(f"deblur.cli.{task}").__doc__ or f"deblur-{task}"
    about, _, rest = _plain_text(doc).partition("\n\n")
    required = required_keys(_root_)
    needs = ", ".join(required) if required else "none (the defaults run as they are)"
    groups = "\n".join(group_lines(_root_)) or "  (none)"
    return (
        f"{about}\n\nRequired keys: {needs}\n\n{rest}\n\n"
        f"== Configuration groups (group=option) ==\n{groups}\n\n"
        f"== Flags ==\n$FLAGS_HELP\n"
        f'Tab completion of keys and options (bash): eval "$$(deblur-{task} -sc install=bash)"\n\n'
        f"== Config (override any key: key=value; add one: +key=value) ==\n$CONFIG"
    )


def register_help_resolver() -> None:
    """Register ``${deblur.help:<task>}`` (:func:`command_help`) with OmegaConf; idempotent."""
    if not OmegaConf.has_resolver("deblur.help"):
        OmegaConf.register_new_resolver("deblur.help", command_help)
