"""FDDN blocks: CCA, FSB (Tables 1-2), FDB (Eq. 6-11), Table 5 ablation blocks, inception down-sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deblur.models.cca import ContrastAwareChannelAttention, channel_contrast
from deblur.models.fddn.distillation import (
    FrequencySplitResidualBlock,
    ResidualFeatureDistillationBlock,
    make_latent_block,
)
from deblur.models.fddn.fdb import FrequencyDistillationBlock
from deblur.models.fddn.fsb import FrequencySplitBlock
from deblur.models.fddn.inception import InceptionDownsample
from deblur.models.rcab import ResidualBlock


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_cca_matches_hand_computation() -> None:
    cca = ContrastAwareChannelAttention(channels=2, reduction=2)  # hidden width 1
    squeeze, expand = cca.excite[0], cca.excite[2]
    with torch.no_grad():
        squeeze.weight.copy_(torch.tensor([0.5, -0.25]).view(1, 2, 1, 1))
        squeeze.bias.fill_(0.1)
        expand.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        expand.bias.copy_(torch.tensor([-1.0, 0.5]))
    channel0 = [1.0, 2.0, 3.0, 4.0]
    channel1 = [0.0, 0.0, 0.0, 4.0]
    x = torch.tensor([channel0, channel1]).view(1, 2, 2, 2)

    def contrast(values: list[float]) -> float:
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return std + mean

    c0, c1 = contrast(channel0), contrast(channel1)  # 1.118 + 2.5, 1.732 + 1.0
    hidden = max(0.0, 0.5 * c0 - 0.25 * c1 + 0.1)
    sigmoid = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    weights = [sigmoid(2.0 * hidden - 1.0), sigmoid(-1.0 * hidden + 0.5)]
    expected = torch.tensor([[v * weights[0] for v in channel0], [v * weights[1] for v in channel1]])

    out = cca(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.view(2, 4), expected, rtol=1e-5, atol=1e-6)


def test_cca_rejects_zero_channels() -> None:
    with pytest.raises(ValueError, match="channels=0"):
        ContrastAwareChannelAttention(0)


@pytest.mark.parametrize("size", [(6, 5), (1, 1)])
def test_cca_gradient_is_finite_on_a_spatially_constant_map(size: tuple[int, int]) -> None:
    # each channel constant over (H, W): variance exactly 0 (a 1x1 map is always constant)
    values = torch.tensor([0.5, -1.25, 3.0, 0.0]).view(1, 4, 1, 1).expand(2, 4, *size).clone()
    x = values.requires_grad_(True)
    cca = ContrastAwareChannelAttention(channels=4, reduction=2)
    cca(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in cca.parameters())

    # the same std without the epsilon inside the root: its gradient is NaN on this input
    y = values.detach().clone().requires_grad_(True)
    mean = y.mean(dim=(2, 3), keepdim=True)
    (y - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt().sum().backward()
    assert not torch.isfinite(y.grad).all()


def test_cca_epsilon_leaves_the_forward_of_a_varied_map_unchanged() -> None:
    x = torch.randn(2, 3, 7, 5)
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(channel_contrast(x), std + mean, rtol=0, atol=0)


@pytest.mark.parametrize(("ratio", "high", "low"), [(0.5, 8, 8), (0.25, 4, 12)])
@pytest.mark.parametrize("size", [(7, 9), (8, 6)])
def test_fsb_shapes_and_channels(ratio: float, high: int, low: int, size: tuple[int, int]) -> None:
    fsb = FrequencySplitBlock(in_channels=6, out_channels=16, ratio=ratio)
    assert (fsb.high_channels, fsb.low_channels) == (high, low)
    out_high, out_low = fsb(torch.randn(2, 6, *size))
    assert out_high.shape == (2, high, *size)
    assert out_low.shape == (2, low, *size)


def test_fsb_convolutions_follow_table_2() -> None:
    fsb = FrequencySplitBlock(in_channels=6, out_channels=16, ratio=0.25)  # H = 4, L = 12
    shapes = {
        name: tuple(conv.weight.shape) for name, conv in fsb.named_children() if name.startswith("conv")
    }
    assert shapes == {
        "conv_coarse2h": (4, 6, 3, 3),
        "conv_coarse2l": (12, 6, 3, 3),
        "conv_h2h": (4, 4, 1, 1),
        "conv_l2l": (12, 12, 1, 1),
        "conv_h2l": (12, 4, 1, 1),  # HChannel -> LChannel (Table 2's LChannel -> LChannel is a typo)
        "conv_l2h": (4, 12, 1, 1),
    }
    assert fsb.conv_coarse2l.stride == (2, 2)  # the stride-2 down-sampling of Sec. 3.2
    assert fsb.conv_coarse2h.stride == (1, 1)


def test_fsb_follows_table_1_step_by_step() -> None:
    fsb = FrequencySplitBlock(4, 8, 0.5)
    x = torch.randn(1, 4, 10, 6)
    leaky = lambda t: nn.functional.leaky_relu(t, 0.2)  # noqa: E731
    up = lambda t: nn.functional.interpolate(  # noqa: E731
        t, size=(10, 6), mode="bilinear", align_corners=False
    )
    to_high = leaky(nn.functional.conv2d(x, fsb.conv_coarse2h.weight, fsb.conv_coarse2h.bias, padding=1))
    to_low = leaky(nn.functional.conv2d(x, fsb.conv_coarse2l.weight, fsb.conv_coarse2l.bias, 2, 1))
    assert to_low.shape[-2:] == (5, 3)
    h2h = fsb.conv_h2h(to_high)
    l2l = fsb.conv_l2l(to_low)
    h2l = leaky(fsb.conv_h2l(nn.functional.avg_pool2d(to_high, 2)))
    l2h = leaky(fsb.conv_l2h(up(to_low)))
    out_high, out_low = fsb(x)
    torch.testing.assert_close(out_high, h2h + l2h)
    torch.testing.assert_close(out_low, up(l2l + h2l))


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.1])
def test_fsb_rejects_ratio_outside_unit_interval(ratio: float) -> None:
    with pytest.raises(ValueError, match=f"ratio={ratio}"):
        FrequencySplitBlock(4, 8, ratio)


@pytest.mark.parametrize(("out_channels", "ratio"), [(1, 0.5), (4, 0.9), (8, 0.01)])
def test_fsb_rejects_width_with_empty_part(out_channels: int, ratio: float) -> None:
    with pytest.raises(ValueError, match=f"out_channels={out_channels}"):
        FrequencySplitBlock(4, out_channels, ratio)


@pytest.mark.parametrize("ratio", [0.5, 0.25])
def test_fdb_keeps_shape_and_distils_four_high_parts(ratio: float) -> None:
    block = FrequencyDistillationBlock(16, ratio=ratio)
    high = round(ratio * 16)
    assert sum(isinstance(m, FrequencySplitBlock) for m in block.modules()) == 3
    assert block.fusion.in_channels == 4 * high  # concat of F_high1..F_high4 (Eq. 10)
    assert block.layer4.out_channels == high  # F_high4 = L4(F_low3), Eq. 9
    x = torch.randn(1, 16, 7, 9, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    out.square().mean().backward()
    assert block.layer1.weight.grad is not None and block.layer1.weight.grad.abs().sum() > 0
    assert block.split3.conv_coarse2l.weight.grad.abs().sum() > 0


def test_fdb_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio=2"):
        FrequencyDistillationBlock(16, ratio=2)


@pytest.mark.parametrize(
    ("variant", "cls"),
    [
        ("full", FrequencyDistillationBlock),
        ("no_distillation", FrequencySplitResidualBlock),
        ("no_fsb", ResidualFeatureDistillationBlock),
        ("no_fdb", ResidualBlock),
    ],
)
def test_latent_blocks_keep_shape(variant: str, cls: type[nn.Module]) -> None:
    block = make_latent_block(variant, 12, ratio=0.5)
    assert type(block) is cls
    x = torch.randn(1, 12, 5, 6)
    out = block(x)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)


def test_ablation_blocks_remove_one_ingredient() -> None:
    no_fsb = ResidualFeatureDistillationBlock(16, ratio=0.5)
    assert not any(isinstance(m, FrequencySplitBlock) for m in no_fsb.modules())
    assert [conv.out_channels for conv in no_fsb.distill_convs] == [8, 8, 8]
    assert no_fsb.fusion.in_channels == 32
    no_distillation = FrequencySplitResidualBlock(16, ratio=0.5)
    assert sum(isinstance(m, FrequencySplitBlock) for m in no_distillation.modules()) == 3
    assert all(fusion.in_channels == 16 for fusion in no_distillation.fusions)  # F_h and F_l both kept


def test_make_latent_block_rejects_unknown_variant() -> None:
    with pytest.raises(ValueError, match="variant='resnet'.*no_fdb"):
        make_latent_block("resnet", 8)


@pytest.mark.parametrize(("size", "expected"), [((8, 8), (4, 4)), ((7, 9), (4, 5))])
@pytest.mark.parametrize("out_channels", [12, 10])
def test_inception_downsample_halves_size(
    size: tuple[int, int], expected: tuple[int, int], out_channels: int
) -> None:
    block = InceptionDownsample(5, out_channels)
    assert block.resample[0].kernel_size == (3, 3) and block.resample[0].stride == (1, 1)
    out = block(torch.randn(2, 5, *size))
    assert out.shape == (2, out_channels, *expected)


def test_inception_downsample_is_a_max_pool_of_the_resampled_features() -> None:
    block = InceptionDownsample(3, 8)
    x = torch.randn(1, 3, 6, 6)
    branches = [block.branch_1x1(x), block.branch_3x3(x), block.branch_5x5(x), block.branch_pool(x)]
    resampled = block.resample(torch.cat(branches, dim=1))
    torch.testing.assert_close(block(x), nn.functional.max_pool2d(resampled, 2, 2))


def test_inception_downsample_rejects_too_few_channels() -> None:
    with pytest.raises(ValueError, match="out_channels=3"):
        InceptionDownsample(4, 3)
