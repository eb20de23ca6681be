"""Inference speed options: each option's output against the fp32 NCHW output, within its stated tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data, transform
from torch import nn

from deblur import speedups
from deblur.inference import pad_and_run, tiled_inference
from deblur.models.fddn import FDDN
from deblur.models.fsm import _OctaveConvBNReLU
from deblur.models.msfs_net import MSFSNet
from deblur.speedups import (
    TOLERANCES,
    InferenceOptions,
    default_options,
    fold_batchnorm,
    inference_context,
    output_psnr,
    prepare_for_inference,
    resolve_options,
    to_input,
)

CPU = torch.device("cpu")
TINY = {"width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1, "reduction": 4}
#: one option at a time (TOLERANCES key -> options); "compile" has its own tests below
EAGER = {
    "channels_last": InferenceOptions(channels_last=True),
    "fold_batchnorm": InferenceOptions(fold_batchnorm=True),
    "bf16": InferenceOptions(precision="bf16"),
}
TESTED = {*EAGER, "compile"}


def _randomize_batchnorm(net: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm2d of ``net``."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.3, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The astronaut photo at 64x64, (1, 3, 64, 64) in [0, 1]."""
    img = transform.resize(data.astronaut(), (64, 64), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def net() -> MSFSNet:
    torch.manual_seed(0)
    return _randomize_batchnorm(MSFSNet(**TINY, norm="batch")).eval()


def _run(model: nn.Module, options: InferenceOptions, x: torch.Tensor) -> torch.Tensor:
    prepared = prepare_for_inference(model, options, CPU)
    with inference_context(options, CPU):
        return prepared(to_input(x, options)).float()


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(x)


# ---------------------------------------------------------------- BatchNorm folding
def test_folded_msfs_net_matches_its_eval_output_and_leaves_the_original_alone(net, photo):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 30  # 6 FSMs x 3 OctConvs, 2 or 1 BN
    with torch.inference_mode():
        assert (folded(photo) - net(photo)).abs().max() <= 1e-5
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_octave_fold_puts_the_shift_into_one_path_by_hand():
    """Y^H = BN(h2h(X^H) + up(l2h(X^L))): the scale reaches both paths, the shift only h2h's new bias."""
    layer = _randomize_batchnorm(_OctaveConvBNReLU(8, 8, 3, 0.5, 0.5)).eval()
    x = (torch.rand(2, 4, 10, 10), torch.rand(2, 4, 5, 5))
    folded = fold_batchnorm(layer)
    bn = layer.norm_high
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded.conv.l2h.weight, layer.conv.l2h.weight * scale[:, None, None, None])
    torch.testing.assert_close(folded.conv.h2h.bias, bn.bias - bn.running_mean * scale)
    assert folded.conv.l2h.bias is None and folded.conv.h2l.bias is not None and folded.conv.l2l.bias is None
    with torch.no_grad():
        for got, want in zip(folded(x), layer(x), strict=True):
            assert (got - want).abs().max() <= 1e-5


def test_plain_conv_batchnorm_pairs_fold_in_training_mode_too():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
    seq = _randomize_batchnorm(seq).train()  # folding uses the running statistics whatever the mode
    folded = fold_batchnorm(seq)
    assert isinstance(folded[1], nn.Identity) and seq.training and isinstance(seq[1], nn.BatchNorm2d)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert (folded(x) - seq.eval()(x)).abs().max() <= 1e-5


def test_a_network_without_batchnorm_comes_back_equal(photo):
    torch.manual_seed(0)
    fddn = FDDN(width=4, num_fdb=1, cca_reduction=4, rcab_reduction=4).eval()
    folded = fold_batchnorm(fddn)
    assert folded is not fddn
    state = fddn.state_dict()
    assert all(torch.equal(state[k], v) for k, v in folded.state_dict().items())
    with torch.inference_mode():
        assert torch.equal(folded(photo), fddn(photo))


# ---------------------------------------------------------------- each option against fp32 NCHW
@pytest.mark.parametrize("key", sorted(EAGER))
def test_each_option_stays_within_its_tolerance(net, photo, key):
    out = _run(net, EAGER[key], photo)
    assert out.dtype == torch.float32 and out.shape == photo.shape
    assert output_psnr(_reference(net, photo), out) >= TOLERANCES[key]


