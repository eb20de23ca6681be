"""Reusing one pass's BatchNorm batch statistics in a later pass of the same module.

MSFS-Net runs its encoder on the blurry input and then again on the deblurred (or sharp) image for the
losses of Eq. 5-6 (:meth:`deblur.models.msfs.net.MSFSNet.encode_frequencies`). In training mode every such
pass normalises with its own batch statistics and moves the BatchNorm running estimates, although at
evaluation only blurry images pass through. These two context managers let the second pass normalise with
the statistics of the first and leave the running estimates alone:

    with record_batchnorm_stats(net.encoder) as stats:
        net.encoder(blurry)              # training mode: batch statistics, running estimates updated once
    with use_batchnorm_stats(net.encoder, stats):
        net.encoder(deblurred)           # normalised with ``stats``; running estimates untouched

The recorded statistics are detached: the second pass sees them as constants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: submodule name (as in ``named_modules``) -> (mean, biased variance), each (C,) float32
BatchNormStats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def batchnorm_layers(module: nn.Module) -> dict[str, _BatchNorm]:
    """Every BatchNorm layer below ``module`` (itself included), by submodule name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, _BatchNorm)}


@contextmanager
def record_batchnorm_stats(module: nn.Module) -> Iterator[BatchNormStats]:
    """Record, per BatchNorm layer below ``module``, the batch statistics it normalises with.

    Only layers in training mode are recorded (in eval mode they use their running estimates). The mean
    and the biased variance over (N, H, W) are those ``F.batch_norm`` computes in training mode; a layer
    run twice inside the block keeps its last call's.

    Yields:
        A dict filled while the block runs: submodule name -> (mean (C,), variance (C,)), detached.
    """
    stats: BatchNormStats = {}
    handles = []
    for name, layer in batchnorm_layers(module).items():

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], name: str = name) -> None:
            if mod.training:
                x = inputs[0].detach().float()
                dims = [d for d in range(x.ndim) if d != 1]
                stats[name] = (x.mean(dims), x.var(dims, unbiased=False))

        handles.append(layer.register_forward_pre_hook(hook))
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def use_batchnorm_stats(module: nn.Module, stats: BatchNormStats) -> Iterator[None]:
    """Inside the block every BatchNorm layer below ``module`` normalises with ``stats`` (from
    :func:`record_batchnorm_stats` on the same module) and leaves its running estimates
    (``running_mean``, ``running_var``, ``num_batches_tracked``) unchanged. Affine weights still learn.

    Raises:
        ValueError: a BatchNorm layer below ``module`` has no entry in ``stats`` (naming it).
    """
    layers = batchnorm_layers(module)
    missing = sorted(set(layers) - set(stats))
    if missing:
        raise ValueError(
            f"use_batchnorm_stats: no recorded statistics for BatchNorm layer(s) {missing[:3]}; record them "
            "with record_batchnorm_stats on the same module in training mode"
        )
    saved = {}
    try:
        for name, layer in layers.items():
            # eval mode normalises with the (swapped-in) running buffers and does not update them
            saved[name] = (layer.training, layer.running_mean, layer.running_var)
            mean, var = stats[name]
            dtype = layer.running_mean.dtype if layer.running_mean is not None else mean.dtype
            layer.training = False
            layer.running_mean, layer.running_var = mean.to(dtype), var.to(dtype)
        yield
    finally:
        for name, (training, running_mean, running_var) in saved.items():
            layer = layers[name]
            layer.training = training
            layer.running_mean = running_mean
            layer.running_var = running_var
