"""The tiny networks the tests build: one definition, used by every test that needs a small model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the smallest MSFS-Net with every stage present (one block each); as a model config
TINY_MSFS: dict[str, Any] = {
    "name": "msfs", "width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1, "reduction": 4,
}  # fmt: skip


def model_overrides(model: dict[str, Any]) -> list[str]:
    """``model.<key>=<value>`` overrides of a model config (its ``name`` comes from ``model=``)."""
    return [f"model.{key}={value}" for key, value in model.items() if key != "name"]


def save_tiny_checkpoint(path: Path, model: dict[str, Any] | None = None) -> Path:
    """A random tiny network saved as Lightning saves checkpoints (state_dict + plain hyperparameters)."""
    import torch

    from deblur.lit.restoration import RestorationModule

    torch.manual_seed(0)
    module = RestorationModule(
        model=dict(model or TINY_MSFS), loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-4}
    )
    payload = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0}
    torch.save(payload, path)
    return path
