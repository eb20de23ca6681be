"""The tiny networks the tests build: one definition, used by every test that needs a small model."""

from __future__ import annotations

from typing import Any

#: the smallest MSFS-Net with every stage present (one block each); as a model config
TINY_MSFS: dict[str, Any] = {
    "name": "msfs", "width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1, "reduction": 4,
}  # fmt: skip


def model_overrides(model: dict[str, Any]) -> list[str]:
    """``model.<key>=<value>`` overrides of a model config (its ``name`` comes from ``model=``)."""
    return [f"model.{key}={value}" for key, value in model.items() if key != "name"]