def test_all_eager_options_together_stay_within_the_lowest_tolerance(net, photo):
    options = InferenceOptions(channels_last=True, precision="bf16", fold_batchnorm=True)
    assert options.enabled() == ["channels_last", "fold_batchnorm", "bf16"]
    assert options.tolerance() == TOLERANCES["bf16"]
    assert output_psnr(_reference(net, photo), _run(net, options, photo)) >= options.tolerance()


def test_tiling_works_with_channels_last_bf16_inputs(net, photo):
    options = InferenceOptions(channels_last=True, precision="bf16", fold_batchnorm=True)
    prepared = prepare_for_inference(net, options, CPU)
    x = to_input(photo[..., :60, :52], options)
    assert x.is_contiguous(memory_format=torch.channels_last)
    with inference_context(options, CPU):
        tiled = tiled_inference(prepared, x, tile=32, tile_overlap=8)
        whole = tiled_inference(prepared, x, tile=64)  # one piece
    with torch.inference_mode():
        reference = tiled_inference(net, photo[..., :60, :52], tile=32, tile_overlap=8)
    assert tiled.dtype == whole.dtype == torch.float32 and tiled.shape == reference.shape
    assert output_psnr(reference, tiled) >= TOLERANCES["bf16"]


def test_prepare_for_inference_leaves_the_callers_module_as_it_was(net):
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    options = InferenceOptions(channels_last=True, precision="bf16", fold_batchnorm=True)
    prepared = prepare_for_inference(net, options, CPU)
    assert prepared is not net and not prepared.training and net.training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert all(p.is_contiguous() and p.requires_grad for p in net.parameters())
    assert prepared.encoder.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    net.eval()


# ---------------------------------------------------------------- compile
@pytest.mark.slow
def test_compiled_network_matches_fp32(photo):
    """torch.compile works on this machine (g++ present); the first call compiles (tens of seconds)."""
    torch.manual_seed(0)
    tiny = MSFSNet(width=4, encoder_blocks=0, latent_blocks=0, decoder_blocks=0, reduction=2).eval()
    x = photo[..., :16, :16]
    out = _run(tiny, InferenceOptions(compile=True), x)
    assert output_psnr(_reference(tiny, x), out) >= TOLERANCES["compile"]


def test_compile_that_does_not_work_fails_naming_the_option(net, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(speedups, "_COMPILE_WORKS", set())
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(speedups.CompileUnavailableError, match="compile=true.*no C\\+\\+ compiler"):
        prepare_for_inference(net, InferenceOptions(compile=True), CPU)


# ---------------------------------------------------------------- defaults, values, PSNR
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_default_options_only_use_tested_options(device):
    options = default_options(torch.device(device))
    assert set(options.enabled()) <= TESTED and set(options.enabled()) <= set(TOLERANCES)
    assert not options.compile


def test_bad_values_name_the_key_and_the_choices():
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16'.*'fp16x'"):
        InferenceOptions(precision="fp16x")
    with pytest.raises(ValueError, match="precision"):
        resolve_options(CPU, precision="fp16x")
    with pytest.raises(ValueError, match="channels_last must be true or false"):
        resolve_options(CPU, channels_last="yes")


def test_resolve_options_overrides_only_what_is_given():
    base = default_options(CPU)
    assert resolve_options(CPU) == base
    chosen = resolve_options(CPU, precision="fp32", compile=False)
    assert chosen.precision == "fp32" and chosen.channels_last == base.channels_last


def test_output_psnr():
    x = torch.rand(1, 3, 8, 8)
    assert output_psnr(x, x.clone()) == math.inf
    assert output_psnr(x, x + 0.01) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="shapes differ"):
        output_psnr(x, x[..., :4])


def test_pad_and_run_keeps_a_channels_last_input_working(net, photo):
    options = InferenceOptions(channels_last=True)
    x = to_input(photo[..., :30, :27], options)
    with inference_context(options, CPU):
        out = pad_and_run(prepare_for_inference(net, options, CPU), x)
    assert output_psnr(_reference(net, photo[..., :30, :27]), out) >= TOLERANCES["channels_last"]
    assert to_input(torch.rand(3, 4, 4), options).shape == (3, 4, 4)
