"""A ``_target_`` network must return one tensor of its input's shape: a tuple (several scales, as
MIMO-UNet returns) or a wrong shape is one user error naming the class, in training and in inference."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import deblur
from deblur.errors import UserError


class TwoScales(nn.Module):
    """(N, 3, H, W) -> (full, half): a multi-scale network's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x + self.conv(x)
        return y, y[..., ::2, ::2]


class Half(TwoScales):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[1]


class Residual(TwoScales):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


@pytest.mark.parametrize(("cls", "got"), [("TwoScales", "returned a tuple"), ("Half", "shape (2, 3, 8, 8)")])
def test_a_wrong_output_is_a_user_error_naming_the_target(cls, got):
    from deblur.lit.restoration import RestorationModule

    target = f"{__name__}.{cls}"
    optim = {"name": "adam", "lr": 1e-3}
    module = RestorationModule(model={"_target_": target}, loss={"name": "l1"}, optim=optim)
    x = torch.rand(2, 3, 16, 16)
    expected = rf"^model._target_='{target}': forward .*{re.escape(got)}.* \(2, 3, 16, 16\)"
    with pytest.raises(UserError, match=expected):
        module.compute_loss(x, x)
    with pytest.raises(UserError, match=rf"model._target_='{target}'"):
        deblur.restore(deblur.build_model({"_target_": target}).eval(), np.zeros((16, 20, 3), np.uint8))


def test_one_tensor_of_the_input_shape_passes():
    from deblur.lit.restoration import RestorationModule

    module = RestorationModule(
        model={"_target_": f"{__name__}.Residual"}, loss={"name": "l1"}, optim={"name": "adam", "lr": 1e-3}
    )
    x = torch.rand(2, 3, 16, 16)
    pred, total, _ = module.compute_loss(x, x)
    assert pred.shape == x.shape and total.ndim == 0
