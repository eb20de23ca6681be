"""MSFS-Net losses (paper Sec. 3.6): L_total = L1(I, G) + lambda1 * L_high + lambda2 * L_low (Eq. 7).

Positive and negative branches (the choices the paper leaves open; defaults and why):

* ``positive="output"`` (default): the positives and the low-frequency targets come from re-encoding the
  network's output, as the paper's text says (Sec. 3.2, 3.5). ``positive="target"`` re-encodes the ground
  truth instead, as the authors' public model code does.
* ``detach_positive=True`` (default): the positive is guidance for the decoder's anchor (Sec. 3.5: "can
  be considered as guidance for the intermedia features"), so the gradient of Eq. 5 reaches the anchor
  only. Without the detach the cheapest way to lower the numerator is to move the output image (or, with
  ``positive="target"``, the shared encoder) towards the anchor, which fights the L1 image loss.
* ``detach_negative=True`` (default): the negative is the encoder's view of the blurry input, which also
  feeds the decoder through the CSFFMs; letting Eq. 5 push it away would degrade that skip path.
* Eq. 6 is applied without detaching: it asks the output image (through the encoder) to keep the blurry
  input's low-frequency content, and the encoder features to agree, exactly as written.
* ``reencode_batchnorm="batch"`` (default, the behaviour before the option existed): each re-encoding pass
  normalises with its own batch statistics and moves the BatchNorm running estimates (two or three updates
  per step, a mix of blurry and restored images, although evaluation sees blurry images only).
  ``"frozen"``: the re-encoding passes normalise with the batch statistics of the blurry input's pass in
  the same step and leave the running estimates alone, so these track blurry images only. In our
  measurement the two did not differ beyond run-to-run noise, and ``frozen`` loses BatchNorm's invariance
  to the re-encoding gradients (docs/models.md, "Re-encoding and BatchNorm"), so the default stays.

Parts (logged as ``train/<part>``): ``l1``; ``clm`` (L_high, Eq. 5: the sum of the three per-scale ratios,
also logged as ``clm_full``, ``clm_half``, ``clm_quarter``); ``consistency`` (L_low, Eq. 6). Each ratio is
about 1 while the output is close to the input (positive ~ negative), so ``clm`` starts near 3; a ratio
below 1 means the decoder's high-frequency features are closer to the restored image's than to the blurry
input's (docs/models.md, "Reading train/clm").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deblur.config.rules import refuse
from deblur.losses.configs import msfs_loss_rules
from deblur.models.msfs.net import MSFSFeatures

Encoder = Callable[..., tuple[list[torch.Tensor], list[torch.Tensor]]]
#: names of the per-scale CLM parts, scale k = 0, 1, 2 (finer scales first)
SCALE_NAMES = ("full", "half", "quarter")


class ContrastiveHighFrequencyLoss(nn.Module):
    """Multi-scale contrastive loss, Eq. 5: sum_k L1(anchor_k, positive_k) / (L1(anchor_k, negative_k) + eps).

    L1 is the mean absolute difference. Each list holds one (N, C, H_k, W_k) tensor per scale.
    :meth:`per_scale` gives the summands (one scalar per scale); ``forward`` their sum.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = eps

    def per_scale(
        self,
        anchors: Sequence[torch.Tensor],
        positives: Sequence[torch.Tensor],
        negatives: Sequence[torch.Tensor],
    ) -> list[torch.Tensor]:
        """The ratio L1(anchor_k, positive_k) / (L1(anchor_k, negative_k) + eps) of each scale k."""
        if not (len(anchors) == len(positives) == len(negatives)):
            raise ValueError(
                f"Eq. 5 needs one anchor, positive and negative per scale, got "
                f"{len(anchors)}, {len(positives)}, {len(negatives)}"
            )
        return [
            F.l1_loss(anchor, positive) / (F.l1_loss(anchor, negative) + self.eps)
            for anchor, positive, negative in zip(anchors, positives, negatives, strict=True)
        ]

    def forward(
        self,
        anchors: Sequence[torch.Tensor],
        positives: Sequence[torch.Tensor],
        negatives: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        total = anchors[0].new_zeros(()) if anchors else torch.zeros(())
        for ratio in self.per_scale(anchors, positives, negatives):
            total = total + ratio
        return total


class LowFrequencyConsistencyLoss(nn.Module):
    """Multi-scale low-frequency consistency, Eq. 6: sum_k L1(f_k^{en,low}, f_k^{low}) (mean absolute)."""

    def forward(
        self, encoder_low: Sequence[torch.Tensor], output_low: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if len(encoder_low) != len(output_low):
            raise ValueError(f"Eq. 6 needs equal scale counts, got {len(encoder_low)} and {len(output_low)}")
        total = encoder_low[0].new_zeros(())
        for ref, out in zip(encoder_low, output_low, strict=True):
            total = total + F.l1_loss(ref, out)
        return total


class MSFSLoss(nn.Module):
    """Eq. 7. ``forward(pred, target, features=..., encode=...)`` -> (total, parts).

    pred, target: (N, 3, H, W). features: the network's :class:`MSFSFeatures` (None when the FSMs are
    ablated: only the L1 term is then used). encode: ``MSFSNet.encode_frequencies`` (called as
    ``encode(image)``, or ``encode(image, norm_stats=features.encoder_norm_stats)`` when
    ``reencode_batchnorm="frozen"`` and the features carry statistics).
    Parts: ``l1``, ``clm`` (L_high) with ``clm_full`` / ``clm_half`` / ``clm_quarter`` (its summands),
    ``consistency`` (L_low).
    """

    needs_features = True

    def __init__(
        self,
        lambda_high: float = 0.005,
        lambda_low: float = 0.005,
        positive: Literal["output", "target"] = "output",
        detach_positive: bool = True,
        detach_negative: bool = True,
        eps: float = 1e-7,
        reencode_batchnorm: Literal["batch", "frozen"] = "batch",
    ) -> None:
        super().__init__()
        refuse(msfs_loss_rules({
            "lambda_high": lambda_high, "lambda_low": lambda_low, "positive": positive, "eps": eps,
            "reencode_batchnorm": reencode_batchnorm,
        }))  # fmt: skip
        self.lambda_high = lambda_high
        self.lambda_low = lambda_low
        self.positive = positive
        self.detach_positive = detach_positive
        self.detach_negative = detach_negative
        self.reencode_batchnorm = reencode_batchnorm
        self.contrastive = ContrastiveHighFrequencyLoss(eps)
        self.consistency = LowFrequencyConsistencyLoss()

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        features: MSFSFeatures | None = None,
        encode: Encoder | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        l1 = F.l1_loss(pred, target)
        parts = {"l1": l1}
        total = l1
        use_high = self.lambda_high > 0 and features is not None
        use_low = self.lambda_low > 0 and features is not None
        if not (use_high or use_low):
            return total, parts
        if encode is None:
            raise ValueError("MSFSLoss needs encode= (MSFSNet.encode_frequencies) for its frequency terms")
        stats = features.encoder_norm_stats if self.reencode_batchnorm == "frozen" else None

        def reencode(image: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            return encode(image) if stats is None else encode(image, norm_stats=stats)

        out_high, out_low = reencode(pred) if (use_low or self.positive == "output") else (None, None)
        if use_high:
            positives = out_high if self.positive == "output" else reencode(target)[0]
            if self.detach_positive:
                positives = [p.detach() for p in positives]
            negatives = features.enc_high
            if self.detach_negative:
                negatives = [n.detach() for n in negatives]
            ratios = self.contrastive.per_scale(features.dec_high, positives, negatives)
            clm = torch.stack(ratios).sum()
            parts["clm"] = clm
            for k, ratio in enumerate(ratios):
                parts["clm_" + (SCALE_NAMES[k] if k < len(SCALE_NAMES) else str(k))] = ratio.detach()
            total = total + self.lambda_high * clm
        if use_low:
            consistency = self.consistency(features.enc_low, out_low)
            parts["consistency"] = consistency
            total = total + self.lambda_low * consistency
        return total, parts
