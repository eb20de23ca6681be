"""FDDN network: size calibration (Tables 3 and 5), any-size forward, variants, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deblur.models.fddn.distillation import (
    FrequencySplitResidualBlock,
    ResidualFeatureDistillationBlock,
)
from deblur.models.fddn.fdb import FrequencyDistillationBlock
from deblur.models.fddn.net import FDDN
from deblur.models.rcab import ResidualBlock
from deblur.models.size import size_mb as fddn_size_mb

VARIANT_BLOCKS = {
    "full": FrequencyDistillationBlock,
    "no_distillation": FrequencySplitResidualBlock,
    "no_fsb": ResidualFeatureDistillationBlock,
    "no_fdb": ResidualBlock,
}
PAPER_SIZE_MB = 8.08


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny(variant: str = "full", num_fdb: int = 2) -> FDDN:
    return FDDN(width=4, num_fdb=num_fdb, variant=variant)


def test_size_mb_counts_fp32_mebibytes() -> None:
    assert fddn_size_mb(nn.Conv2d(1, 1, 1)) == pytest.approx(8 / 2**20)  # weight + bias, 4 bytes each


def test_default_fddn_is_the_paper_size_with_16_fdbs() -> None:
    model = FDDN()
    fdbs = [m for m in model.modules() if isinstance(m, FrequencyDistillationBlock)]
    assert len(fdbs) == 16
    assert FDDN.multiple == 4
    size = fddn_size_mb(model)
    assert abs(size - PAPER_SIZE_MB) <= 0.1 * PAPER_SIZE_MB, size


def test_variant_sizes_follow_table_5_ordering() -> None:
    sizes = {variant: fddn_size_mb(FDDN(variant=variant)) for variant in VARIANT_BLOCKS}
    assert sizes["no_distillation"] > sizes["full"] > sizes["no_fsb"] > sizes["no_fdb"], sizes


@pytest.mark.parametrize("variant", list(VARIANT_BLOCKS))
def test_variant_stacks_its_latent_block(variant: str) -> None:
    model = tiny(variant, num_fdb=3)
    assert len(model.latent_blocks) == 3
    assert all(type(block) is VARIANT_BLOCKS[variant] for block in model.latent_blocks)


@pytest.mark.parametrize("variant", list(VARIANT_BLOCKS))
def test_variant_forward_any_size_and_gradients_reach_first_conv(variant: str) -> None:
    model = tiny(variant)
    x = torch.rand(1, 3, 33, 45)
    out = model(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    first_conv = model.conv_first[0]
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 12)])
def test_forward_small_and_odd_sizes(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size)
    assert tiny()(x).shape == x.shape


def test_global_residual_returns_input_when_tail_is_zero() -> None:
    model = tiny()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    x = torch.rand(1, 3, 9, 10)
    torch.testing.assert_close(model(x), x)


def test_latent_runs_at_quarter_resolution() -> None:
    model = tiny()
    seen: list[torch.Size] = []
    model.latent_blocks[0].register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    model(torch.rand(1, 3, 30, 41))  # padded to 32 x 44
    assert seen == [torch.Size([1, 16, 8, 11])]


def test_unknown_variant_lists_options() -> None:
    with pytest.raises(ValueError, match=r"variant='resnet'.*full, no_distillation, no_fsb, no_fdb"):
        FDDN(variant="resnet")


@pytest.mark.parametrize("ratio", [0.0, 1.5])
@pytest.mark.parametrize("variant", ["full", "no_fdb"])
def test_bad_ratio_names_the_value(ratio: float, variant: str) -> None:
    with pytest.raises(ValueError, match=f"ratio={ratio}"):
        FDDN(width=4, num_fdb=1, ratio=ratio, variant=variant)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 1}, "width=1"),
    ({"width": 0}, "width=0"),
    ({"num_fdb": 0}, "num_fdb=0"),
    ({"decoder_rcabs": -1}, "decoder_rcabs=-1"),
    ({"width": 2, "ratio": 0.05}, "width=2"),  # latent 8 channels, HChannel = round(0.4) = 0
])  # fmt: skip
def test_bad_widths_name_the_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FDDN(**{"num_fdb": 1, **kwargs})


def test_table5_sizes_lists_every_row_next_to_the_paper():
    from deblur.models.fddn.net import table5_sizes

    rows = {variant: (ours, paper) for variant, _, ours, paper in table5_sizes()}
    assert set(rows) == {"full", "no_distillation", "no_fsb", "no_fdb"}
    ours, paper = rows["full"]
    assert paper == 8.08 and abs(ours - paper) / paper < 0.10
    # the paper's ordering: without distillation is the largest, the plain residual blocks the smallest
    assert rows["no_distillation"][0] > rows["full"][0] > rows["no_fsb"][0] > rows["no_fdb"][0]


def test_state_dicts_with_the_old_head_name_still_load() -> None:
    from deblur.models.fddn.net import upgrade_state_dict

    model = tiny()
    state = model.state_dict()
    old = {k.replace("conv_first.", "head.", 1): v.clone() + 1 for k, v in state.items()}
    assert sum(k.startswith("head.") for k in old) == 2
    assert list(upgrade_state_dict(old)) == list(state)  # same names, same order
    fresh = tiny()
    fresh.load_state_dict(old, strict=True)  # the load hook renames by itself
    assert torch.equal(fresh.conv_first[0].weight, old["head.0.weight"])
    wrapper = nn.ModuleDict({"net": tiny()})  # a Lightning checkpoint's ``net.`` prefix
    wrapper.load_state_dict({f"net.{k}": v for k, v in old.items()}, strict=True)
    assert torch.equal(wrapper["net"].conv_first[0].bias, old["head.0.bias"])
