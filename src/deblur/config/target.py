"""A user's own network named by ``_target_`` in its model config (``docs/own_network.md``): recognising
such a config and checking it before anything is built (no network code is imported here but theirs).

Such a config has a ``_target_`` and no ``name`` (the suite's networks are picked by ``name``). The target
is imported with :mod:`importlib`; :func:`target_problems` checks that it imports and that every key is a
keyword of its signature, so a typo is one message naming ``model._target_`` or ``model.<key>``, not a
traceback from inside their code. :func:`deblur.models.custom.build_target` builds it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from deblur.config.rules import is_int, is_number
from deblur.errors import UserError

TARGET = "_target_"


def is_target_config(cfg: Any) -> bool:
    """True for a model config that names its class by ``_target_`` (and has no preset ``name``)."""
    return isinstance(cfg, Mapping) and TARGET in cfg and cfg.get("name") is None


def named_target_problem(cfg: Mapping[str, Any]) -> str:
    """The line for a config with a ``_target_`` and a ``name`` that is no built-in network: the name makes
    it a preset's config, so say that a ``_target_`` config has none."""
    return (
        f"model.name={cfg.get('name')!r}: a model config with _target_ ({cfg.get(TARGET)}) has no name; "
        "remove model.name (a name picks a built-in network instead)"
    )


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


def target_arguments(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a ``_target_`` config: every key but ``_target_`` and ``name``."""
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
        for key in target_arguments(cfg) if key not in options
    ]  # fmt: skip
    required = [p.name for p in params if p.default is inspect.Parameter.empty and p.name in options]
    lines += [f"model.{key} is missing: {cfg[TARGET]} needs it" for key in required if key not in cfg]
    by_name = {p.name: p for p in params}
    for key, value in target_arguments(cfg).items():
        kind = _scalar_kind(by_name[key]) if key in by_name else None
        if kind is not None and not _fits(value, kind, by_name[key].default):
            shown = repr(value) if isinstance(value, str) else value
            lines.append(f"model.{key}={shown}: {_WORDS[kind]} ({cfg[TARGET]} takes {key}: {kind})")
    return lines


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _scalar_kind(param: inspect.Parameter) -> str | None:
    """``int`` / ``float`` / ``bool`` / ``str`` when the argument's annotation (or, without one, its
    default) says it is that scalar; None for anything else (lists, unions, classes): the call decides."""
    annotation = param.annotation
    if isinstance(annotation, str) and annotation.strip() in _KINDS:
        return annotation.strip()
    if annotation in _KINDS.values():
        return annotation.__name__
    default = param.default
    if annotation is inspect.Parameter.empty and type(default) in _KINDS.values():
        return type(default).__name__
    return None


def _fits(value: Any, kind: str, default: Any) -> bool:
    """A config value is of the argument's scalar kind (an int is a float; null fits a None default)."""
    if value is None:
        return default is None
    if kind == "int":
        return is_int(value)
    if kind == "float":
        return is_number(value)
    return isinstance(value, _KINDS[kind])
