"""The authors' released MSFS-Net weights: format detection, key conversion, and the public-layout options.

tests/data/msfs_public_state_dict.tsv lists every key of the public ``FreNet`` state dict with its shape and
dtype (a copy of the checked facts in the shared reference, measured from the authors' code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deblur.losses.msfs import MSFSLoss
from deblur.models import MSFSNet
from deblur.models.build import build_model
from deblur.models.msfs.public import (
    PUBLIC_MODEL_CONFIG,
    convert_public_state_dict,
    is_public_checkpoint,
    public_key_map,
    public_model_config,
    state_from_public_checkpoint,
)

MANIFEST = Path(__file__).parents[1] / "data" / "msfs_public_state_dict.tsv"
PUBLIC_OPTIONS = dict(
    fsm_conv_shortcut=True,
    concat_encoder_first=True,
    out_kernel_size=1,
    shared_anchor_projection=True,
    aux_outputs=True,
    skip_first_encoder_blocks=True,
)
TINY = dict(width=8, encoder_blocks=2, latent_blocks=1, decoder_blocks=1, reduction=4)
TINY_PUBLIC = {**TINY, **PUBLIC_OPTIONS}


def _manifest() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    lines = MANIFEST.read_text().splitlines()[1:]  # header: key, shape, dtype
    rows = [line.split("\t") for line in lines]
    return [(key, ast.literal_eval(shape), getattr(torch, dtype)) for key, shape, dtype in rows]


@pytest.fixture(scope="module")
def public_state() -> dict[str, torch.Tensor]:
    """All 852 public keys with random values of the published shapes and dtypes."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in _manifest():
        if dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=gen, dtype=dtype)
        else:
            state[key] = torch.randint(0, 1000, shape, generator=gen, dtype=dtype)
    return state


@pytest.fixture(scope="module")
def loaded(public_state) -> MSFSNet:
    net = build_model(public_model_config())
    net.load_state_dict(convert_public_state_dict(public_state), strict=True)
    return net


def test_the_key_map_covers_exactly_the_published_keys_and_sizes():
    manifest = _manifest()
    assert len(manifest) == 852
    assert set(public_key_map()) == {key for key, _, _ in manifest}
    with torch.device("meta"):
        net = build_model(public_model_config())
    assert sum(p.numel() for p in net.parameters()) == 21_586_291  # the public model's count
    assert len(net.state_dict()) == 852


def test_converts_and_loads_strictly_with_every_tensor_where_the_map_says(public_state, loaded):
    theirs = public_state
    converted = convert_public_state_dict(public_state)
    ours = loaded.state_dict()
    assert set(converted) == set(ours)  # nothing left over, nothing missing
    for public, key in public_key_map().items():
        assert torch.equal(ours[key], public_state[public].reshape(ours[key].shape)), (public, key)
    # the places that differ between the two namings, by hand
    assert torch.equal(loaded.conv_last.weight, theirs["tail_.weight"])
    assert loaded.fusion_quarter.theta.shape == () and theirs["mix1.w"].shape == (1,)
    assert loaded.fusion_quarter.theta.item() == theirs["mix1.w"].item()
    assert loaded.fusion_half.theta.item() == theirs["mix2.w"].item()
    half_fsm = loaded.decoder_fsm_half  # octblock.4: the FSM after the first up-sampling
    assert torch.equal(half_fsm.exchange.conv.h2l.weight, theirs["octblock.4.oct2.conv.conv_h2l.weight"])
    assert torch.equal(half_fsm.shortcut.bias, theirs["octblock.4.conv.bias"])
    assert torch.equal(half_fsm.split.norm_low.running_var, theirs["octblock.4.oct1.bn_l.running_var"])
    assert torch.equal(
        loaded.decoder_fsm_quarter.fuse.norm_high.weight, theirs["octblock.3.oct3.bn_h.weight"]
    )
    assert torch.equal(loaded.encoder.fsm_half.shortcut.weight, theirs["octblock.1.conv.weight"])
    # Decoder.0 runs first, at 1/4 scale
    quarter = loaded.decoder_quarter
    assert torch.equal(quarter.blocks[29].body[2].weight, theirs["Decoder.0.layers.29.body.2.weight"])
    assert torch.equal(
        quarter.blocks[0].body[3].excite[2].bias, theirs["Decoder.0.layers.0.body.3.conv_du.2.bias"]
    )
    assert torch.equal(quarter.up.conv.weight, theirs["Decoder.0.up.0.weight"])
    assert torch.equal(loaded.decoder_half.up.conv.bias, theirs["Decoder.1.up.0.bias"])
    assert torch.equal(
        loaded.encoder.blocks_full[7].body[2].weight, theirs["Encoder.0.layers.7.main.1.main.0.weight"]
    )
    assert torch.equal(
        loaded.encoder.blocks_half[0].body[0].bias, theirs["Encoder.2.layers.0.main.0.main.0.bias"]
    )
    assert torch.equal(loaded.encoder.down_quarter[0].weight, theirs["Encoder.3.dual_module.0.0.weight"])
    assert torch.equal(loaded.encoder.stem[0].weight, theirs["conv.main.0.weight"])
    assert torch.equal(loaded.anchor_projection.weight, theirs["changeChannel_.weight"])
    assert torch.equal(loaded.aux_conv_half.weight, theirs["conv_2_.weight"])
    assert torch.equal(loaded.aux_conv_quarter.bias, theirs["conv_4.bias"])


