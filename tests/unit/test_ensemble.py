"""x8 self-ensemble: the dihedral transforms and their inverses, and ``restore(..., self_ensemble=True)``
against the 8 outputs computed by hand (whole image, tiled, TLC; non-square images), with networks that are
not rotation/flip equivariant, so a transform not undone, or one left out of the mean, changes the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deblur.config.inference_settings import InferenceSettings, TLCSettings
from deblur.ensemble import TRANSFORMS, dihedral, self_ensemble, undo_dihedral
from deblur.inference import pad_and_run, prepare_network, restore, tiled_inference
from deblur.models.build import build_model
from deblur.speed.options import InferenceOptions
from tests.tiny import TINY_MSFS

#: the 8 symmetries of the square and their inverses, written out independently of deblur.ensemble
HAND = [
    (lambda t: t, lambda t: t),  # identity
    (lambda t: t.transpose(-2, -1).flip(-2), lambda t: t.flip(-2).transpose(-2, -1)),  # 90 deg
    (lambda t: t.flip(-2, -1), lambda t: t.flip(-2, -1)),  # 180 deg
    (lambda t: t.transpose(-2, -1).flip(-1), lambda t: t.flip(-1).transpose(-2, -1)),  # 270 deg
    (lambda t: t.flip(-1), lambda t: t.flip(-1)),  # mirror left-right
    (lambda t: t.flip(-2), lambda t: t.flip(-2)),  # mirror top-bottom
    (lambda t: t.transpose(-2, -1), lambda t: t.transpose(-2, -1)),  # transpose
    # anti-transpose
    (lambda t: t.flip(-2, -1).transpose(-2, -1), lambda t: t.transpose(-2, -1).flip(-2, -1)),
]
#: explicit fp32 NCHW options: no probe, and the hand runs see the same network as restore
FP32 = {"channels_last": False, "precision": "fp32", "fold_batchnorm": False, "compile": False}


class Skewed(nn.Module):
    """A tiny conv net with random, asymmetric kernels (not equivariant) that needs sizes divisible by 8."""

    multiple = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, 3, (3, 5), padding=(1, 2))
        )
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        self.seen.append(tuple(x.shape[-2:]))
        return x + 0.3 * self.body(x)


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def _by_hand(run, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The 8 outputs, each turned back, and their mean clamped to [0, 1] (what restore returns)."""
    with torch.inference_mode():
        outs = [inverse(run(forward(x))) for forward, inverse in HAND]
    return outs, torch.stack(outs).mean(0).clamp(0, 1)


def _all_differ(outs: list[torch.Tensor]) -> bool:
    """Whether the 8 outputs differ pairwise: the network is not equivariant, so the test is sensitive."""
    return all((a - b).abs().max() > 1e-4 for i, a in enumerate(outs) for b in outs[i + 1 :])


# ---------------------------------------------------------------- the transforms
def test_each_transform_is_undone_exactly_and_the_8_are_the_symmetries_of_the_square():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    hand = [forward(x) for forward, _ in HAND]
    matched = set()
    for k in range(TRANSFORMS):
        t = dihedral(x, k)
        assert t.shape[-2:] == ((7, 5) if k % 2 else (5, 7))  # odd quarter turns swap H and W
        assert torch.equal(undo_dihedral(t, k), x)
        same = [i for i, h in enumerate(hand) if h.shape == t.shape and torch.equal(h, t)]
        assert len(same) == 1
        matched.add(same[0])
    assert matched == set(range(8))  # all 8 symmetries, none twice


@pytest.mark.parametrize("k", [-1, 8, 1.0, True])
def test_a_transform_index_outside_0_to_7_is_refused(k):
    with pytest.raises(ValueError, match=r"integer in \[0, 8\)"):
        dihedral(torch.zeros(1, 1, 2, 2), k)


