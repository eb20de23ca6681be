"""Run a restoration network on whole images of any size: padding, and tiling for large images.

* :func:`pad_and_run`: reflect-pad (N, C, H, W) to the network's ``multiple`` attribute (8 for MSFS-Net,
  4 for FDDN, 1 when absent), run, crop back to (H, W).
* :func:`tiled_inference`: cut the image into ``tile`` x ``tile`` windows overlapping by at least
  ``tile_overlap`` pixels (the last window of a row/column is aligned to the image border), run each with
  :func:`pad_and_run`, and blend the overlaps with a raised-cosine weight window. A window's ramp is only
  applied on sides that face a neighbouring window; sides on the image border keep full weight. The output
  has the input's size; an image no larger than ``tile`` runs in one piece.

Neither function changes the grad mode: call them under ``torch.inference_mode()`` for inference (or
:func:`deblur.speed.transforms.inference_context`, which adds bf16 autocast when asked for).

* :func:`restore`: one image of any kind (numpy uint8 / uint16 / float, gray / RGB / RGBA, or a tensor)
  through a network, under inference mode, padded or tiled; the result has the input's kind. Empty images,
  NaN / infinite samples and float samples outside [0, 1] are refused (ValueError); a network output with a
  NaN or infinite value is never returned (:class:`NonFiniteOutput`, naming the image). With
  ``self_ensemble=True``, the mean over the 8 flips / rotations of the image (:mod:`deblur.ensemble`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deblur.ensemble import self_ensemble as ensemble_mean
from deblur.errors import UserError
from deblur.models.padding import crop_to, pad_to_multiple
from deblur.utils.pixels import check_pixels

if TYPE_CHECKING:
    from deblur.config.inference_settings import InferenceSettings
    from deblur.speed.options import InferenceOptions


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

    ``0 <= tile_overlap < tile`` and ``tile >= net.multiple`` (8 for MSFS-Net, 4 for FDDN: a smaller window
    cannot be padded to the network's stride). Returns a (1, C', H, W) tensor (C' = the network's output
    channels) on the image's device, in float32. Images no larger than ``tile`` in both sides run in one
    piece.
    Each tile's output is cast to float32 before blending, so under bf16 autocast the blend stays fp32;
    a channels_last ``image`` gives channels_last tiles.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"tiled_inference expects one image (1, C, H, W), got shape {tuple(image.shape)}")
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or not 0 <= tile_overlap < tile:
        raise ValueError(f"tile_overlap must be an integer in [0, tile={tile}), got {tile_overlap!r}")
    # the stride: ``multiple`` (we pad), or ``pad_multiple`` (the network pads itself, e.g. NAFNet)
    multiple = int(getattr(net, "multiple", None) or getattr(net, "pad_multiple", 1) or 1)
    if tile < multiple:  # each window would be padded up to the network's stride: refuse, naming it
        raise ValueError(f"tile={tile} is smaller than the network's stride: tile must be at least "
                         f"{multiple} (a multiple of {multiple} avoids padding each window)")  # fmt: skip
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


# ---------------------------------------------------------------- whole images
class NonFiniteOutput(UserError):
    """The network's output for an image holds NaN or infinite values; the message names the image."""


def check_finite_output(output: torch.Tensor, name: str | None = None) -> None:
    """Raise :class:`NonFiniteOutput` (naming ``name``) when the network's ``output`` is not all finite.

    Clamping would turn NaN into black pixels and scoring would turn them into a meaningless number, so a
    non-finite output is never written or scored: the image fails instead.
    """
    finite = torch.isfinite(output)
    if bool(finite.all()):
        return
    bad, total = int((~finite).sum()), finite.numel()
    raise NonFiniteOutput(
        f"{name or 'the image'}: the network's output has {bad} of {total} value(s) NaN or infinite, so it "
        "is neither written nor scored. The input may hold extreme values, or the weights overflow on it "
        "(with precision=bf16, try precision=fp32)."
    )


def _net_device(net: nn.Module) -> torch.device:
    for tensor in net.parameters():
        return tensor.device
    return torch.device("cpu")


