"""MSFS-Net wiring: published size, any input size, features, ablations, and bad arguments."""

import pytest
import torch

from deblur.models import MSFSNet

TINY = dict(width=8, encoder_blocks=1, latent_blocks=1, decoder_blocks=1, reduction=4)


def test_default_is_the_published_size():
    params = sum(p.numel() for p in MSFSNet().parameters())
    assert abs(params - 21_586_291) / 21_586_291 < 0.05, params


@pytest.mark.parametrize("use_fsm, use_csffm", [(True, True), (False, True), (True, False)])
def test_odd_sizes_come_back_at_the_same_size(use_fsm, use_csffm):
    net = MSFSNet(**TINY, use_fsm=use_fsm, use_csffm=use_csffm)
    x = torch.rand(1, 3, 67, 101)
    assert net(x).shape == x.shape


def test_frequency_features_per_scale():
    net = MSFSNet(**TINY)
    image, feats = net(torch.rand(2, 3, 32, 48), return_features=True)
    assert image.shape == (2, 3, 32, 48)
    for k in range(3):
        size = (32 // 2**k, 48 // 2**k)
        assert feats.enc_high[k].shape == (2, 4, *size)
        assert feats.dec_high[k].shape == feats.enc_high[k].shape  # anchors match negatives
        assert feats.enc_low[k].shape == (2, 4, size[0] // 2, size[1] // 2)
    highs, lows = net.encode_frequencies(image)
    assert [h.shape for h in highs] == [h.shape for h in feats.enc_high]
    assert [low.shape for low in lows] == [low.shape for low in feats.enc_low]


def test_no_fsm_has_no_features():
    net = MSFSNet(**TINY, use_fsm=False)
    _, feats = net(torch.rand(1, 3, 16, 16), return_features=True)
    assert feats is None
    with pytest.raises(RuntimeError, match="use_fsm"):
        net.encode_frequencies(torch.rand(1, 3, 16, 16))


def test_every_encoder_stage_gets_a_gradient_from_the_image():
    # the public code's defect: its first encoder stage's residual blocks never reach the output
    net = MSFSNet(**TINY)
    net(torch.rand(1, 3, 16, 16)).mean().backward()
    for stage in net.encoder.blocks:
        grad = stage[0].body[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0


def test_raw_image_residual_makes_a_zero_head_the_identity():
    net = MSFSNet(**TINY).eval()
    net.head.weight.data.zero_()
    net.head.bias.data.zero_()
    x = torch.rand(1, 3, 21, 19)
    assert torch.allclose(net(x), x)


@pytest.mark.parametrize(
    "kwargs, value", [({"width": 7}, "7"), ({"width": 0}, "0"), ({"decoder_blocks": -1}, "-1")]
)
def test_impossible_sizes_fail_naming_the_value(kwargs, value):
    with pytest.raises(ValueError, match=value):
        MSFSNet(**{**TINY, **kwargs})


def test_wrong_input_channels_fail():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        MSFSNet(**TINY)(torch.rand(1, 1, 16, 16))


def test_norm_none_removes_batchnorm_and_bad_norm_fails():
    net = MSFSNet(**TINY, norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in MSFSNet(**TINY).modules())
    assert net(torch.rand(1, 3, 19, 23)).shape == (1, 3, 19, 23)
    with pytest.raises(ValueError, match="group"):
        MSFSNet(**TINY, norm="group")