def test_checkpoint_format_is_recognised_by_content(public_state):
    prefixed = {f"module.{k}": v for k, v in public_state.items()}
    assert is_public_checkpoint({"model": public_state})
    assert is_public_checkpoint({"model": prefixed, "epoch": 3000, "optimizer": {"state": {}}})
    assert convert_public_state_dict(prefixed).keys() == convert_public_state_dict(public_state).keys()
    ours = MSFSNet(**TINY_PUBLIC).state_dict()
    for obj in (public_state, {"model": ours}, {"state_dict": public_state}, {"model": {"tail_.weight": 1}},
                {"model": {}}, None, [public_state]):  # fmt: skip
        assert not is_public_checkpoint(obj)
    converted = state_from_public_checkpoint({"model": prefixed, "epoch": 1})
    assert converted.keys() == set(public_key_map().values())
    with pytest.raises(ValueError, match="public code"):
        state_from_public_checkpoint({"model": ours})


def test_a_missing_or_an_extra_key_fails_listing_the_counts(public_state):
    missing = {k: v for k, v in public_state.items() if k != "tail_.bias"}
    counts = r"0 of 851 given.*1 of 852 expected public key\(s\) are missing.*tail_\.bias"
    with pytest.raises(ValueError, match=counts):
        convert_public_state_dict(missing)
    extra = {**public_state, "conv_8.weight": torch.zeros(1)}
    counts = r"1 of 853 given key\(s\) do not map.*conv_8\.weight.*0 of 852 expected"
    with pytest.raises(ValueError, match=counts):
        convert_public_state_dict(extra)
    with pytest.raises(ValueError, match="mix1.w should hold one value"):
        convert_public_state_dict({**public_state, "mix1.w": torch.zeros(2)})


def test_the_config_constant_is_the_msfs_public_preset():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from deblur.config import register_configs
    from deblur.paths import CONF_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=msfs_public"])
    assert OmegaConf.to_container(cfg.model, resolve=True) == public_model_config()
    assert PUBLIC_MODEL_CONFIG["csffm_init"] == (-1.0, -0.6)


# ---------------------------------------------------------------- the public layout's options (tiny widths)
def _perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5)


