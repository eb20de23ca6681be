"""Recognise and read the NAFNet authors' released weights (megvii-research/NAFNet, BasicSR format).

Their files (``NAFNet-GoPro-width32.pth``, ``NAFNet-GoPro-width64.pth``, ``NAFNet-SIDD-width64.pth`` ...)
hold ``{"params": state_dict}`` with the key names of :class:`deblur.models.nafnet.net.NAFNet`
(``intro.weight``, ``encoders.3.27.sca.1.weight``, ``middle_blks.0.beta``, ``ups.0.0.weight`` ...), so no
renaming is needed: the state dict loads as it is. The network's configuration is read off the state dict
(:func:`nafnet_config_from_state`), so a width-64 file builds the width-64 network.

Usage::

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if is_nafnet_checkpoint(obj):
        state = nafnet_state(obj)
        net = build_model(nafnet_config_from_state(state))
        net.load_state_dict(state, strict=True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from deblur.config.registry import WeightsFormat

#: keys every NAFNet state dict has
_MARKERS = ("intro.weight", "intro.bias", "ending.weight", "ending.bias")
_STAGE = re.compile(r"^(encoders|decoders|downs|ups)\.(\d+)\.")
_BLOCK = re.compile(r"^(encoders|decoders)\.(\d+)\.(\d+)\.|^middle_blks\.(\d+)\.")


def _strip_module_prefix(state: Mapping[str, Any]) -> Mapping[str, Any]:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def is_nafnet_checkpoint(obj: Any) -> bool:
    """True when ``obj`` (a ``torch.load`` result) is a NAFNet file in the authors' format: a mapping whose
    ``params`` entry is a mapping of tensors with NAFNet's key names (``intro.*``, ``ending.*``,
    ``middle_blks.*``), every key optionally prefixed ``module.``. Never raises."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("params"), Mapping):
        return False
    state = obj["params"]
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return False
    keys = _strip_module_prefix(state).keys()
    return all(m in keys for m in _MARKERS) and any(k.startswith("middle_blks.") for k in keys)


def nafnet_state(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of a file :func:`is_nafnet_checkpoint` accepts (``module.`` stripped); ValueError
    otherwise."""
    if not is_nafnet_checkpoint(obj):
        raise ValueError("not a NAFNet weights file of the authors' format ({'params': NAFNet state dict})")
    return dict(_strip_module_prefix(obj["params"]))


def nafnet_config_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The ``model`` config (``name: nafnet``) whose network has the keys of ``state``.

    ``in_channels`` and ``width`` from ``intro.weight`` (width, in_channels, 3, 3); the stages from the
    indices of ``downs.i`` / ``ups.i``, the blocks per stage from ``encoders.i.j`` / ``decoders.i.j`` /
    ``middle_blks.j``. Whether every weight is there and of the right shape is the strict load's check.
    """
    intro = state["intro.weight"]
    if intro.ndim != 4:
        raise ValueError(f"intro.weight should be a 4-D conv weight, got shape {tuple(intro.shape)}")
    stages: dict[str, int] = {"encoders": 0, "decoders": 0, "downs": 0, "ups": 0}
    blocks: dict[tuple[str, int], int] = {}
    for key in state:
        stage = _STAGE.match(key)
        if stage:
            stages[stage[1]] = max(stages[stage[1]], int(stage[2]) + 1)
        block = _BLOCK.match(key)
        if block:
            where = (block[1], int(block[2])) if block[1] else ("middle_blks", 0)
            index = int(block[3] if block[1] else block[4])
            blocks[where] = max(blocks.get(where, 0), index + 1)
    encoder_stages = max(stages["encoders"], stages["downs"])
    decoder_stages = max(stages["decoders"], stages["ups"])
    return {
        "name": "nafnet",
        "in_channels": int(intro.shape[1]),
        "width": int(intro.shape[0]),
        "encoder_blocks": [blocks.get(("encoders", i), 0) for i in range(encoder_stages)],
        "middle_blocks": blocks.get(("middle_blks", 0), 0),
        "decoder_blocks": [blocks.get(("decoders", i), 0) for i in range(decoder_stages)],
    }


def _read_nafnet(obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = nafnet_state(obj)
    return state, nafnet_config_from_state(state)


#: the NAFNet authors' ``{'params': state_dict}`` files as :func:`deblur.checkpoints.load_model` reads
#: them (declared in :mod:`deblur.models.nafnet.config`): the NAFNet their keys describe
AUTHORS_WEIGHTS = WeightsFormat(
    label="the NAFNet authors' weights format", recognise=is_nafnet_checkpoint, read=_read_nafnet
)
