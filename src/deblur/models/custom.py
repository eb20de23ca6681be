"""A user's own network: a model config with ``_target_: their_module.TheirNet`` and its constructor
arguments (``docs/own_network.md``). Recognising and checking such a config is
:mod:`deblur.config.target`; this module builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from deblur.config.target import (
    TARGET,
    import_target,
    is_target_config,
    model_label,
    target_arguments,
    target_problems,
)
from deblur.errors import UserError

__all__ = ["TARGET", "build_target", "import_target", "is_target_config", "model_label", "target_problems"]


def build_target(cfg: Mapping[str, Any]) -> nn.Module:
    """The network of a ``_target_`` config: ``Target(**other keys)``, checked by :func:`target_problems`.

    Raises:
        UserError: the target does not import, a key is not one of its arguments, its constructor raises
            ``ValueError`` (a value it refuses), or it builds no ``torch.nn.Module``.
    """
    problems = target_problems(cfg)
    if problems:
        raise UserError("; ".join(problems))
    arguments = target_arguments(cfg)
    try:
        net = import_target(cfg[TARGET])(**arguments)
    except ValueError as err:  # the network's own value check (a bug elsewhere keeps its traceback)
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        raise UserError(f"model._target_={cfg[TARGET]!r} refused its arguments ({shown}): {err}") from err
    if not isinstance(net, nn.Module):
        raise UserError(f"model._target_={cfg[TARGET]!r} built a {type(net).__name__}, not a torch.nn.Module")
    net.register_forward_hook(_check_output)
    return net


def _check_output(net: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    """Forward hook: the network must return one tensor of its input's shape, (N, 3, H, W) -> (N, 3, H, W),
    as the losses, metrics and inference read it; anything else (a tuple of scales, a dict) is a user
    error naming the class, not a traceback from inside a loss."""
    blurry = args[0] if args else None
    if not isinstance(blurry, torch.Tensor):
        return
    if isinstance(output, torch.Tensor) and output.shape == blurry.shape:
        return
    tensor = isinstance(output, torch.Tensor)
    got = f"a tensor of shape {tuple(output.shape)}" if tensor else f"a {type(output).__name__}"
    name = f"{type(net).__module__}.{type(net).__qualname__}"
    raise UserError(
        f"model._target_={name!r}: forward returned {got}; a network returns one tensor of its input's shape "
        f"{tuple(blurry.shape)} (N, 3, H, W): the deblurred image (docs/own_network.md)"
    )
