"""FSM (MSFS-Net Sec. 3.3) and CSFFM (Eq. 3-4)."""

import pytest
import torch

from deblur.models.msfs.csffm import CrossScaleFeatureFusion, SkipConcatenation
from deblur.models.msfs.fsm import FrequencySeparationModule, PlainConvModule


@pytest.mark.parametrize("cin, cout", [(8, 8), (16, 8)])
def test_fsm_feature_shapes(cin, cout):
    fsm = FrequencySeparationModule(cin, cout)
    out, high, low = fsm(torch.randn(2, cin, 12, 20))
    assert out.shape == (2, cout, 12, 20)
    assert high.shape == (2, cin // 2, 12, 20)  # Y^H: half the channels, full size
    assert low.shape == (2, cin // 2, 6, 10)  # Y^L: half the channels, half size


def test_fsm_residual_is_identity_when_the_fused_branch_is_silenced():
    fsm = FrequencySeparationModule(8).eval()
    fsm.fuse.norm_high.weight.data.zero_()
    fsm.fuse.norm_high.bias.data.zero_()
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(fsm(x).output, x)


def test_fsm_projection_shortcut_when_widths_differ():
    fsm = FrequencySeparationModule(16, 8).eval()
    fsm.fuse.norm_high.weight.data.zero_()
    fsm.fuse.norm_high.bias.data.zero_()
    x = torch.randn(1, 16, 6, 6)
    assert torch.allclose(fsm(x).output, fsm.shortcut(x))


def test_fsm_needs_even_channels():
    with pytest.raises(ValueError, match="7"):
        FrequencySeparationModule(7)


def test_plain_conv_replacement_has_no_frequency_parts():
    out, high, low = PlainConvModule(8, 4)(torch.randn(1, 8, 5, 5))
    assert out.shape == (1, 4, 5, 5) and high is None and low is None


def test_csffm_is_the_plain_mean_when_theta_is_zero():
    fusion = CrossScaleFeatureFusion(init=0.0)
    f_en, f_de = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    out = fusion(f_en, f_de)
    assert out.shape == (2, 8, 5, 5)
    assert torch.allclose(out[:, :4], (f_en + f_de) / 2)
    assert torch.equal(out[:, 4:], f_en)  # the fused feature is concatenated with the encoder feature


def test_csffm_weight_follows_sigmoid_of_theta_and_learns():
    fusion = CrossScaleFeatureFusion(init=-1.0)
    f_en, f_de = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    mix = fusion.mix(f_en, f_de)
    assert torch.allclose(mix, torch.full_like(mix, torch.sigmoid(torch.tensor(-1.0)).item()))
    mix.sum().backward()
    assert fusion.theta.grad is not None and fusion.theta.grad.abs() > 0


def test_skip_concatenation_ablation():
    f_en, f_de = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.equal(SkipConcatenation()(f_en, f_de), torch.cat([f_de, f_en], 1))


def test_fsm_conv_shortcut_adds_a_biased_projection_at_equal_widths():
    fsm = FrequencySeparationModule(8, conv_shortcut=True).eval()
    assert isinstance(fsm.shortcut, torch.nn.Conv2d) and fsm.shortcut.bias is not None
    fsm.fuse.norm_high.weight.data.zero_()
    fsm.fuse.norm_high.bias.data.zero_()
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(fsm(x).output, fsm.shortcut(x)) and not torch.allclose(fsm(x).output, x)


def test_encoder_first_puts_the_encoder_feature_before_the_mix():
    f_en, f_de = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    ours, public = CrossScaleFeatureFusion(-1.0), CrossScaleFeatureFusion(-1.0, encoder_first=True)
    mix = ours.mix(f_en, f_de)
    assert torch.equal(ours(f_en, f_de), torch.cat([mix, f_en], 1))
    assert torch.equal(public(f_en, f_de), torch.cat([f_en, mix], 1))
    assert torch.equal(SkipConcatenation(encoder_first=True)(f_en, f_de), torch.cat([f_en, f_de], 1))