def test_self_ensemble_is_the_mean_of_the_8_outputs_turned_back():
    net = Skewed().eval()
    x = _image(16, 24)
    outs, _ = _by_hand(net, x)
    assert _all_differ(outs)
    with torch.inference_mode():
        got = self_ensemble(net, x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got, torch.stack(outs).mean(0), rtol=0, atol=1e-6)
    assert sorted(net.seen[-8:]) == [(16, 24)] * 4 + [(24, 16)] * 4  # each orientation of the input


# ---------------------------------------------------------------- through restore
@pytest.mark.parametrize("tile", [None, 16])
def test_restore_self_ensemble_on_a_non_square_image_pads_and_tiles_each_orientation(tile):
    """21 x 37: padded to 24 x 40 upright and 40 x 24 on its side; with tile=16 each orientation has its own
    grid of windows (2 x 3 upright, 3 x 2 on its side)."""
    net = Skewed().eval()
    x = _image(21, 37, seed=1)

    def run(z: torch.Tensor) -> torch.Tensor:
        return pad_and_run(net, z) if tile is None else tiled_inference(net, z, tile, 4)

    outs, expected = _by_hand(run, x)
    assert _all_differ(outs)
    got = restore(net, x, tile, tile_overlap=4, self_ensemble=True)
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    single = restore(net, x, tile, tile_overlap=4)
    assert (got - single).abs().max() > 1e-3  # off by default: one run
    # uint8 numpy images take the same path: the mean, rounded once
    image = np.rint(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    _, from_uint8 = _by_hand(run, torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    out = restore(net, image, tile, tile_overlap=4, self_ensemble=True)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.rint(from_uint8[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))


def _tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = build_model(TINY_MSFS if name == "msfs" else "nafnet_small")
    with torch.no_grad():  # fresh weights barely use the attentions: give TLC something to change
        for key, p in net.named_parameters():
            if name == "msfs":
                p.add_(torch.randn_like(p) * 0.1)
            elif key.endswith(("beta", "gamma")):  # NAFNet's layer scales start at zero (identity blocks)
                p.normal_(0, 0.5)
    return net.eval()


@pytest.mark.parametrize("name", ["msfs", "nafnet"])
@pytest.mark.parametrize("tile", [None, 32])
def test_restore_self_ensemble_with_tlc_matches_the_hand_mean(name, tile):
    """TLC with a 24-pixel window (base_size 24 / train_size 16) on a 40 x 56 image (or 32-pixel tiles):
    local statistics in every orientation; the prepared (converted) network is the one the 8 runs share."""
    x = _image(40, 56, seed=2)
    tlc = TLCSettings(enabled=True, base_size=24, train_size=16)
    settings = InferenceSettings(
        device="cpu", tile=tile, tile_overlap=8, speed=FP32, tlc=tlc, self_ensemble=True
    )
    net, options, _ = prepare_network(_tiny(name), settings)
    assert options == InferenceOptions()

    def run(z: torch.Tensor) -> torch.Tensor:
        return pad_and_run(net, z) if tile is None else tiled_inference(net, z, tile, 8)

    outs, expected = _by_hand(run, x)
    assert _all_differ(outs)
    got = restore(net, x, settings.tile, options, settings.tile_overlap, self_ensemble=settings.self_ensemble)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    plain, _, _ = prepare_network(_tiny(name), InferenceSettings(device="cpu", speed=FP32))
    without_tlc = restore(plain, x, tile, options, 8, self_ensemble=True)
    assert (got - without_tlc).abs().max() > 1e-4  # TLC was on in the ensemble's runs


# ---------------------------------------------------------------- the setting
def test_the_self_ensemble_setting_defaults_to_off_and_must_be_a_boolean():
    assert InferenceSettings().self_ensemble is False
    assert InferenceSettings.from_config({}).self_ensemble is False
    assert InferenceSettings.from_config({"self_ensemble": True}).self_ensemble is True
    with pytest.raises(ValueError, match="self_ensemble must be true or false, got 'yes'"):
        InferenceSettings.from_config({"self_ensemble": "yes"})
