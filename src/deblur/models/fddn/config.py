"""FDDN's declaration: its config (the ``model/fddn_schema`` of ``conf/model/fddn*.yaml``), its value rules
(used by :class:`deblur.models.fddn.net.FDDN` and by ``check_train_config``), its builder and its
checkpoint facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deblur.config.registry import register_model
from deblur.config.rules import Problems, is_int, is_number
from deblur.models.channels import split_channels

#: the latent blocks of FDDN's Table 5 rows (``model.variant``)
LATENT_VARIANTS = ("full", "no_distillation", "no_fsb", "no_fdb")


@dataclass
class FDDNConfig:
    """``deblur.models.FDDN`` arguments (defaults: the paper's 8.08 MB model)."""

    name: str = "fddn"
    in_channels: int = 3
    width: int = 12
    num_fdb: int = 16
    ratio: float = 0.5
    variant: str = "full"
    decoder_rcabs: int = 1
    cca_reduction: int = 16
    rcab_reduction: int = 16


def fddn_rules(model: Mapping[str, Any]) -> list[str]:
    """The value rules of FDDN's arguments, as ``model.<key>=<value>: <expected>`` lines."""
    problems, p = Problems(), "model"
    problems.int_at_least(model, p, "in_channels", 1)
    problems.int_at_least(model, p, "width", 2, what="the first inception block needs 2*width >= 4")
    problems.int_at_least(model, p, "num_fdb", 1)
    problems.int_at_least(model, p, "decoder_rcabs", 0)
    problems.int_at_least(model, p, "cca_reduction", 1)
    problems.int_at_least(model, p, "rcab_reduction", 1)
    problems.number(model, p, "ratio", lambda v: 0 < v < 1, "a number strictly between 0 and 1")
    problems.choice(model, p, "variant", LATENT_VARIANTS)
    width, ratio = model.get("width"), model.get("ratio")
    if is_int(width) and width >= 2 and is_number(ratio) and 0 < ratio < 1:
        high, low = split_channels(4 * width, ratio)  # every FSB splits the latent width, 4 * width
        if high < 1 or low < 1:
            latent = f"the latent width (4 x width={width} = {4 * width} channels)"
            expected = f"a share leaving both FSB parts of {latent} at least 1 channel (gives {high} + {low})"
            problems.add("model.ratio", ratio, expected)
    return problems.lines


FDDN = register_model(
    "fddn",
    config=FDDNConfig,
    builder="deblur.models.fddn.net:FDDN",
    rules=fddn_rules,
    architecture_keys=("width", "variant", "num_fdb"),
)
