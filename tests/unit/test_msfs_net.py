"""MSFS-Net wiring: published size, any input size, features, ablations, bad arguments, old key names."""

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from deblur.models import MSFSNet
from deblur.models.msfs.csffm import NoSkip
from deblur.models.msfs.net import upgrade_state_dict
from deblur.models.norm_stats import batchnorm_layers, use_batchnorm_stats

TINY = dict(width=8, encoder_blocks=1, latent_blocks=1, decoder_blocks=1, reduction=4)
#: key names and shapes of a state dict written before the named stages (tests/data)
LEGACY_TSV = Path(__file__).parents[1] / "data" / "msfs_legacy_state_dict_tiny.tsv"
LEGACY_CFG = dict(width=4, encoder_blocks=1, latent_blocks=1, decoder_blocks=2, reduction=2)


def test_default_is_the_published_size():
    params = sum(p.numel() for p in MSFSNet().parameters())
    assert abs(params - 21_586_291) / 21_586_291 < 0.05, params


@pytest.mark.parametrize(
    "use_fsm, use_csffm, use_skip",
    [(True, True, True), (False, True, True), (True, False, True), (True, False, False)],
)
def test_odd_sizes_come_back_at_the_same_size(use_fsm, use_csffm, use_skip):
    net = MSFSNet(**TINY, use_fsm=use_fsm, use_csffm=use_csffm, use_skip=use_skip)
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
    for stage in (net.encoder.blocks_full, net.encoder.blocks_half):
        grad = stage[0].body[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0


def test_raw_image_residual_makes_a_zero_output_conv_the_identity():
    net = MSFSNet(**TINY).eval()
    net.conv_last.weight.data.zero_()
    net.conv_last.bias.data.zero_()
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


def test_stages_run_top_down_at_their_scales():
    net = MSFSNet(**TINY)
    order: list[tuple[str, tuple[int, int]]] = []
    names = ["latent", "decoder_fsm_quarter", "fusion_quarter", "decoder_quarter", "decoder_fsm_half",
             "fusion_half", "decoder_half", "decoder_fsm_full", "conv_last"]  # fmt: skip
    for name in names:
        getattr(net, name).register_forward_hook(
            lambda _m, inputs, _o, name=name: order.append((name, tuple(inputs[0].shape[-2:])))
        )
    net(torch.rand(1, 3, 32, 64))
    assert order == [
        ("latent", (8, 16)), ("decoder_fsm_quarter", (8, 16)), ("fusion_quarter", (8, 16)),
        ("decoder_quarter", (8, 16)), ("decoder_fsm_half", (16, 32)), ("fusion_half", (16, 32)),
        ("decoder_half", (16, 32)), ("decoder_fsm_full", (32, 64)), ("conv_last", (32, 64)),
    ]  # fmt: skip


def _legacy_state() -> dict[str, torch.Tensor]:
    lines = [line for line in LEGACY_TSV.read_text().splitlines() if not line.startswith("#")]
    shapes = [(key, ast.literal_eval(shape)) for key, shape in (line.split("\t") for line in lines)]
    gen = torch.Generator().manual_seed(0)
    return {key: torch.randn(shape, generator=gen) for key, shape in shapes}


def test_old_key_names_upgrade_in_the_same_order():
    old = _legacy_state()
    assert "head.weight" in old and "decoder_fsm.2.split.conv.h2h.weight" in old and "fusion.1.theta" in old
    net = MSFSNet(**LEGACY_CFG)
    new = upgrade_state_dict(old)
    # same names as today's and in the same order: the parameter order (optimizer state) is unchanged
    assert list(new) == list(net.state_dict())
    assert upgrade_state_dict(new) == new  # current names pass unchanged
    assert [tuple(v.shape) for v in new.values()] == [tuple(v.shape) for v in net.state_dict().values()]


def test_old_checkpoints_load_by_themselves_with_every_tensor_in_its_stage():
    old = _legacy_state()
    net = MSFSNet(**LEGACY_CFG)
    net.load_state_dict(old, strict=True)
    # the old index k was the scale 1/2^k; fusion and decoder indices counted from the 1/2 scale
    pairs = {
        "head.weight": net.conv_last.weight,
        "decoder_fsm.2.exchange.norm_low.running_var": net.decoder_fsm_quarter.exchange.norm_low.running_var,
        "decoder_fsm.0.shortcut.weight": net.decoder_fsm_full.shortcut.weight,
        "fusion.1.theta": net.fusion_quarter.theta,
        "fusion.0.theta": net.fusion_half.theta,
        "decoder.1.0.body.3.excite.0.weight": net.decoder_quarter.blocks[0].body[3].excite[0].weight,
        "decoder.1.2.conv.weight": net.decoder_quarter.up.conv.weight,
        "decoder.0.1.body.2.bias": net.decoder_half.blocks[1].body[2].bias,
        "encoder.blocks.1.0.body.0.weight": net.encoder.blocks_half[0].body[0].weight,
        "encoder.down.0.0.weight": net.encoder.down_half[0].weight,
        "encoder.fsm.2.fuse.conv.l2h.weight": net.encoder.fsm_quarter.fuse.conv.l2h.weight,
        "anchor_projection.1.bias": net.anchor_projection_half.bias,
    }
    for key, tensor in pairs.items():
        assert torch.equal(tensor, old[key]), key
    wrapper = nn.ModuleDict({"net": MSFSNet(**LEGACY_CFG)})  # a Lightning checkpoint's ``net.`` prefix
    wrapper.load_state_dict({f"net.{k}": v for k, v in old.items()}, strict=True)
    assert torch.equal(wrapper["net"].decoder_quarter.up.conv.bias, old["decoder.1.2.conv.bias"])


def test_public_layout_options_change_only_their_part():
    ours = MSFSNet(**TINY)
    public = MSFSNet(
        **TINY, fsm_conv_shortcut=True, concat_encoder_first=True, out_kernel_size=1,
        shared_anchor_projection=True, aux_outputs=True,
    )  # fmt: skip
    fsms = ["encoder.fsm_full", "encoder.fsm_half", "encoder.fsm_quarter", "decoder_fsm_quarter"]
    for name in fsms:  # equal widths: identity ours, 1x1 conv with bias public
        assert isinstance(ours.get_submodule(name).shortcut, nn.Identity)
        assert public.get_submodule(name).shortcut.bias is not None
    assert ours.conv_last.kernel_size == (3, 3) and public.conv_last.kernel_size == (1, 1)
    extra = set(public.state_dict()) - set(ours.state_dict())
    assert {k.rsplit(".", 1)[0] for k in extra} == {
        *(f"{name}.shortcut" for name in fsms),
        "anchor_projection",
        "aux_conv_half",
        "aux_conv_quarter",
    }
    assert set(ours.state_dict()) - set(public.state_dict()) == {
        f"anchor_projection_{scale}.{p}" for scale in ("full", "half") for p in ("weight", "bias")
    }
    with pytest.raises(ValueError, match="out_kernel_size"):
        MSFSNet(**TINY, out_kernel_size=2)


def test_an_old_and_a_new_name_for_the_same_tensor_fail():
    net = MSFSNet(**LEGACY_CFG)
    state = {**net.state_dict(), "head.weight": torch.zeros_like(net.conv_last.weight)}
    with pytest.raises(ValueError, match="head.weight"):
        net.load_state_dict(state)


# ---------------------------------------------------------------- "w/o CSFFM", second reading: no skip
def _skip_path_gradients(net: MSFSNet, x: torch.Tensor) -> list[torch.Tensor | None]:
    """d output / d f_en for the encoder feature each fusion receives, through the fusion alone: f_en is
    replaced by a copy that nothing else uses, so the latent path (which also starts at f_en) is left out."""
    copies: list[torch.Tensor] = []

    def swap(_module, args):
        copies.append(args[0].detach().clone().requires_grad_(True))
        return (copies[-1], args[1])

    fusions = ("fusion_quarter", "fusion_half")
    handles = [net.get_submodule(n).register_forward_pre_hook(swap) for n in fusions]
    out = net(x)
    for handle in handles:
        handle.remove()
    return list(torch.autograd.grad(out.sum(), copies, allow_unused=True))


def _output_with_noise_for_f_en(net: MSFSNet, x: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    hooks = [
        net.get_submodule(n).register_forward_pre_hook(
            lambda _m, args: (torch.randn(args[0].shape, generator=gen), args[1])
        )
        for n in ("fusion_quarter", "fusion_half")
    ]
    out = net(x)
    for hook in hooks:
        hook.remove()
    return out


@pytest.mark.parametrize("use_skip, use_csffm", [(False, False), (False, True), (True, True), (True, False)])
def test_without_skip_the_decoder_never_uses_the_encoder_features(use_skip, use_csffm):
    torch.manual_seed(0)
    net = MSFSNet(**TINY, use_skip=use_skip, use_csffm=use_csffm).eval()
    x = torch.rand(1, 3, 16, 16)
    grads = _skip_path_gradients(net, x)
    with torch.no_grad():
        changed = not torch.equal(net(x), _output_with_noise_for_f_en(net, x))
    if use_skip:  # CSFFM or plain concatenation: an encoder-to-decoder path at both scales
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
        assert changed
    else:  # only the latent path: f_en reaches the output through nothing else
        assert all(g is None or g.abs().sum() == 0 for g in grads)
        assert not changed
        assert isinstance(net.fusion_half, NoSkip) and isinstance(net.fusion_quarter, NoSkip)


def test_no_skip_keeps_the_decoder_layout_and_pads_with_zeros():
    concat, no_skip = MSFSNet(**TINY, use_csffm=False), MSFSNet(**TINY, use_skip=False)
    shapes = {k: v.shape for k, v in concat.state_dict().items()}
    assert {k: v.shape for k, v in no_skip.state_dict().items()} == shapes  # same checkpoint layout
    f_en, f_de = torch.rand(1, 4, 3, 3), torch.rand(1, 4, 3, 3)
    assert torch.equal(NoSkip()(f_en, f_de), torch.cat([f_de, torch.zeros_like(f_de)], 1))
    assert torch.equal(NoSkip(encoder_first=True)(f_en, f_de), torch.cat([torch.zeros_like(f_de), f_de], 1))
    # the encoder still trains, through the latent path
    no_skip(torch.rand(1, 3, 16, 16)).mean().backward()
    assert no_skip.encoder.blocks_full[0].body[0].weight.grad.abs().sum() > 0


def test_no_skip_ablation_config_builds_the_no_skip_model(tmp_path):
    from deblur.config.compose import compose
    from deblur.models.build import build_model

    cfg = compose("train", ["ablation=msfs/no_skip", f"paths.output_dir={tmp_path}", "model.width=8"])
    assert (cfg.model.use_skip, cfg.model.use_csffm, cfg.ablation_name) == (False, False, "msfs/no_skip")
    assert cfg.loss.reencode_batchnorm == "batch"
    assert isinstance(build_model(cfg.model).fusion_half, NoSkip)


# ---------------------------------------------------------------- BatchNorm in the re-encoding pass
def _running(net: MSFSNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.encoder.state_dict().items() if "running" in k or "num_batches" in k}


def test_a_training_forward_records_the_encoder_batch_statistics():
    net = MSFSNet(**TINY).train()
    x = torch.rand(2, 3, 16, 16) * 3 + 1
    _, feats = net(x, return_features=True)
    assert set(feats.encoder_norm_stats) == set(batchnorm_layers(net.encoder))
    assert len(feats.encoder_norm_stats) == 15  # 3 FSMs x 5 BatchNorms
    # checked by hand on one BatchNorm's own input
    seen = {}
    bn = net.encoder.fsm_full.split.norm_high
    handle = bn.register_forward_pre_hook(lambda _m, a: seen.setdefault("x", a[0].detach()))
    _, feats = net(x, return_features=True)
    handle.remove()
    mean, var = feats.encoder_norm_stats["fsm_full.split.norm_high"]
    assert torch.allclose(mean, seen["x"].mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(var, seen["x"].var((0, 2, 3), unbiased=False), atol=1e-6)
    # eval mode normalises with the running estimates: nothing to record
    assert net.eval()(x, return_features=True)[1].encoder_norm_stats is None
    assert MSFSNet(**TINY, norm="none")(x, return_features=True)[1].encoder_norm_stats is None


def test_frozen_reencoding_uses_the_blurry_statistics_and_leaves_the_running_ones():
    torch.manual_seed(0)
    net = MSFSNet(**TINY).train()
    x = torch.rand(2, 3, 16, 16)
    pred, feats = net(x, return_features=True)
    after_forward = _running(net)
    # the blurry input again, with its own statistics: exactly the forward's encoder features
    highs, lows = net.encode_frequencies(x, norm_stats=feats.encoder_norm_stats)
    for ours, theirs in zip(highs + lows, feats.enc_high + feats.enc_low, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)
    net.encode_frequencies(pred.detach() * 2, norm_stats=feats.encoder_norm_stats)
    for key, value in _running(net).items():
        assert torch.equal(value, after_forward[key]), key  # running_mean/var, num_batches_tracked
    assert all(bn.training for bn in batchnorm_layers(net.encoder).values())  # mode restored
    # "batch": the re-encoding moves the running estimates
    net.encode_frequencies(pred.detach() * 2)
    moved = _running(net)
    assert any(not torch.equal(moved[k], after_forward[k]) for k in moved if "running_mean" in k)
    assert all(moved[k] == after_forward[k] + 1 for k in moved if k.endswith("num_batches_tracked"))


def test_frozen_reencoding_passes_gradients_to_the_image_and_needs_every_layer():
    net = MSFSNet(**TINY).train()
    _, feats = net(torch.rand(2, 3, 16, 16), return_features=True)
    image = torch.rand(2, 3, 16, 16, requires_grad=True)
    highs, _ = net.encode_frequencies(image, norm_stats=feats.encoder_norm_stats)
    highs[0].sum().backward()
    assert image.grad.abs().sum() > 0 and net.encoder.fsm_full.split.norm_high.weight.grad is not None
    stats = dict(feats.encoder_norm_stats)
    stats.pop("fsm_half.fuse.norm_high")
    with pytest.raises(ValueError, match="fsm_half.fuse.norm_high"), use_batchnorm_stats(net.encoder, stats):
        pass
