"""loss=l1 | charbonnier | fft: each equation checked against a value worked out by hand."""

import math

import pytest
import torch

from deblur.losses.build import build_loss
from deblur.losses.pixel import CharbonnierLoss, FFTLoss, L1Loss


def _image(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]  # (1, 1, H, W)


def test_l1_is_the_mean_absolute_difference():
    pred, target = _image([[0.0, 1.0], [2.0, -3.0]]), torch.zeros(1, 1, 2, 2)
    total, parts = L1Loss()(pred, target)
    assert total.item() == pytest.approx((0 + 1 + 2 + 3) / 4)  # 1.5
    assert parts["l1"].item() == pytest.approx(1.5)


def test_charbonnier_is_the_mean_of_sqrt_d2_plus_eps2():
    pred, target = _image([[3.0, 0.0]]), torch.zeros(1, 1, 1, 2)
    total, _ = CharbonnierLoss(eps=4.0)(pred, target)
    assert total.item() == pytest.approx((5.0 + 4.0) / 2)  # sqrt(9 + 16) = 5, sqrt(0 + 16) = 4
    default, _ = CharbonnierLoss()(pred, target)  # eps 1e-3
    assert default.item() == pytest.approx((math.sqrt(9 + 1e-6) + 1e-3) / 2)


def test_fft_loss_is_l1_plus_a_tenth_of_l1_between_the_2d_spectra():
    # a single 1 at (0, 0) of a 2 x 2 image: its 2-D DFT is 1 everywhere (4 real parts 1, 4 imaginary 0)
    pred, target = _image([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(1, 1, 2, 2)
    total, parts = FFTLoss()(pred, target)
    assert parts["l1"].item() == pytest.approx(0.25)
    assert parts["fft"].item() == pytest.approx(4 / 8)  # a 1-D FFT over W only would give 2 / 8
    assert total.item() == pytest.approx(0.25 + 0.1 * 0.5)


def test_fft_loss_stacks_real_and_imaginary_parts_of_the_full_spectrum():
    # x = [0, 1, 0]: X[k] = exp(-2 pi i k / 3) = 1, -1/2 - i sqrt(3)/2, -1/2 + i sqrt(3)/2
    pred, target = _image([[0.0, 1.0, 0.0]]), torch.zeros(1, 1, 1, 3)
    total, parts = FFTLoss(fft_weight=1.0)(pred, target)
    spectrum = (1 + 0 + 2 * (0.5 + math.sqrt(3) / 2)) / 6  # |Re| and |Im| of 3 bins, 6 entries
    assert parts["fft"].item() == pytest.approx(spectrum)  # complex magnitudes would give 1
    assert total.item() == pytest.approx(1 / 3 + spectrum)


def test_pixel_losses_are_built_by_name_and_give_gradients():
    pred = torch.rand(2, 3, 8, 8, requires_grad=True)
    for name in ("l1", "charbonnier", "fft"):
        total, _ = build_loss({"name": name})(pred, torch.rand(2, 3, 8, 8))
        total.backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_bad_options_and_shapes_are_refused():
    with pytest.raises(ValueError, match="eps=0"):
        CharbonnierLoss(eps=0)
    with pytest.raises(ValueError, match="fft_weight=-1"):
        FFTLoss(fft_weight=-1)
    with pytest.raises(ValueError, match="one shape"):
        L1Loss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
