"""NAFNet's declaration: its config (the ``model/nafnet_schema`` of ``conf/model/nafnet*.yaml``), its value
rules (used by :class:`deblur.models.nafnet.net.NAFNet` and by ``check_train_config``), its builder and its
checkpoint facts (the architecture keys; the authors' ``{'params': state_dict}`` format)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deblur.config.registry import register_model
from deblur.config.rules import Problems, is_int


@dataclass
class NAFNetConfig:
    """``deblur.models.NAFNet`` arguments (defaults: the GoPro width-32 model, 17.11 M parameters)."""

    name: str = "nafnet"
    in_channels: int = 3
    width: int = 32
    encoder_blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 28])
    middle_blocks: int = 1
    decoder_blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])


def _block_counts(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(is_int(v) and v >= 0 for v in value)


def nafnet_rules(model: Mapping[str, Any]) -> list[str]:
    """The value rules of NAFNet's arguments, as ``model.<key>=<value>: <expected>`` lines."""
    problems, p = Problems(), "model"
    problems.int_at_least(model, p, "in_channels", 1)
    problems.int_at_least(model, p, "width", 1)
    problems.int_at_least(model, p, "middle_blocks", 0)
    stages = {}
    for key in ("encoder_blocks", "decoder_blocks"):
        if key in model and not _block_counts(model[key]):
            problems.add(f"model.{key}", model[key], "a list of block counts (integers >= 0), one per stage")
        elif key in model:
            stages[key] = len(model[key])
    if len(stages) == 2 and stages["encoder_blocks"] != stages["decoder_blocks"]:
        problems.add(
            "model.decoder_blocks", model["decoder_blocks"],
            f"one count per encoder stage ({stages['encoder_blocks']}, as model.encoder_blocks)",
        )  # fmt: skip
    return problems.lines


NAFNET = register_model(
    "nafnet",
    config=NAFNetConfig,
    builder="deblur.models.nafnet.net:NAFNet",
    rules=nafnet_rules,
    architecture_keys=("width", "encoder_blocks", "decoder_blocks", "middle_blocks"),
    weights_formats=("deblur.models.nafnet.weights:AUTHORS_WEIGHTS",),
)
