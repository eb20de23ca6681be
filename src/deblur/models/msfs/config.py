"""MSFS-Net's declaration: its config (the ``model/msfs_schema`` of ``conf/model/msfs*.yaml``), its value
rules (used by :class:`deblur.models.msfs.net.MSFSNet` and by ``check_train_config``), its builder and its
checkpoint facts (the architecture keys; the authors' released ``model.pkl`` format)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deblur.config.registry import register_model
from deblur.config.rules import Problems, is_int, is_number


@dataclass
class MSFSNetConfig:
    """``deblur.models.MSFSNet`` arguments (defaults: the published 21.6 M-parameter model)."""

    name: str = "msfs"
    in_channels: int = 3
    width: int = 64
    encoder_blocks: int = 8
    latent_blocks: int = 10
    decoder_blocks: int = 30
    reduction: int = 16
    use_fsm: bool = True
    use_csffm: bool = True
    # false: no encoder-to-decoder skip at all (ablation=msfs/no_skip; use_csffm is then ignored)
    use_skip: bool = True
    csffm_init: list[float] = field(default_factory=lambda: [-1.0, -0.6])
    norm: str = "batch"
    # the public layout (model=msfs_public, docs/models.md); the defaults are our corrected one
    fsm_conv_shortcut: bool = False
    concat_encoder_first: bool = False
    out_kernel_size: int = 3
    shared_anchor_projection: bool = False
    aux_outputs: bool = False
    skip_first_encoder_blocks: bool = False


def msfs_rules(model: Mapping[str, Any]) -> list[str]:
    """The value rules of MSFS-Net's arguments, as ``model.<key>=<value>: <expected>`` lines."""
    problems, p = Problems(), "model"
    problems.int_at_least(model, p, "in_channels", 1)
    width = model.get("width")
    if "width" in model and (not is_int(width) or width < 2 or width % 2):
        problems.add("model.width", width, "MSFSNet needs an even integer >= 2")
    for key in ("encoder_blocks", "latent_blocks", "decoder_blocks"):
        problems.int_at_least(model, p, key, 0)
    problems.int_at_least(model, p, "reduction", 1)
    problems.choice(model, p, "norm", ("batch", "none"))
    init = model.get("csffm_init", (0.0, 0.0))
    if not (isinstance(init, list | tuple) and len(init) == 2 and all(is_number(v) for v in init)):
        problems.add("model.csffm_init", init, "two numbers [theta, gamma]")
    size = model.get("out_kernel_size", 3)
    if not is_int(size) or size < 1 or size % 2 == 0:
        problems.add("model.out_kernel_size", size, "an odd integer >= 1")
    return problems.lines


MSFS = register_model(
    "msfs",
    config=MSFSNetConfig,
    builder="deblur.models.msfs.net:MSFSNet",
    rules=msfs_rules,
    architecture_keys=("width", "use_fsm", "use_csffm", "encoder_blocks", "decoder_blocks",
                       "fsm_conv_shortcut", "concat_encoder_first", "out_kernel_size",
                       "shared_anchor_projection", "aux_outputs", "skip_first_encoder_blocks", "use_skip"),
    weights_formats=("deblur.models.msfs.public:AUTHORS_WEIGHTS",),
)  # fmt: skip
