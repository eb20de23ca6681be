"""``self_ensemble=true`` through deblur-predict, deblur-eval and deblur-analyze: the outputs are the x8
ensemble's and every record says it was on (predict's log and summary, eval's summary.json / results.json /
results.md, analysis.json); the speed probe still times the network once, on the upright image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from hydra import compose, initialize_config_dir

from deblur.analysis.analyzer import analyze
from deblur.checkpoints import load_model
from deblur.cli import predict as predict_cli
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.evaluation import evaluate
from deblur.inference import prepare_network, restore
from deblur.io import read_image, to_float
from deblur.paths import CONF_DIR
from tests.tiny import save_tiny_checkpoint
from tests.unit.test_datasets import make_gopro

#: explicit fp32 NCHW speed options: nothing is probed, runs are reproducible
FP32 = {"channels_last": False, "precision": "fp32", "fold_batchnorm": False, "compile": False}
FP32_KEYS = [f"{key}={str(value).lower()}" for key, value in FP32.items()]
TILES = ["tile=32", "tile_overlap=8"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt")


def _predict(ckpt: Path, image: Path, out: Path, *extra: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("predict", overrides=[f"ckpt_path={ckpt}", f"input={image}", f"output={out}",
                                            "device=cpu", f"paths.output_dir={out.parent / 'hydra'}", *extra])
    return predict_cli.run(cfg)


def test_predict_writes_the_ensemble_and_says_so(ckpt, tmp_path, caplog):
    image = tmp_path / "photo.png"  # 40 x 56: the rotated runs see 56 x 40
    cv2.imwrite(str(image), np.ascontiguousarray(skimage.data.astronaut()[100:140, 150:206, ::-1]))
    with caplog.at_level(logging.INFO, logger="deblur.prediction"):
        on = _predict(ckpt, image, tmp_path / "on", "self_ensemble=true", *TILES, *FP32_KEYS)
    assert on["self_ensemble"] is True and "self_ensemble: on" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="deblur.prediction"):
        off = _predict(ckpt, image, tmp_path / "off", *TILES, *FP32_KEYS)
    assert off["self_ensemble"] is False and "self_ensemble" not in caplog.text

    settings = InferenceSettings(device="cpu", tile=32, tile_overlap=8, speed=FP32)
    net, options, _ = prepare_network(load_model(ckpt)[0], settings)
    pixels = to_float(read_image(image)[0])
    expected = restore(net, pixels, 32, options, 8, self_ensemble=True)
    written = cv2.imread(str(tmp_path / "on" / "photo.png"))[:, :, ::-1] / 255.0
    np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)  # the 8-bit PNG of the ensemble
    single = cv2.imread(str(tmp_path / "off" / "photo.png"))[:, :, ::-1] / 255.0
    assert np.abs(written - single).max() > 2 / 255


def test_eval_records_the_ensemble_and_the_probe_times_the_network_once(ckpt, tmp_path, monkeypatch):
    from deblur.speed import inference_probe as speed_probe

    probed: list[tuple[int, ...]] = []
    real = speed_probe.resolve_speed

    def spy(device, *, example=None, **kwargs):
        probed.append(None if example is None else tuple(example.shape))
        return real(device, example=example, **{**kwargs, "mode": "fixed"})

    monkeypatch.setattr(speed_probe, "resolve_speed", spy)
    gopro = make_gopro(tmp_path / "GOPRO_Large", per_seq=1, h=24, w=40)
    on = InferenceSettings(device="cpu", self_ensemble=True)
    results = evaluate(ckpt, ["gopro"], {"gopro": gopro}, settings=on, output_dir=tmp_path / "on")
    assert probed == [(1, 3, 24, 40)]  # once, on the upright first image: the ensemble wraps the prepared net
    assert results["self_ensemble"] is True
    assert json.loads((tmp_path / "on" / "results.json").read_text())["self_ensemble"] is True
    assert json.loads((tmp_path / "on" / "gopro" / "summary.json").read_text())["self_ensemble"] is True
    table = (tmp_path / "on" / "results.md").read_text()
    assert "**Self-ensemble x8** (`self_ensemble=true`)" in table.split("| Dataset")[0]

    off = evaluate(ckpt, ["gopro"], {"gopro": gopro}, settings=InferenceSettings(device="cpu"),
                   output_dir=tmp_path / "off")  # fmt: skip
    assert off["self_ensemble"] is False and off["datasets"]["gopro"]["self_ensemble"] is False
    assert "Self-ensemble" not in (tmp_path / "off" / "results.md").read_text()
    assert off["datasets"]["gopro"]["psnr"] != results["datasets"]["gopro"]["psnr"]


def test_analyze_runs_the_ensemble_and_records_it(ckpt):
    data = {"name": "synthetic", "max_side": 128, "val_crop_size": 40, "val_pairs_per_photo": 1}
    settings = {"device": "cpu", **FP32}
    runs = {
        flag: analyze(data, "val", ckpt_path=ckpt, analysis={"max_images": 2, "batch_size": 2},
                      settings={**settings, "self_ensemble": flag})
        for flag in (True, False)
    }  # fmt: skip
    assert runs[True]["self_ensemble"] is True and runs[False]["self_ensemble"] is False
    assert runs[True]["entropy"]["deblurred"] != runs[False]["entropy"]["deblurred"]
    assert runs[True]["entropy"]["blurry"] == runs[False]["entropy"]["blurry"]
    assert analyze(data, "val", analysis={"max_images": 1}, settings=settings)["self_ensemble"] is None
