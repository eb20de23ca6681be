"""Old state-dict key names still load: one renaming rule per network, applied by ``load_state_dict``.

Each network gives a function ``rename(name) -> name`` from a key as an older version wrote it (without the
network's prefix) to the current one; current names must pass unchanged, so renaming twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

Rename = Callable[[str], str]


def rename_keys(state: Mapping[str, Any], prefix: str, rename: Rename) -> dict[str, Any]:
    """A new dict in the same order with ``rename`` applied to the keys under ``prefix`` (others unchanged).

    Raises:
        ValueError: an old key and another key give the same name.
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = prefix + rename(key[len(prefix) :]) if key.startswith(prefix) else key
        if new in out:
            raise ValueError(f"upgrade_state_dict: old key {key!r} and another key both give {new!r}")
        out[new] = value
    return out


def register_upgrade(module: nn.Module, rename: Rename) -> None:
    """Make ``module.load_state_dict`` rename old keys first (in place, in the dict load works on)."""

    def hook(_: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        names = [k[len(prefix) :] for k in state_dict if k.startswith(prefix)]
        if any(rename(name) != name for name in names):
            upgraded = rename_keys(state_dict, prefix, rename)
            state_dict.clear()
            state_dict.update(upgraded)

    module.register_load_state_dict_pre_hook(hook)