def test_encoder_defect_skips_the_first_stage_blocks_on_the_blurry_path_only():
    torch.manual_seed(0)
    net = MSFSNet(**TINY_PUBLIC).eval()
    fixed = MSFSNet(**{**TINY_PUBLIC, "skip_first_encoder_blocks": False}).eval()
    fixed.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        before, before_fixed, (highs, _) = net(x), fixed(x), net.encode_frequencies(x)
        _perturb(net.encoder.blocks_full)
        _perturb(fixed.encoder.blocks_full)
        after, after_fixed, (highs_after, _) = net(x), fixed(x), net.encode_frequencies(x)
    assert torch.equal(after, before)  # the blurry path does not see encoder.blocks_full
    assert not torch.allclose(after_fixed, before_fixed)  # ours does
    assert torch.equal(highs_after[0], highs[0])  # the full-scale FSM comes before the blocks
    assert not torch.allclose(highs_after[1], highs[1])  # re-encoding an image goes through them
    net.train()
    net(x).mean().backward()
    assert all(p.grad is None for p in net.encoder.blocks_full.parameters())
    assert net.encoder.blocks_half[0].body[0].weight.grad.abs().sum() > 0


def test_aux_heads_are_off_the_inference_path():
    net = MSFSNet(**TINY_PUBLIC).eval()
    calls: list[str] = []
    for name in ("aux_conv_half", "aux_conv_quarter"):
        getattr(net, name).register_forward_hook(lambda *_, name=name: calls.append(name))
    x = torch.rand(2, 3, 21, 35)
    with torch.no_grad():
        image = net(x)
        _, features = net(x, return_features=True)
        assert calls == [] and features is not None
        same, aux = net(x, return_aux=True)
    assert calls == ["aux_conv_half", "aux_conv_quarter"] and torch.equal(same, image)
    assert aux.half.shape == (2, 3, 11, 18) and aux.quarter.shape == (2, 3, 6, 9)
    with pytest.raises(ValueError, match="aux_outputs"):
        MSFSNet(**{**TINY_PUBLIC, "aux_outputs": False})(x, return_aux=True)


def test_aux_image_is_its_head_plus_the_nearest_down_sampled_input():
    net = MSFSNet(**TINY_PUBLIC).eval()
    x = torch.rand(1, 3, 32, 48)
    seen = {}
    net.decoder_fsm_half.register_forward_hook(lambda _m, _i, out: seen.update(half=out.output))
    net.decoder_fsm_quarter.register_forward_hook(lambda _m, _i, out: seen.update(quarter=out.output))
    with torch.no_grad():
        _, features, aux = net(x, return_features=True, return_aux=True)
        half = net.aux_conv_half(seen["half"]) + x[..., ::2, ::2]
        quarter = net.aux_conv_quarter(seen["quarter"]) + F.interpolate(x, scale_factor=0.25, mode="nearest")
    torch.testing.assert_close(aux.half, half)
    torch.testing.assert_close(aux.quarter, quarter)
    assert torch.equal(x[..., ::4, ::4], F.interpolate(x, scale_factor=0.25, mode="nearest"))


def test_loss_features_work_with_one_shared_anchor_projection():
    net = MSFSNet(**TINY_PUBLIC)
    seen = {}
    net.decoder_fsm_full.register_forward_hook(lambda _m, _i, out: seen.update(full=out.high))
    net.decoder_fsm_half.register_forward_hook(lambda _m, _i, out: seen.update(half=out.high))
    x, y = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 16, 24)
    pred, features = net(x, return_features=True)
    torch.testing.assert_close(features.dec_high[0], net.anchor_projection(seen["full"]))
    torch.testing.assert_close(features.dec_high[1], net.anchor_projection(seen["half"]))
    for k in range(3):
        assert features.dec_high[k].shape == features.enc_high[k].shape == (1, 4, 16 >> k, 24 >> k)
    total, parts = MSFSLoss()(pred, y, features=features, encode=net.encode_frequencies)
    assert {"l1", "clm", "consistency"} <= set(parts) and torch.isfinite(total)
    total.backward()
    assert net.anchor_projection.weight.grad.abs().sum() > 0
