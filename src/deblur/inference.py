"""Run a restoration network on whole images of any size: padding, and tiling for large images.

* :func:`pad_and_run`: reflect-pad (N, C, H, W) to the network's ``multiple`` attribute (8 for MSFS-Net,
  4 for FDDN, 1 when absent), run, crop back to (H, W).
* :func:`tiled_inference`: cut the image into ``tile`` x ``tile`` windows overlapping by at least
  ``tile_overlap`` pixels (the last window of a row/column is aligned to the image border), run each with
  :func:`pad_and_run`, and blend the overlaps with a raised-cosine weight window. A window's ramp is only
  applied on sides that face a neighbouring window; sides on the image border keep full weight. The output
  has the input's size; an image no larger than ``tile`` runs in one piece.

Neither function changes the grad mode: call them under ``torch.inference_mode()`` for inference (or
:func:`deblur.speedups.inference_context`, which adds bf16 autocast when asked for).

:func:`load_network` rebuilds a network from a Lightning checkpoint or a plain state dict, always with
``torch.load(..., weights_only=True)`` so that an untrusted file cannot run code.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblur.models.padding import crop_to, pad_to_multiple

log = logging.getLogger(__name__)


def pad_and_run(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """``net(image)`` for any (N, C, H, W) size: pad to ``net.multiple``, run, crop back to (H, W)."""
    if image.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(image.shape)}")
    multiple = int(getattr(net, "multiple", 1) or 1)
    padded, size = pad_to_multiple(image, multiple)
    return crop_to(net(padded), size)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``tile`` pixels covering ``length`` with at least ``overlap`` overlap.

    Windows step by ``tile - overlap``; the last one ends at the border (so it may overlap more).
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp(overlap: int, device: torch.device | None = None) -> torch.Tensor:
    """Rising raised-cosine ramp of ``overlap`` samples, strictly inside (0, 1)."""
    i = torch.arange(overlap, dtype=torch.float32, device=device)
    return 0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / overlap)


def _window_1d(size: int, ramp_before: int, ramp_after: int, device: torch.device) -> torch.Tensor:
    """1-D weights of one window: raised-cosine ramps of the given lengths at its two ends, 1 elsewhere."""
    w = torch.ones(size, dtype=torch.float32, device=device)
    if ramp_before > 0:
        w[:ramp_before] = ramp(ramp_before, device)
    if ramp_after > 0:
        w[size - ramp_after :] = torch.flip(ramp(ramp_after, device), dims=[0])
    return w


def _axis_windows(
    length: int, tile: int, overlap: int, device: torch.device
) -> list[tuple[int, torch.Tensor]]:
    """(start, 1-D weight) for every window along one axis; ramps span the actual overlap with neighbours."""
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    windows = []
    for k, start in enumerate(starts):
        before = starts[k - 1] + size - start if k > 0 else 0  # overlap with the previous window
        after = start + size - starts[k + 1] if k + 1 < len(starts) else 0
        # ramps never longer than the requested overlap, nor than half a window (keeps a flat centre)
        before = min(before, overlap, size // 2)
        after = min(after, overlap, size // 2)
        windows.append((start, _window_1d(size, before, after, device)))
    return windows


def tiled_inference(net: nn.Module, image: torch.Tensor, tile: int, tile_overlap: int = 32) -> torch.Tensor:
    """Run ``net`` on (1, C, H, W) ``image`` in overlapping ``tile`` x ``tile`` windows, blended smoothly.

    ``0 <= tile_overlap < tile``. Returns a (1, C', H, W) tensor (C' = the network's output channels) on
    the image's device, in float32. Images no larger than ``tile`` in both sides run in one piece.
    Each tile's output is cast to float32 before blending, so under bf16 autocast the blend stays fp32;
    a channels_last ``image`` gives channels_last tiles.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"tiled_inference expects one image (1, C, H, W), got shape {tuple(image.shape)}")
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or not 0 <= tile_overlap < tile:
        raise ValueError(f"tile_overlap must be an integer in [0, tile={tile}), got {tile_overlap!r}")
    h, w = image.shape[-2:]
    if h <= tile and w <= tile:
        return pad_and_run(net, image).float()

    rows = _axis_windows(h, tile, tile_overlap, image.device)
    cols = _axis_windows(w, tile, tile_overlap, image.device)
    output: torch.Tensor | None = None
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=image.device)
    for top, wy in rows:
        for left, wx in cols:
            th, tw = wy.numel(), wx.numel()
            pred = pad_and_run(net, image[..., top : top + th, left : left + tw]).float()
            if output is None:
                output = torch.zeros((1, pred.shape[1], h, w), dtype=torch.float32, device=image.device)
            window = (wy[:, None] * wx[None, :])[None, None]
            output[..., top : top + th, left : left + tw] += pred * window
            weight[..., top : top + th, left : left + tw] += window
    assert output is not None
    return output / weight