def restore(
    net: nn.Module,
    image: np.ndarray | torch.Tensor,
    tile: int | None = None,
    options: InferenceOptions | None = None,
    tile_overlap: int = 32,
    name: str | None = None,
    *,
    self_ensemble: bool = False,
) -> np.ndarray | torch.Tensor:
    """Deblur one image of any size with ``net``; the result has the input's kind, size and layout.

    Args:
        net: a network in eval mode (as :func:`deblur.checkpoints.load_model` returns it, or prepared by
            :func:`deblur.speed.transforms.prepare_for_inference` for ``options``).
            The image goes to its device.
        image: a numpy array ``(H, W)`` (gray), ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA; alpha kept as
            it is) of uint8, uint16 or floats in [0, 1]; or a tensor ``(3, H, W)`` / ``(N, 3, H, W)`` of
            floats in [0, 1].
        tile: run in overlapping ``tile`` x ``tile`` windows (:func:`tiled_inference`); None: whole image.
        options: the speed options ``net`` was prepared with (memory format, bf16 autocast); None: fp32.
        tile_overlap: minimum overlap of the tiles in pixels.
        name: how messages name the image (e.g. its file); None: "the image".
        self_ensemble: the mean of the 8 runs on the flipped / rotated image, each turned back
            (:func:`deblur.ensemble.self_ensemble`); each run pads and tiles its own orientation (8 runs).

    Returns:
        The deblurred image, clipped to [0, 1]: integers are rounded to nearest in the input's dtype;
        floats keep their dtype; a tensor keeps its shape, dtype and device. Gray inputs give the mean of
        the three output channels.

    Raises:
        ValueError: an empty image, NaN or infinite samples, float samples outside [0, 1] (a float image in
            0..255 is the usual mistake), an integer tensor, or an unsupported shape or dtype.
        NonFiniteOutput: the network's output holds NaN or infinite values.

    Examples:
        >>> import numpy as np
        >>> from deblur.models.build import build_model
        >>> net = build_model("fddn_small").eval()
        >>> out = restore(net, np.zeros((30, 41, 3), np.uint8))
        >>> out.shape, out.dtype
        ((30, 41, 3), dtype('uint8'))
    """
    from deblur.speed.options import InferenceOptions
    from deblur.speed.transforms import inference_context, to_input

    options = options or InferenceOptions()
    device = _net_device(net)
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"restore takes a (3, H, W) or (N, 3, H, W) tensor, got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"restore takes tensors of floats in [0, 1], got {image.dtype}: convert with "
                             "image.float() / 255 for 8-bit samples")
        check_pixels(image, name or "image")
        batch = image[None] if image.ndim == 3 else image
        x = batch.to(device=device, dtype=torch.float32)

        def run(z: torch.Tensor) -> torch.Tensor:
            z = to_input(z, options)
            if tile is None:
                return pad_and_run(net, z)
            return torch.cat([tiled_inference(net, z[i : i + 1], tile, tile_overlap) for i in range(len(z))])

        with inference_context(options, device):
            y = ensemble_mean(run, x) if self_ensemble else run(x)
            check_finite_output(y, name)
            y = y.float().clamp_(0.0, 1.0)
        y = y.clone().to(device=image.device, dtype=image.dtype)  # an ordinary tensor, not an inference one
        return y[0] if image.ndim == 3 else y

    if not isinstance(image, np.ndarray):
        raise ValueError(f"restore takes a numpy array or a torch tensor, got {type(image).__name__}")
    if image.ndim == 2:
        rgb, alpha = np.repeat(image[:, :, None], 3, axis=2), None
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        rgb, alpha = image[:, :, :3], (image[:, :, 3] if image.shape[2] == 4 else None)
    else:
        raise ValueError(f"restore takes an (H, W), (H, W, 3) or (H, W, 4) array, got shape {image.shape}")
    if image.dtype in (np.uint8, np.uint16):
        scale = float(np.iinfo(image.dtype).max)
    elif np.issubdtype(image.dtype, np.floating):
        scale = 1.0
    else:
        raise ValueError(f"restore takes uint8, uint16 or float images, got {image.dtype}")
    check_pixels(image, name or "image")
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(scale))
    y = restore(net, x, tile, options, tile_overlap, name, self_ensemble=self_ensemble)
    y = y.numpy().transpose(1, 2, 0)
    if image.ndim == 2:
        y = y.mean(axis=2)
    if scale != 1.0:
        y = np.rint(y * scale).astype(image.dtype)
    else:
        y = y.astype(image.dtype, copy=False)
    if alpha is not None:
        y = np.dstack([y, alpha.astype(y.dtype)])
    return y


def prepare_network(
    net: nn.Module, settings: InferenceSettings | None = None, example: torch.Tensor | None = None
) -> tuple[nn.Module, InferenceOptions, torch.device]:
    """Get a loaded network ready to run as ``settings`` say: device, speed options and TLC
    (:func:`deblur.models.tlc.convert_to_tlc` when ``settings.tlc.enabled``).

    Args:
        net: a network in eval mode (e.g. from :func:`deblur.checkpoints.load_model`); left unchanged.
        settings: the inference settings (:class:`deblur.config.inference_settings.InferenceSettings`);
            None: defaults.
        example: a representative input, (3, H, W) or (N, 3, H, W) in [0, 1] (e.g. the first image): with
            ``speed=probe`` the options left null are timed on it
            (:func:`deblur.speed.inference_probe.resolve_speed`, cached); None, or ``speed=fixed``: the
            fixed rule.

    Returns:
        ``(prepared network, the speed options used, the device)``; pass the options to :func:`restore`.
    """
    from deblur.config.inference_settings import InferenceSettings
    from deblur.speed.inference_probe import resolve_options
    from deblur.speed.transforms import prepare_for_inference
    from deblur.utils.device import select_device

    settings = settings or InferenceSettings()
    device = select_device(settings.device)
    if settings.tlc.enabled:
        from deblur.models.tlc import convert_to_tlc, revert_tlc

        convert_to_tlc(net, settings.tlc.base_size, settings.tlc.train_size)
    try:  # the probe times the network as it will run (TLC included)
        probe_net = net.to(device) if settings.speed_mode == "probe" and example is not None else None
        options = resolve_options(
            device, net=probe_net, example=None if example is None else example.to(device),
            mode=settings.speed_mode, cache=settings.speed_cache, **settings.speed,
        )  # fmt: skip
        prepared = prepare_for_inference(net, options, device)  # a copy
    finally:
        if settings.tlc.enabled:
            revert_tlc(net)  # the caller's network is left as it was
    return prepared, options, device
