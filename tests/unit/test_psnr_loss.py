"""loss=psnr: NAFNet's PSNR loss, 10 * log10(MSE + 1e-8) per image averaged over the batch (their
``PSNRLoss(toY=False)``: ``10 / ln 10 * log(mean_chw((pred - target)^2) + 1e-8).mean()``)."""

from __future__ import annotations

import math

import pytest
import torch

from deblur.losses.build import build_loss
from deblur.losses.psnr import PSNRLoss


def test_equation_per_image_then_mean():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 6, generator=gen), torch.rand(3, 3, 8, 6, generator=gen)
    pred[1] = target[1] + 0.01  # one image far better than the others: per image, not pooled
    total, parts = build_loss({"name": "psnr"})(pred, target)
    per_image = [((p - t) ** 2).double().mean().item() for p, t in zip(pred, target, strict=True)]
    expected = sum(10 * math.log10(m + 1e-8) for m in per_image) / 3
    pooled = 10 * math.log10(sum(per_image) / 3 + 1e-8)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert abs(expected - pooled) > 1.0
    assert parts["psnr"].item() == pytest.approx(-expected, rel=1e-5) and not parts["psnr"].requires_grad


def test_eps_bounds_identical_images_and_half_inputs_compute_in_float32():
    x = torch.rand(2, 3, 4, 4)
    total, _ = PSNRLoss()(x, x.clone())
    assert total.item() == pytest.approx(-80.0)
    total_half, _ = PSNRLoss()(x.bfloat16(), (x + 0.1).bfloat16())
    assert total_half.dtype == torch.float32


def test_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        PSNRLoss(eps=0)
    with pytest.raises(ValueError, match="one shape"):
        PSNRLoss()(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
