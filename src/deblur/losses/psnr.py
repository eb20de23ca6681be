"""NAFNet's PSNR loss (Chen et al., ECCV 2022; the authors' ``PSNRLoss`` with ``toY=False``, weight 1).

``loss = mean_n 10 * log10(mean_{c,h,w} (pred_n - target_n)^2 + eps)``: per image, then averaged over the
batch, on the RGB images as they are (range [0, 1]). It is minus the mean per-image PSNR of the batch (peak
1), so it is negative once the network is any good, and each image's gradient is scaled by 1 / its MSE:
well-restored images are not drowned by the hard ones, as under a plain MSE.
"""

from __future__ import annotations

import torch
from torch import nn

from deblur.config.rules import refuse
from deblur.losses.configs import eps_rules

#: the authors' epsilon inside the log
PSNR_LOSS_EPS = 1e-8


class PSNRLoss(nn.Module):
    """``forward(pred, target)`` with (N, C, H, W) tensors returns ``(total, {"psnr": ...})``.

    ``total`` () is the loss above (computed in float32 whatever the inputs' dtype); ``psnr`` is ``-total``
    detached: the batch's mean per-image PSNR in dB, for logging as ``train/psnr``.
    """

    def __init__(self, eps: float = PSNR_LOSS_EPS) -> None:
        super().__init__()
        refuse(eps_rules({"eps": eps}))
        self.eps = float(eps)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if pred.shape != target.shape or pred.ndim != 4:
            raise ValueError(
                f"PSNRLoss needs two (N, C, H, W) tensors of one shape, got {tuple(pred.shape)} and "
                f"{tuple(target.shape)}"
            )
        mse = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
        total = (10.0 * torch.log10(mse + self.eps)).mean()
        return total, {"psnr": -total.detach()}
