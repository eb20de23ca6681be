"""OctConv (MSFS-Net Eq. 1-2): channel splits, shapes, and a hand-computed value."""

import pytest
import torch

from deblur.models.msfs.octconv import OctaveConv, octave_channels


@pytest.mark.parametrize(
    "channels, alpha, expected",
    [(8, 0.0, (8, 0)), (8, 0.5, (4, 4)), (8, 0.25, (6, 2)), (6, 0.5, (3, 3)), (10, 0.75, (2, 8))],
)
def test_channel_split(channels, alpha, expected):
    assert octave_channels(channels, alpha) == expected


@pytest.mark.parametrize(
    "alpha_in, alpha_out", [(0.0, 0.5), (0.5, 0.5), (0.5, 0.0), (0.25, 0.75), (0.0, 0.0)]
)
def test_shapes_for_alpha_pairs(alpha_in, alpha_out):
    cin, cout, h, w = 8, 12, 10, 14
    conv = OctaveConv(cin, cout, 3, alpha_in, alpha_out)
    in_h, in_l = octave_channels(cin, alpha_in)
    x_h = torch.randn(2, in_h, h, w)
    x_l = torch.randn(2, in_l, h // 2, w // 2) if in_l else None
    y_h, y_l = conv((x_h, x_l))
    out_h, out_l = octave_channels(cout, alpha_out)
    assert y_h.shape == (2, out_h, h, w)
    if out_l:
        assert y_l.shape == (2, out_l, h // 2, w // 2)
    else:
        assert y_l is None


def test_odd_sizes_keep_the_high_size():
    conv = OctaveConv(4, 4, 3, 0.5, 0.5)
    y_h, y_l = conv((torch.randn(1, 2, 7, 9), torch.randn(1, 2, 4, 5)))
    assert y_h.shape[-2:] == (7, 9) and y_l.shape[-2:] == (4, 5)


def test_matches_equations_1_and_2_by_hand():
    # 1x1 kernels, one channel per branch: W^{H->H}=2, W^{L->H}=3, W^{H->L}=4, W^{L->L}=5
    conv = OctaveConv(2, 2, 1, 0.5, 0.5)
    for branch, value in (("h2h", 2.0), ("l2h", 3.0), ("h2l", 4.0), ("l2l", 5.0)):
        getattr(conv, branch).weight.data.fill_(value)
    x_h = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    x_l = torch.tensor([[[[5.0]]]])
    y_h, y_l = conv((x_h, x_l))
    # Eq. 1: 2 * X^H + up(3 * 5)
    assert torch.equal(y_h, torch.tensor([[[[17.0, 19.0], [21.0, 23.0]]]]))
    # Eq. 2: 5 * 5 + 4 * avgpool(X^H) = 25 + 4 * 2.5
    assert torch.equal(y_l, torch.tensor([[[[35.0]]]]))


def test_bad_alpha_fails_naming_the_value():
    with pytest.raises(ValueError, match="1.2"):
        OctaveConv(8, 8, 3, alpha_in=1.2)
    with pytest.raises(ValueError, match="low"):
        OctaveConv(1, 8, 3, alpha_in=0.3)
