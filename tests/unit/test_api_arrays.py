"""deblur.restore and deblur.score refuse arrays that are not pictures (issue 18, item 3): NaN / inf
samples, float samples outside [0, 1] (0..255 floats named as the usual mistake), empty images; and a
network output that is not finite is never returned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import deblur
from deblur.inference import NonFiniteOutput
from tests.tiny import TINY_MSFS

GOOD = np.linspace(0.0, 1.0, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    from deblur.models.build import build_model

    torch.manual_seed(0)
    return build_model(dict(TINY_MSFS)).eval()


def _with(value: float) -> np.ndarray:
    image = GOOD.copy()
    image[3, 4, 1] = value
    return image


BAD_ARRAYS = [
    pytest.param(_with(math.nan), "NaN or infinite", id="nan"),
    pytest.param(_with(math.inf), "NaN or infinite", id="inf"),
    pytest.param(GOOD * 255.0, "looks like a 0..255 image; divide it by 255", id="0-255 floats"),
    pytest.param(_with(-0.5), r"span \[-0.5, 1\]", id="negative"),
    pytest.param(np.zeros((0, 16, 3), np.float32), "empty", id="no rows"),
    pytest.param(np.zeros((16, 0), np.uint8), "empty", id="no columns"),
]


@pytest.mark.parametrize(("image", "message"), BAD_ARRAYS)
def test_restore_refuses_meaningless_arrays(net, image, message):
    with pytest.raises(ValueError, match=message):
        deblur.restore(net, image)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))) if image.ndim == 3 else None
    if tensor is not None and tensor.is_floating_point():
        with pytest.raises(ValueError, match=message):
            deblur.restore(net, tensor)


@pytest.mark.parametrize(("image", "message"), BAD_ARRAYS)
def test_score_refuses_meaningless_arrays(image, message):
    target = np.zeros((16, 16, 3), np.uint8)  # a picture: the refusal names the other one
    with pytest.raises(ValueError, match=f"pred.*{message}"):
        deblur.score(image, target)
    with pytest.raises(ValueError, match=f"target.*{message}"):
        deblur.score(target, image)


def test_restore_takes_float_tensors_only_and_still_takes_pictures(net):
    with pytest.raises(ValueError, match="floats in \\[0, 1\\], got torch.uint8"):
        deblur.restore(net, torch.zeros((3, 16, 16), dtype=torch.uint8))
    assert deblur.restore(net, GOOD).shape == GOOD.shape
    assert deblur.score(GOOD, GOOD)["psnr"] == math.inf


class _Overflow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3e38 * 10  # inf wherever x > 0


def test_a_non_finite_output_is_never_returned():
    image = np.zeros((16, 16, 3), np.float32)
    image[2, 3, 1] = 1.0
    with pytest.raises(NonFiniteOutput, match="blurry.png: the network's output has 1 of 768"):
        deblur.restore(_Overflow(), image, name="blurry.png")
    with pytest.raises(NonFiniteOutput, match="the image"):
        deblur.restore(_Overflow(), torch.ones((3, 8, 8)))
