"""Test-time local statistics (TLC): local mean / contrast against hand-made box filters, the conversion of
MSFS-Net and FDDN (windows, round trip, equality where the window covers the map) and its input checks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import deblur.models.tlc as tlc_module
from deblur.models import FDDN, MSFSNet
from deblur.models.cca import CONTRAST_EPS, ChannelContrast, ContrastAwareChannelAttention, channel_contrast
from deblur.models.rcab import RCAB, ChannelAttention, ResidualBlock
from deblur.models.tlc import (
    LocalAvgPool2d,
    LocalChannelContrast,
    convert_to_tlc,
    is_tlc,
    local_contrast,
    local_mean,
    revert_tlc,
    tlc_windows,
)

TINY_MSFS = {"width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1, "reduction": 4}
TINY_FDDN = {"width": 4, "num_fdb": 1}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _hand_local(x: torch.Tensor, window: tuple[int, int], statistic: str) -> torch.Tensor:
    """Explicit loops: the statistic of every window wholly inside the map (window clipped to the map),
    then replicate padding by hand (floor of the missing rows / columns on top / left, ceil at the end)."""
    n, c, h, w = x.shape
    kh, kw = min(window[0], h), min(window[1], w)
    vh, vw = h - kh + 1, w - kw + 1
    valid = torch.empty(n, c, vh, vw, dtype=x.dtype)
    for i in range(vh):
        for j in range(vw):
            patch = x[:, :, i : i + kh, j : j + kw]
            mean = patch.mean(dim=(2, 3))
            if statistic == "mean":
                valid[:, :, i, j] = mean
            else:
                var = ((patch - mean[:, :, None, None]) ** 2).mean(dim=(2, 3))
                valid[:, :, i, j] = (var + CONTRAST_EPS).sqrt() + mean
    top, left = (h - vh) // 2, (w - vw) // 2
    out = torch.empty_like(x)
    for r in range(h):
        for s in range(w):
            out[:, :, r, s] = valid[:, :, min(max(r - top, 0), vh - 1), min(max(s - left, 0), vw - 1)]
    return out


# windows on a 7 x 9 map: both dimensions local (even sizes: odd missing size, floor / ceil split), one
# dimension clipped to the map, window 1 (the identity for the mean)
WINDOWS = [(3, 4), (4, 3), (2, 2), (7, 5), (10, 2), (4, 9), (1, 1)]


@pytest.mark.parametrize("window", WINDOWS)
def test_local_mean_equals_box_filter_by_hand(window: tuple[int, int]) -> None:
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    out = local_mean(x, window)
    assert out.dtype == x.dtype
    torch.testing.assert_close(out.expand_as(x), _hand_local(x, window, "mean"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(LocalAvgPool2d(window)(x), out, rtol=0, atol=0)


@pytest.mark.parametrize("window", WINDOWS)
def test_local_contrast_equals_box_filter_by_hand(window: tuple[int, int]) -> None:
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    out = local_contrast(x, window)
    torch.testing.assert_close(out.expand_as(x), _hand_local(x, window, "contrast"), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(LocalChannelContrast(window)(x), out, rtol=0, atol=0)


def test_local_contrast_float32_on_a_large_mean_matches_float64() -> None:
    # E[x^2] - E[x]^2 without the shift by the channel mean would lose the variance (1e-2) next to 1e4
    x = 100.0 + 0.1 * torch.randn(1, 2, 12, 10, dtype=torch.float64)
    expected = _hand_local(x, (5, 4), "contrast")
    out = local_contrast(x.float(), (5, 4))
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=2e-4)


@pytest.mark.parametrize("size", [(7, 9), (1, 1), (5, 1)])
@pytest.mark.parametrize("window", [(7, 9), (96, 96)])
def test_window_covering_the_map_gives_exactly_the_global_statistic(
    size: tuple[int, int], window: tuple[int, int]
) -> None:
    x = torch.randn(2, 3, *size)
    assert torch.equal(local_mean(x, window), nn.AdaptiveAvgPool2d(1)(x))
    assert torch.equal(local_contrast(x, window), channel_contrast(x))
    # the windowed formula itself, clipped to the map, agrees with the global one (the shortcut is a shortcut)
    clipped = tlc_module.valid_box_mean(x, window)
    torch.testing.assert_close(clipped, x.mean(dim=(2, 3), keepdim=True), rtol=1e-6, atol=1e-6)


def test_local_statistics_keep_dtype_memory_format_and_inference_mode() -> None:
    x = torch.randn(2, 4, 11, 13)
    expected_mean, expected_contrast = local_mean(x, (4, 6)), local_contrast(x, (4, 6))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(local_mean(channels_last, (4, 6)), expected_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(
            local_contrast(channels_last, (4, 6)), expected_contrast, rtol=1e-6, atol=1e-6
        )
        half = local_mean(x.bfloat16(), (4, 6))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), local_mean(x.bfloat16().float(), (4, 6)), rtol=1e-2, atol=1e-2)


def test_local_contrast_gradient_is_finite_on_a_constant_map() -> None:
    x = torch.full((1, 2, 8, 8), 0.75, requires_grad=True)
    local_contrast(x, (3, 3)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _statistic_maps(net: nn.Module, size: int) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """{(H, W) a statistic module sees at a size x size input: {its window}}, from a real forward pass."""
    seen: dict[tuple[int, int], set[tuple[int, int]]] = {}
    modules = [m for m in net.modules() if isinstance(m, (LocalAvgPool2d, LocalChannelContrast))]
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args: seen.setdefault(tuple(args[0].shape[-2:]), set()).add(mod.window)
        )
        for m in modules
    ]
    with torch.no_grad():
        net.eval()(torch.rand(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return seen


def test_msfs_windows_are_96_at_quarter_and_192_at_half_scale() -> None:
    net = convert_to_tlc(MSFSNet(**TINY_MSFS), base_size=384, train_size=256)
    assert set(tlc_windows(net).values()) == {(96, 96), (192, 192)}
    assert len(tlc_windows(net)) == 3  # latent RCAB + one RCAB per decoder stage
    # a real pass at 128: the 1/4-scale maps (32) get 96 = 384 / 4, the 1/2-scale maps (64) 192 = 384 / 2
    assert _statistic_maps(net, 128) == {(32, 32): {(96, 96)}, (64, 64): {(192, 192)}}


def test_fddn_windows_cover_rcab_and_cca() -> None:
    net = convert_to_tlc(FDDN(**TINY_FDDN), base_size=384, train_size=256)
    windows = tlc_windows(net)
    contrast = [name for name in windows if name.endswith(".contrast")]
    assert len(contrast) == 1 and windows[contrast[0]] == (96, 96)  # the FDB's CCA, 1/4 scale
    assert _statistic_maps(net, 128) == {
        (32, 32): {(96, 96)},
        (64, 64): {(192, 192)},
        (128, 128): {(384, 384)},
    }


def test_window_uses_the_networks_padded_size_and_floors() -> None:
    # 250 is padded to 256 by MSFS-Net: 1/4 scale map 64 -> 64 * 384 // 250 = 98
    net = convert_to_tlc(MSFSNet(**TINY_MSFS), base_size=384, train_size=250)
    assert set(tlc_windows(net).values()) == {(98, 98), (196, 196)}


@pytest.mark.parametrize(("build", "kwargs"), [(MSFSNet, TINY_MSFS), (FDDN, TINY_FDDN)])
def test_convert_then_revert_round_trips(build: type[nn.Module], kwargs: dict) -> None:
    net = build(**kwargs).train()
    list(net.modules())[3].eval()  # mixed train / eval modes survive the dry run
    modes = [m.training for m in net.modules()]
    state = copy.deepcopy(net.state_dict())
    reference = copy.deepcopy(net).eval()
    x = torch.rand(1, 3, 72, 88)
    with torch.no_grad():
        expected = reference(x)

    convert_to_tlc(net, base_size=48, train_size=32)  # windows 12 (1/4), 24 (1/2), 48 (full)
    assert is_tlc(net)
    assert [m.training for m in net.modules()] == modes
    converted_state = net.state_dict()
    assert list(converted_state) == list(state)  # the dry run touched no BatchNorm statistics either
    assert all(torch.equal(converted_state[k], v) for k, v in state.items())
    statistics = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: statistics.append(out))
        for m in net.modules()
        if isinstance(m, (LocalAvgPool2d, LocalChannelContrast))
    ]
    with torch.no_grad():
        local = net.eval()(x)
    for hook in hooks:
        hook.remove()
    # maps larger than the windows: per-position statistics that vary over the map, a different output
    assert any(out.shape[-2:] != (1, 1) and out.std(dim=(2, 3)).min() > 0 for out in statistics)
    assert not torch.equal(local, expected)

    assert revert_tlc(net) is net and not is_tlc(net)
    assert [type(m) for m in net.modules()] == [type(m) for m in reference.modules()]
    assert [m.training for m in net.modules()] == [m.training for m in reference.modules()]
    with torch.no_grad():
        assert torch.equal(net(x), expected)
    assert list(net.state_dict()) == list(state)


@pytest.mark.parametrize(("build", "kwargs"), [(MSFSNet, TINY_MSFS), (FDDN, TINY_FDDN)])
def test_converted_net_equals_original_where_windows_cover_the_maps(
    build: type[nn.Module], kwargs: dict
) -> None:
    net = build(**kwargs).eval()
    converted = convert_to_tlc(copy.deepcopy(net), base_size=48, train_size=32)
    x = torch.rand(1, 3, 40, 48)  # <= base_size: every map no larger than its window
    with torch.no_grad():
        assert torch.equal(converted(x), net(x))
    channels_last = copy.deepcopy(converted).to(memory_format=torch.channels_last)
    big = torch.rand(1, 3, 72, 88)
    with torch.inference_mode():
        expected = converted(big)
        out = channels_last(big.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_reconverting_replaces_the_windows() -> None:
    net = convert_to_tlc(MSFSNet(**TINY_MSFS), base_size=48, train_size=32)
    convert_to_tlc(net, base_size=384, train_size=256)
    assert set(tlc_windows(net).values()) == {(96, 96), (192, 192)}


def test_dry_run_falls_back_to_a_real_pass_without_meta_support(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_meta(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("no meta kernel")

    monkeypatch.setattr(tlc_module, "functional_call", no_meta)
    net = convert_to_tlc(FDDN(**TINY_FDDN), base_size=48, train_size=32)
    assert set(tlc_windows(net).values()) == {(12, 12), (24, 24), (48, 48)}


@pytest.mark.parametrize(
    ("base", "train", "key"),
    [
        (256, 384, "tlc.base_size must be >= tlc.train_size"),
        (0, 256, "tlc.base_size"),
        (384, -1, "tlc.train_size"),
        (384.0, 256, "tlc.base_size"),
        (384, True, "tlc.train_size"),
        ("384", 256, "tlc.base_size"),
    ],
)
def test_bad_sizes_name_the_key(base: object, train: object, key: str) -> None:
    net = nn.Sequential(RCAB(4, 2))
    with pytest.raises(ValueError, match=key):
        convert_to_tlc(net, base_size=base, train_size=train)  # type: ignore[arg-type]
    assert not is_tlc(net)


def test_network_without_attention_is_refused() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), ResidualBlock(4))
    with pytest.raises(ValueError, match=r"TLC needs channel attention \(RCAB / CCA\).*has none"):
        convert_to_tlc(net)


def test_unknown_statistic_module_is_refused() -> None:
    attention = ChannelAttention(4, 2)
    attention.squeeze = nn.AdaptiveMaxPool2d(1)
    with pytest.raises(TypeError, match="squeeze is a AdaptiveMaxPool2d"):
        convert_to_tlc(nn.Sequential(attention))


def test_attention_is_found_by_type_in_any_network() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), RCAB(4, 2), ContrastAwareChannelAttention(4, 2))
    convert_to_tlc(net, base_size=24, train_size=16)
    assert tlc_windows(net) == {"1.body.3.squeeze": (24, 24), "2.contrast": (24, 24)}
    assert isinstance(revert_tlc(net)[2].contrast, ChannelContrast)
    assert isinstance(net[1].body[3].squeeze, nn.AdaptiveAvgPool2d)


def test_converted_net_runs_with_the_speed_options() -> None:
    from deblur.metrics.agreement import output_psnr
    from deblur.speed.options import TOLERANCES, InferenceOptions
    from deblur.speed.transforms import inference_context, prepare_for_inference, to_input

    net = convert_to_tlc(MSFSNet(**TINY_MSFS).eval(), base_size=48, train_size=32)
    x = torch.rand(1, 3, 72, 88)
    with torch.no_grad():
        expected = net(x)
    options = InferenceOptions(channels_last=True, precision="bf16", fold_batchnorm=True)
    device = torch.device("cpu")
    prepared = prepare_for_inference(net, options, device)
    assert is_tlc(prepared) and tlc_windows(prepared) == tlc_windows(net)
    with inference_context(options, device):
        out = prepared(to_input(x, options)).float()
    assert output_psnr(expected, out) >= TOLERANCES["bf16"]