# ---------------------------------------------------------------- checkpoints
class CheckpointError(ValueError):
    """A checkpoint that cannot (or must not) be loaded; the message names the file."""


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_network(
    ckpt_path: str | os.PathLike, model_cfg: Mapping[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a network from a checkpoint; returns ``(net in eval mode on the CPU, model config dict)``.

    The file is always read with ``torch.load(path, map_location="cpu", weights_only=True)``: a file whose
    pickle refers to anything but tensors and plain containers is refused (:class:`CheckpointError` naming
    the file) and none of its code runs.

    * A Lightning checkpoint (a dict with ``state_dict``): the network is built from
      ``hyper_parameters["model"]`` with :func:`deblur.models.registry.build_model`, its weights are the
      ``state_dict`` entries prefixed ``net.`` (loss weights and metric states are ignored).
    * A plain state dict (tensors by name; ``net.`` / ``module.`` prefixes are stripped): ``model_cfg``
      must describe the network (``model=<option>`` on the command line).

    An explicit ``model_cfg`` takes precedence over the checkpoint's hyperparameters.
    """
    from deblur.models.registry import build_model

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path does not exist or is not a file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for foreign objects, RuntimeError for non-checkpoints
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"refused to load ckpt_path={path}: it is not a plain weights checkpoint "
            f"(torch.load(weights_only=True) failed: {first}). Checkpoints are never unpickled with "
            "arbitrary code; re-save the weights as a state dict (torch.save(net.state_dict(), ...))."
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"ckpt_path={path} holds a {type(obj).__name__}, not a checkpoint dict")

    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state = dict(obj["state_dict"])
        hparams = obj.get("hyper_parameters") or {}
        ckpt_model = hparams.get("model") if isinstance(hparams, Mapping) else None
        if any(k.startswith("net.") for k in state):
            state = _strip_prefix(state, "net.")
    else:
        state = dict(obj)
        ckpt_model = None
        for prefix in ("module.", "net."):
            if state and all(k.startswith(prefix) for k in state):
                state = _strip_prefix(state, prefix)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"ckpt_path={path}: the state dict holds entries that are not tensors")

    if model_cfg is not None:
        cfg = dict(model_cfg)
        if ckpt_model is not None and dict(ckpt_model) != cfg:
            log.warning("model=%s (command line) overrides the checkpoint's model %s", cfg, ckpt_model)
    elif ckpt_model is not None:
        cfg = dict(ckpt_model)
    else:
        raise CheckpointError(
            f"ckpt_path={path} is a plain state dict without a network description: name the network "
            "with model=<option> (e.g. model=msfs_small or model=msfs, plus model.width=... if needed)"
        )
    cfg.pop("_target_", None)
    net = build_model(cfg)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = [line.strip() for line in str(err).splitlines() if line.strip().startswith("size mismatch")]
        raise CheckpointError(
            f"ckpt_path={path} does not match the network {cfg}: {len(detail)} weight(s) differ in shape "
            f"(e.g. {detail[0] if detail else err}). Check model=... and its options."
        ) from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"ckpt_path={path} does not match the network {cfg}: "
            f"{len(result.missing_keys)} missing weight(s) (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]}). "
            "Check model=... and its options."
        )
    return net.eval(), cfg


def select_device(device: str | None) -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; otherwise ``torch.device(device)``."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(str(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} was asked for but CUDA is not available (use device=auto or cpu)")
    return dev
