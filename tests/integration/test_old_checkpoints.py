"""Checkpoints written by main 1671c22 (before the component registry) still load and give the same
outputs, through ``deblur.load_model`` + ``deblur.restore`` and through ``deblur.predict_images``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import deblur
from deblur.prediction import predict_images

DATA = Path(__file__).resolve().parents[1] / "data" / "main_1671c22"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_old_checkpoint_loads_and_restores_as_before(name):
    expected = EXPECTED[name]
    net, cfg = deblur.load_model(DATA / f"{name}.ckpt")
    assert cfg == expected["model"]
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        y = deblur.restore(net, x)
    assert float(y.double().sum()) == pytest.approx(expected["restore_sum"], rel=1e-5)
    assert y.flatten()[:8].tolist() == pytest.approx(expected["restore_first"], abs=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_old_checkpoint_predicts_as_before(name, tmp_path):
    expected = EXPECTED[name]
    (tmp_path / "in").mkdir()
    image = np.random.RandomState(0).randint(0, 256, (20, 28, 3), dtype=np.uint8)
    deblur.write_image(tmp_path / "in" / "a.png", image)
    summary = predict_images(DATA / f"{name}.ckpt", str(tmp_path / "in"), tmp_path / "out")
    assert summary["written"] == [str(tmp_path / "out" / "a.png")]
    result, _ = deblur.read_image(tmp_path / "out" / "a.png")
    assert list(result.shape) == expected["predict_shape"]
    # uint8 rounding may move a value by one where float sums differ in the last bit
    assert abs(int(result.astype(np.int64).sum()) - expected["predict_sum"]) <= result.size // 100
