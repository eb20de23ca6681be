"""Whole-image inference: padding to the network's multiple, tiled inference, checkpoint loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data, transform
from torch import nn

from deblur.checkpoints import CheckpointError, load_model
from deblur.inference import pad_and_run, tile_starts, tiled_inference
from deblur.models.msfs.net import MSFSNet

TINY = {"width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1, "reduction": 4}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2)))


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The astronaut photo resized to 128x160, (1, 3, H, W) in [0, 1]."""
    img = transform.resize(data.astronaut(), (128, 160), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def net() -> MSFSNet:
    torch.manual_seed(0)
    return MSFSNet(**TINY).eval()


class NeedsMultiple(nn.Module):
    """A 'network' that only accepts sizes divisible by 8 and records what it saw."""

    multiple = 8

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        self.seen.append(tuple(x.shape[-2:]))
        return x * 2


def test_pad_and_run_pads_to_the_multiple_and_crops_back():
    fake = NeedsMultiple()
    x = torch.rand(1, 3, 21, 30)
    y = pad_and_run(fake, x)
    assert fake.seen == [(24, 32)] and y.shape == x.shape
    torch.testing.assert_close(y, x * 2)


def test_tiled_matches_untiled_within_0p1_db(net, photo):
    with torch.inference_mode():
        full = pad_and_run(net, photo)
        tiled = tiled_inference(net, photo, tile=64, tile_overlap=16)
    assert tiled.shape == full.shape == photo.shape
    assert abs(_psnr(tiled, photo) - _psnr(full, photo)) < 0.1
    assert _psnr(tiled, full) > 50  # the two outputs themselves agree closely


@pytest.mark.parametrize("size, tile, overlap", [((77, 101), 40, 8), ((33, 70), 32, 0), ((50, 20), 24, 12)])
def test_odd_sizes_keep_their_shape(net, photo, size, tile, overlap):
    x = photo[..., : size[0], : size[1]]
    with torch.inference_mode():
        full = pad_and_run(net, x)
        tiled = tiled_inference(net, x, tile=tile, tile_overlap=overlap)
    assert full.shape == tiled.shape == x.shape
    assert abs(_psnr(tiled, x) - _psnr(full, x)) < 0.1


def test_blending_is_seamless_for_a_local_network(photo):
    """A 5x5-receptive-field net: tiles overlapping by more than that reproduce the whole-image output
    away from the image border (where the tile border padding differs only inside the ramps)."""
    torch.manual_seed(0)
    local = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    with torch.inference_mode():
        full = local(photo)
        tiled = tiled_inference(local, photo, tile=48, tile_overlap=16)
    assert _psnr(tiled, full) > 45


def test_small_images_run_in_one_piece_and_bad_arguments_fail(net, photo):
    x = photo[..., :40, :48]
    with torch.inference_mode():
        torch.testing.assert_close(tiled_inference(net, x, tile=64, tile_overlap=16), pad_and_run(net, x))
    for tile, overlap in ((0, 0), (32, 32), (32, -1)):
        with pytest.raises(ValueError, match="tile"):
            tiled_inference(net, x, tile=tile, tile_overlap=overlap)
    assert tile_starts(160, 64, 16) == [0, 48, 96] and tile_starts(50, 64, 16) == [0]


def test_load_network_from_state_dict_or_lightning_checkpoint(tmp_path, net):
    plain = tmp_path / "weights.pth"
    torch.save(net.state_dict(), plain)
    with pytest.raises(CheckpointError, match="model="):
        load_model(plain)
    loaded, cfg = load_model(plain, {"name": "msfs", **TINY})
    assert cfg["width"] == 8 and not loaded.training
    lightning_like = tmp_path / "last.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["criterion.some_buffer"] = torch.zeros(1)  # loss weights are ignored
    torch.save({"state_dict": state, "hyper_parameters": {"model": {"name": "msfs", **TINY}}}, lightning_like)
    rebuilt, _ = load_model(lightning_like)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), net(x))
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(plain, {"name": "msfs", **TINY, "width": 16})
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        load_model(tmp_path / "nope.ckpt")
