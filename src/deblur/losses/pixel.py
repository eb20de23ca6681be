"""Pixel losses for any network (``loss=l1 | charbonnier | fft``): what a network without a loss of its own
trains with (a ``_target_`` network defaults to ``loss=l1``, docs/own_network.md).

With ``d = pred - target`` over all N*C*H*W elements (computed in float32):

* ``l1``: ``mean |d|``;
* ``charbonnier``: ``mean sqrt(d^2 + eps^2)``, eps 1e-3 (the Charbonnier loss of MPRNet-style works);
* ``fft``: MIMO-UNet's content + frequency loss, ``mean |d| + fft_weight * mean |F(pred) - F(target)|``,
  where ``F`` is the 2-D FFT over (H, W) (``torch.fft.fft2``, no normalisation, both halves of the
  spectrum as their ``torch.rfft(..., onesided=False)``) with real and imaginary parts stacked as two
  entries, and ``fft_weight`` 0.1 (their default). MIMO-UNet sums this over its three output scales; a
  single-output network has one scale.

``forward(pred, target)`` with (N, C, H, W) tensors of one shape returns ``(total, parts)``: ``total`` ()
and the named terms for the training log (``train/l1``, ``train/fft`` ...).
"""

from __future__ import annotations

import torch
from torch import nn

from deblur.config.rules import refuse
from deblur.losses.configs import eps_rules, fft_loss_rules

_Parts = dict[str, torch.Tensor]

#: Charbonnier's epsilon (MPRNet, Restormer-style works)
CHARBONNIER_EPS = 1e-3
#: MIMO-UNet's weight of the frequency term
FFT_WEIGHT = 0.1


def _pair(name: str, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"{name} needs two (N, C, H, W) tensors of one shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    return pred.float(), target.float()


class L1Loss(nn.Module):
    """``mean |pred - target|``; parts ``{"l1": ...}``."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, _Parts]:
        pred, target = _pair("L1Loss", pred, target)
        total = (pred - target).abs().mean()
        return total, {"l1": total.detach()}


class CharbonnierLoss(nn.Module):
    """``mean sqrt((pred - target)^2 + eps^2)``; parts ``{"charbonnier": ...}``."""

    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        refuse(eps_rules({"eps": eps}))
        self.eps = float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, _Parts]:
        pred, target = _pair("CharbonnierLoss", pred, target)
        total = torch.sqrt((pred - target).pow(2) + self.eps**2).mean()
        return total, {"charbonnier": total.detach()}


class FFTLoss(nn.Module):
    """``mean |d| + fft_weight * mean |stack(Re, Im)(fft2(pred) - fft2(target))|``; parts ``l1``, ``fft``."""

    def __init__(self, fft_weight: float = FFT_WEIGHT) -> None:
        super().__init__()
        refuse(fft_loss_rules({"fft_weight": fft_weight}))
        self.fft_weight = float(fft_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, _Parts]:
        pred, target = _pair("FFTLoss", pred, target)
        pixel = (pred - target).abs().mean()
        spectrum = torch.view_as_real(torch.fft.fft2(pred) - torch.fft.fft2(target))
        frequency = spectrum.abs().mean()
        total = pixel + self.fft_weight * frequency
        return total, {"l1": pixel.detach(), "fft": frequency.detach()}
