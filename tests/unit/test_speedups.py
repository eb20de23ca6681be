"""Inference speed options: each option's output against the fp32 NCHW output, within its stated tolerance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from skimage import data, transform
from torch import nn

from deblur.inference import pad_and_run, tiled_inference
from deblur.metrics.agreement import output_psnr
from deblur.models.fddn.net import FDDN
from deblur.models.msfs.fsm import _OctaveConvBNReLU
from deblur.models.msfs.net import MSFSNet
from deblur.speed import cache as speed_cache
from deblur.speed import inference_probe, timers, training_probe, transforms
from deblur.speed import options as speed_options
from deblur.speed import trial as speed_trial
from deblur.speed.inference_probe import resolve_options
from deblur.speed.options import TOLERANCES, InferenceOptions, default_options
from deblur.speed.transforms import fold_batchnorm, inference_context, prepare_for_inference, to_input
from deblur.utils.device import device_name

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

    monkeypatch.setattr(transforms, "_COMPILE_WORKS", set())
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(transforms.CompileUnavailableError, match="compile=true.*no C\\+\\+ compiler"):
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


# ---------------------------------------------------------------- choosing by measuring (deblur.speed_probe)
FP32_FOLDED = {"precision": "fp32", "fold_batchnorm": True}  # given: only channels_last is probed


def _fake_timer(times: dict, calls: list | None = None):
    """A timing function with injected seconds per call (by channels_last, or by any key of options)."""

    def timer(options):
        if calls is not None:
            calls.append(options)
        return times[options.channels_last] if isinstance(options, InferenceOptions) else times[options]

    return timer


def _no_timing(options):
    raise AssertionError(f"nothing should be timed, but {options} was")


def test_the_probe_picks_the_faster_of_two_fake_candidates(net, photo, tmp_path):
    for faster in (True, False):
        times = {faster: 0.010, not faster: 0.020}
        result = inference_probe.resolve_speed(
            CPU, net=net, example=photo, timer=_fake_timer(times), cache=False, min_pixels=0, **FP32_FOLDED
        )
        assert result.source == "probe" and result.options.channels_last is faster
        assert result.options.precision == "fp32" and result.options.fold_batchnorm
        assert set(result.times_ms) == {"fp32, fold_batchnorm", "fp32, channels_last, fold_batchnorm"}
        fastest = result.times_ms[speed_options.describe_options(result.options.as_dict())]
        assert fastest["min_ms"] == pytest.approx(10.0) and fastest["runs"] >= speed_trial.MIN_ROUNDS


def test_near_ties_go_to_the_more_exact_candidate_and_failures_are_left_out():
    trial = speed_trial.interleaved_probe(["exact", "fast"], {"exact": 0.0100, "fast": 0.0099}.__getitem__)
    assert trial.best == "exact"  # 1 % apart: within TIE_MARGIN
    trial = speed_trial.interleaved_probe(["exact", "fast"], {"exact": 0.0100, "fast": 0.0090}.__getitem__)
    assert trial.best == "fast"

    def broken(candidate):
        if candidate == "fast":
            raise RuntimeError("no kernel")
        return 0.5

    trial = speed_trial.interleaved_probe(["exact", "fast"], broken)
    assert trial.best == "exact" and trial.rejected == {"fast": "RuntimeError: no kernel"}


def test_a_candidate_outside_its_tolerance_is_left_out(net, photo, monkeypatch):
    monkeypatch.setattr(timers, "output_psnr", lambda reference, other: 10.0)  # far below 60 dB
    result = inference_probe.resolve_speed(
        CPU, net=net, example=photo, cache=False, min_pixels=0, **FP32_FOLDED
    )
    assert result.options.channels_last is False  # the reference (most exact) candidate is all that is left
    assert "below its tolerance 60.0 dB" in result.rejected["fp32, channels_last, fold_batchnorm"]


def test_the_choice_is_cached_per_device_torch_network_and_size(net, photo, tmp_path, monkeypatch):
    cache = tmp_path / "speed.json"
    first = inference_probe.resolve_speed(
        CPU, net=net, example=photo, timer=_fake_timer({True: 0.01, False: 0.02}), cache=cache, min_pixels=0,
        **FP32_FOLDED,
    )  # fmt: skip
    (key, entry), = json.loads(cache.read_text())["entries"].items()
    assert entry["kind"] == "inference" and entry["torch"] == torch.__version__
    assert entry["device"] == device_name(CPU) and "threads" in entry["device"]
    assert entry["network"] == speed_cache.network_identity(net) and entry["size_class"] == "2^12"  # 64x64
    for part in (entry["device"], torch.__version__, entry["network"], "2^12"):
        assert part in key
    assert entry["options"] == first.options.as_dict() and first.options.channels_last

    again = inference_probe.resolve_speed(
        CPU, net=net, example=photo, timer=_no_timing, cache=cache, min_pixels=0, **FP32_FOLDED
    )
    assert again.source == "cache" and again.options == first.options

    calls: list = []  # another input size class is probed on its own
    bigger = torch.rand(1, 3, 128, 128)
    timer = _fake_timer({True: 0.02, False: 0.01}, calls)
    inference_probe.resolve_speed(CPU, net=net, example=bigger, timer=timer, cache=cache, **FP32_FOLDED)
    assert calls and len(json.loads(cache.read_text())["entries"]) == 2

    monkeypatch.setattr(speed_cache, "torch_version", lambda: "0.0.0-another")  # written by another torch
    calls.clear()
    other = inference_probe.resolve_speed(
        CPU, net=net, example=photo, timer=_fake_timer({True: 0.02, False: 0.01}, calls), cache=cache,
        min_pixels=0, **FP32_FOLDED,
    )  # fmt: skip
    assert calls and other.source == "probe" and other.options.channels_last is False


def test_a_cached_entry_of_another_torch_version_is_ignored(tmp_path):
    cache = tmp_path / "speed.json"
    speed_cache.store_entry(cache, "some key", {"torch": "0.0.0-old", "options": {}})
    assert speed_cache.cached_entry(cache, "some key") is None
    speed_cache.store_entry(cache, "some key", {"torch": torch.__version__, "options": {}})
    assert speed_cache.cached_entry(cache, "some key") is not None


def test_explicit_options_win_over_the_probe(net, photo):
    calls: list = []
    timer = _fake_timer({True: 0.01, False: 0.02}, calls)  # channels_last would win
    result = inference_probe.resolve_speed(
        CPU, net=net, example=photo, timer=timer, cache=False, min_pixels=0, channels_last=False,
        fold_batchnorm=True,
    )  # fmt: skip
    assert result.options.channels_last is False and all(not c.channels_last for c in calls)
    everything = {"channels_last": True, "precision": "bf16", "fold_batchnorm": False, "compile": False}
    given = resolve_options(CPU, net=net, example=photo, timer=_no_timing, cache=False, **everything)
    assert given.as_dict() == everything


def test_speed_fixed_and_tiny_inputs_do_not_probe(net, photo, tmp_path):
    cache = tmp_path / "speed.json"
    kwargs = {"net": net, "timer": _no_timing, "cache": cache}
    fixed = inference_probe.resolve_speed(CPU, example=photo, mode="fixed", **kwargs)
    assert fixed.source == "fixed" and fixed.options == default_options(CPU)
    tiny = inference_probe.resolve_speed(CPU, example=photo[..., :16, :16], **kwargs)
    assert tiny.source == "tiny input" and tiny.options == default_options(CPU)
    assert resolve_options(CPU) == default_options(CPU)  # no network: the fixed rule
    assert not cache.exists()
    with pytest.raises(ValueError, match="speed must be one of probe, fixed, got 'fast'"):
        inference_probe.resolve_speed(CPU, net=net, example=photo, mode="fast")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_fixed_rule_is_fp32_and_machine_independent(device):
    options = default_options(torch.device(device))
    assert options.precision == "fp32" and options.channels_last and options.fold_batchnorm
    assert not options.compile
    assert speed_options.default_options(torch.device("mps")) == InferenceOptions()


def test_the_training_probe_picks_the_faster_step_and_respects_given_keys(tmp_path):
    steps = {(False, "32-true"): 0.040, (True, "32-true"): 0.030, (False, "bf16-mixed"): 0.035,
             (True, "bf16-mixed"): 0.020}  # fmt: skip
    times = {speed_options.TrainingOptions(*key): seconds for key, seconds in steps.items()}
    model, loss = {"name": "msfs", **TINY}, {"name": "msfs"}
    kwargs = {"batch": 4, "size": 256, "cache": tmp_path / "speed.json", "timer": _fake_timer(times)}
    chosen = training_probe.choose_training_speed(model, loss, CPU, precision="auto", **kwargs)
    expected = (True, "bf16-mixed") if speed_options.bf16_available(CPU) else (True, "32-true")
    assert (chosen.channels_last, chosen.precision) == expected and chosen.source == "probe"
    pinned = training_probe.choose_training_speed(model, loss, CPU, precision="32-true", **kwargs)
    assert (pinned.channels_last, pinned.precision) == (True, "32-true")
    given = {"channels_last": False, "precision": "16-mixed"}
    layout = training_probe.choose_training_speed(model, loss, CPU, **given, **kwargs)
    assert layout.source == "explicit" and not layout.channels_last and layout.precision == "16-mixed"
    kwargs["timer"] = _no_timing
    fixed = training_probe.choose_training_speed(model, loss, CPU, mode="fixed", **kwargs)
    assert fixed.options == speed_options.fixed_training_options(CPU) and fixed.precision == "32-true"
    cached = training_probe.choose_training_speed(model, loss, CPU, precision="auto", **kwargs)
    assert cached.source == "cache" and cached.options == chosen.options


def test_the_training_probe_leaves_the_random_state_alone():
    """(The real step timer runs in tests/integration/test_bench.py.)"""

    def timer(options):
        torch.rand(100)  # as building and stepping a seeded module would
        return 0.01 if options.channels_last else 0.02

    torch.manual_seed(123)
    before = torch.get_rng_state()
    chosen = training_probe.choose_training_speed(
        {"name": "msfs"}, {"name": "msfs"}, CPU, batch=2, size=128, timer=timer, cache=False
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert chosen.source == "probe" and chosen.channels_last
