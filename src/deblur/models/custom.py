"""A user's own network: a model config with ``_target_: their_module.TheirNet`` and its constructor
arguments (``docs/own_network.md``).

Such a config has a ``_target_`` and no ``name`` (the suite's presets are picked by ``name``). The target
is imported with :mod:`importlib` and called with the remaining keys as keyword arguments; before that,
:func:`target_problems` checks that it imports and that every key is a keyword of its signature, so a typo
is one message naming ``model._target_`` or ``model.<key>``, not a traceback from inside their code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from deblur.errors import UserError

TARGET = "_target_"


def is_target_config(cfg: Any) -> bool:
    """True for a model config that names its class by ``_target_`` (and has no preset ``name``)."""
    return isinstance(cfg, Mapping) and TARGET in cfg and cfg.get("name") is None


def model_label(cfg: Mapping[str, Any]) -> str:
    """How runs and tables name a network: the preset's ``name`` or the ``_target_`` path."""
    return str(cfg.get("name") or cfg.get(TARGET))


def import_target(path: Any) -> Callable[..., Any]:
    """The class (or factory) ``"pkg.module.Class"`` names.

    Raises:
        UserError: not a dotted path, the module does not import, or it has no such attribute (the
            message names ``model._target_``).
    """
    if not isinstance(path, str) or "." not in path.strip("."):
        raise UserError(f"model._target_={path!r}: a dotted path 'module.ClassName' of your network")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(
            f"model._target_={path!r}: cannot import module {module_name!r} ({err}); put the folder that "
            "holds it on PYTHONPATH (or run from it)"
        ) from err
    target = getattr(module, attr, None)
    if target is None or not callable(target):
        raise UserError(f"model._target_={path!r}: module {module_name!r} has no class {attr!r}")
    return target


def _arguments(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in cfg.items() if k not in (TARGET, "name")}


def target_problems(cfg: Mapping[str, Any]) -> list[str]:
    """``key=value: expectation`` lines for a ``_target_`` model config (empty when it can be built):
    the target must import, and every other key must be a keyword argument of its constructor."""
    try:
        target = import_target(cfg.get(TARGET))
    except UserError as err:
        return [str(err)]
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return []
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return []
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    options = [p.name for p in params if p.kind in named]
    lines = [
        f"model.{key} is not an argument of {cfg[TARGET]}; its arguments: {', '.join(options) or 'none'}"
        for key in _arguments(cfg) if key not in options
    ]  # fmt: skip
    required = [p.name for p in params if p.default is inspect.Parameter.empty and p.name in options]
    lines += [f"model.{key} is missing: {cfg[TARGET]} needs it" for key in required if key not in cfg]
    return lines


def build_target(cfg: Mapping[str, Any]) -> nn.Module:
    """The network of a ``_target_`` config: ``Target(**other keys)``, checked by :func:`target_problems`.

    Raises:
        UserError: the target does not import, a key is not one of its arguments, its constructor raises
            ``ValueError`` (a value it refuses), or it builds no ``torch.nn.Module``.
    """
    problems = target_problems(cfg)
    if problems:
        raise UserError("; ".join(problems))
    arguments = _arguments(cfg)
    try:
        net = import_target(cfg[TARGET])(**arguments)
    except ValueError as err:  # the network's own value check (a bug elsewhere keeps its traceback)
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        raise UserError(f"model._target_={cfg[TARGET]!r} refused its arguments ({shown}): {err}") from err
    if not isinstance(net, nn.Module):
        raise UserError(f"model._target_={cfg[TARGET]!r} built a {type(net).__name__}, not a torch.nn.Module")
    return net
