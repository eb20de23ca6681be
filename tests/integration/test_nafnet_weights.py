"""The NAFNet authors' weights format ({'params': state_dict}) in every loader: recognised by content,
configured from its keys, refused for another network, taken by init_from, and evaluated with TLC."""

from __future__ import annotations

import pytest
import torch

from deblur.checkpoints import CheckpointError, load_model
from deblur.models.build import build_model, model_config
from deblur.models.nafnet.weights import is_nafnet_checkpoint, nafnet_config_from_state
from tests.unit.test_nafnet import _manifest

SMALL = {"width": 4}  # nafnet_small at width 4: a few seconds on a CPU


@pytest.fixture(scope="module")
def released_small(tmp_path_factory):
    """nafnet_small (width 4) weights, random, saved in the authors' format."""
    torch.manual_seed(3)
    net = build_model("nafnet_small", **SMALL)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    path = tmp_path_factory.mktemp("released") / "NAFNet-tiny.pth"
    torch.save({"params": net.state_dict()}, path)
    return path, net.state_dict()


def test_the_released_gopro_width32_keys_are_recognised_and_configure_the_preset():
    state = {key: torch.zeros(shape, dtype=dtype) for key, shape, dtype in _manifest()}
    assert is_nafnet_checkpoint({"params": state})
    assert is_nafnet_checkpoint({"params": {f"module.{k}": v for k, v in state.items()}})
    assert not is_nafnet_checkpoint(state) and not is_nafnet_checkpoint({"model": state})
    assert nafnet_config_from_state(state) == model_config("nafnet")


def test_load_model_reads_the_format_with_or_without_model_and_refuses_other_networks(released_small):
    path, state = released_small
    net, cfg = load_model(path)
    assert cfg == model_config("nafnet_small", **SMALL) and not net.training
    for (name, a), b in zip(net.state_dict().items(), state.values(), strict=True):
        assert torch.equal(a, b), name
    load_model(path, model=model_config("nafnet_small", **SMALL))
    with pytest.raises(CheckpointError, match=r"holds model 'nafnet' \(width=4.*differs in width"):
        load_model(path, model="nafnet_small")
    with pytest.raises(CheckpointError, match="differs in name"):
        load_model(path, model="msfs_small", key="init_from")


def test_init_from_takes_the_format(released_small):
    from deblur.lit.restoration import RestorationModule
    from deblur.training import initialise_weights

    path, state = released_small
    model = model_config("nafnet_small", **SMALL)
    module = RestorationModule(model=model, loss={"name": "psnr"}, optim={"name": "adamw", "lr": 1e-3})
    initialise_weights(module, str(path))
    for (name, a), b in zip(module.net.state_dict().items(), state.values(), strict=True):
        assert torch.equal(a, b), name


def test_eval_with_tlc_on_nafnet(released_small, tmp_path):
    from deblur.evaluation import evaluate
    from tests.unit.test_datasets import make_gopro

    path, _ = released_small
    root = make_gopro(tmp_path / "GOPRO_Large")
    tlc = {"enabled": True, "base_size": 24, "train_size": 16}
    settings = {"device": "cpu", "precision": "fp32", "tlc": tlc}
    results = evaluate(path, ["gopro"], {"gopro": root}, output_dir=tmp_path / "eval", settings=settings)
    assert results["tlc"]["enabled"] is True


def test_predict_with_model_nafnet_and_tlc_on_an_odd_sized_image(released_small, tmp_path):
    import numpy as np

    from deblur.config.inference_settings import InferenceSettings
    from deblur.io import read_image, write_image
    from deblur.prediction import predict_images

    path, _ = released_small
    image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    write_image(tmp_path / "in" / "shot.png", image)
    settings = InferenceSettings.from_config(
        {"device": "cpu", "precision": "fp32", "tlc": {"enabled": True, "base_size": 24, "train_size": 16}}
    )
    result = predict_images(
        path, str(tmp_path / "in"), tmp_path / "out", model=model_config("nafnet_small", **SMALL),
        settings=settings,
    )  # fmt: skip
    assert result["model"]["name"] == "nafnet" and len(result["written"]) == 1
    assert read_image(tmp_path / "out" / "shot.png")[0].shape == (37, 29, 3)
