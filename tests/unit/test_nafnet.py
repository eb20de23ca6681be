"""NAFNet (models/nafnet/net.py): the facts that make it the authors' network, checked without their code.

tests/data/nafnet_gopro_width32_state_dict.tsv lists every key of the state dict of the authors'
``NAFNet(width=32, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])`` with its shape
and dtype, generated from their class (megvii-research/NAFNet); outputs equal to theirs were measured beside
it (docs/models.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from deblur.config.checks import check_train_config
from deblur.errors import UserError
from deblur.models.build import build_model
from deblur.models.nafnet.net import LayerNorm2d, NAFBlock, NAFNet, SimpleGate
from deblur.models.tlc import convert_to_tlc, revert_tlc, tlc_windows

MANIFEST = Path(__file__).parents[1] / "data" / "nafnet_gopro_width32_state_dict.tsv"


def _manifest() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    rows = [line.split("\t") for line in MANIFEST.read_text().splitlines()[1:]]
    return [(key, ast.literal_eval(shape), getattr(torch, dtype)) for key, shape, dtype in rows]


@pytest.fixture(scope="module")
def gopro_net() -> NAFNet:
    return build_model("nafnet")


def test_the_preset_is_the_published_gopro_width32_model(gopro_net):
    assert isinstance(gopro_net, NAFNet)
    assert sum(p.numel() for p in gopro_net.parameters()) == 17_111_907
    assert gopro_net.pad_multiple == 16 and not hasattr(gopro_net, "multiple")


def test_state_dict_keys_and_shapes_are_the_authors(gopro_net):
    theirs = [(key, shape) for key, shape, _ in _manifest()]
    ours = [(key, tuple(t.shape)) for key, t in gopro_net.state_dict().items()]
    assert len(theirs) == 664
    assert ours == theirs  # same names, shapes and order


def test_a_state_dict_with_their_keys_loads_strictly_and_lands_by_name(gopro_net):
    gen = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=gen, dtype=dtype) for key, shape, dtype in _manifest()}
    net = build_model("nafnet")
    net.load_state_dict(state, strict=True)
    assert torch.equal(net.encoders[3][27].sca[1].weight, state["encoders.3.27.sca.1.weight"])
    assert torch.equal(net.ups[0][0].weight, state["ups.0.0.weight"])


@pytest.mark.parametrize("size", [(16, 16), (37, 53), (5, 70)])
def test_any_size_zero_padded_to_16_and_cropped_back(size):
    torch.manual_seed(0)
    net = build_model("nafnet_small").eval()
    for p in net.parameters():  # layer scales and all: every branch contributes
        torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = net(x)
        h, w = size
        padded = F.pad(x, (0, (-w) % 16, 0, (-h) % 16))  # zeros, bottom / right, as the authors
        expected = net(padded)[..., :h, :w]
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_layer_scales_start_at_zero_so_every_block_is_the_identity():
    net = build_model("nafnet_small")
    scales = [p for name, p in net.named_parameters() if name.endswith((".beta", ".gamma"))]
    assert len(scales) == 2 * 9 and all(torch.count_nonzero(p) == 0 for p in scales)
    block = NAFBlock(8)
    x = torch.randn(2, 8, 7, 9)
    assert torch.equal(block(x), x)


def test_layer_norm_is_over_the_channels_of_each_pixel():
    norm = LayerNorm2d(6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, 5, 4) * 3 + 1
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_of_a_channels_last_input_equals_the_nchw_form_with_its_gradients():
    """channels_last takes the fused path; outputs and gradients equal the explicit NCHW form."""
    torch.manual_seed(0)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64) * 3 + 1
    norm = norm.double()
    outputs, grads = [], []
    for layout in (torch.contiguous_format, torch.channels_last):
        xi = x.clone().to(memory_format=layout).requires_grad_(True)
        norm.zero_grad()
        y = norm(xi)
        (y * torch.arange(y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        outputs.append(y)
        grads.append((xi.grad, norm.weight.grad.clone(), norm.bias.grad.clone()))
    assert outputs[1].is_contiguous(memory_format=torch.channels_last)  # the fused path kept the layout
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-12)
    for fused, explicit in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(fused, explicit, rtol=0, atol=1e-10)


def test_simple_gate_multiplies_the_two_channel_halves():
    x = torch.randn(2, 6, 3, 3)
    assert torch.equal(SimpleGate()(x), x[:, :3] * x[:, 3:])


def test_unequal_stage_counts_are_refused():
    with pytest.raises(ValueError, match=r"model.decoder_blocks=\[1\]: one count per encoder stage"):
        NAFNet(width=8, encoder_blocks=[1, 1], decoder_blocks=[1])


def test_tlc_windows_are_their_nafnetlocal_ones(gopro_net):
    net = convert_to_tlc(build_model("nafnet"), base_size=384, train_size=256)
    windows = tlc_windows(net)
    assert len(windows) == 1 + 1 + 1 + 28 + 1 + 4  # every NAFBlock's sca pool
    assert windows["encoders.0.0.sca.0"] == (384, 384)
    assert windows["encoders.3.27.sca.0"] == (48, 48)
    assert windows["middle_blks.0.sca.0"] == (24, 24)
    assert windows["decoders.3.0.sca.0"] == (384, 384)


def test_tlc_equals_global_pooling_where_the_window_covers_the_map():
    torch.manual_seed(0)
    net = build_model("nafnet_small").eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        before = net(x)
        convert_to_tlc(net, base_size=48, train_size=48)  # windows >= every map of a 48 x 40 input
        covered = net(x)
        convert_to_tlc(net, base_size=24, train_size=16)  # 1.5 x 16: local windows on this input
        local = net(x)
        revert_tlc(net)
        reverted = net(x)
    assert torch.equal(covered, before) and torch.equal(reverted, before)
    assert not torch.allclose(local, before, atol=1e-4)


def _check(model: dict) -> str:
    with pytest.raises(UserError) as err:
        check_train_config(OmegaConf.create({"model": {"name": "nafnet", **model}}))
    return str(err.value)


def test_config_checks_are_nafnets_own():
    assert "model.encoder_blocks=[1, -1]: a list of block counts" in _check({"encoder_blocks": [1, -1]})
    assert "model.decoder_blocks=[1]: one count per encoder stage (2" in _check(
        {"encoder_blocks": [1, 1], "decoder_blocks": [1]}
    )
    assert "model.width=0: an integer >= 1" in _check({"width": 0})
    assert "model.num_fdb is not an option of model=nafnet" in _check({"num_fdb": 4})
    check_train_config(OmegaConf.create({"model": {"name": "nafnet", "width": 3}}))  # odd widths are fine


def test_a_tile_below_nafnets_own_padding_stride_is_refused():
    import numpy as np

    import deblur

    net = build_model("nafnet_small").eval()
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"tile=8 .*at least 16"):
        deblur.restore(net, image, tile=8, tile_overlap=0)
