"""deblur-predict, deblur-eval and deblur-train on on-disk data, end to end (nothing is trained: the
network is a tiny random MSFS-Net saved the way Lightning saves checkpoints)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from deblur.checkpoints import CheckpointError
from deblur.cli import predict as predict_cli
from deblur.cli.eval import main as eval_command
from deblur.cli.train import train
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.evaluation import evaluate
from deblur.paths import CONF_DIR, REPO_ROOT
from deblur.speed.options import default_options
from tests.tiny import TINY_MSFS, save_tiny_checkpoint
from tests.unit.test_datasets import make_gopro, make_hide

TINY_MODEL = {**TINY_MSFS, "norm": "batch"}  # spelled out: model=msfs_small (plain weights) has none
TINY_OVERRIDES = [f"model.{k}={v}" for k, v in TINY_MODEL.items() if k != "name"]
CLOCK = Path(skimage.data.__path__[0]) / "clock_motion.png"  # a real motion-blurred photo, grayscale


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _compose(config_name: str, *overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A checkpoint laid out like Lightning's: state_dict (net.* keys) + plain hyper_parameters."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", TINY_MODEL)


class _Payload:
    """Unpickling this object would create a marker file (the attack a weights-only load must stop)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_predict_command_on_a_real_grayscale_photo(ckpt, tmp_path):
    """The console command as a user runs it: same size, same mode (L), inputs untouched."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / CLOCK.name).write_bytes(CLOCK.read_bytes())
    before = _snapshot(inputs)
    out = tmp_path / "deblurred"
    proc = subprocess.run(
        [sys.executable, "-m", "deblur.cli.predict", f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}",
         "tile=128", "tile_overlap=16", "device=cpu", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deblurred 1 image(s)" in proc.stdout
    with Image.open(CLOCK) as src, Image.open(out / "clock_motion.png") as res:
        assert res.size == src.size and res.mode == src.mode == "L"
        corr = np.corrcoef(np.asarray(res, dtype=float).ravel(), np.asarray(src, dtype=float).ravel())[0, 1]
    assert corr > 0.5  # a random residual network keeps the picture recognisable
    assert _snapshot(inputs) == before


def _predict(ckpt: Path, inputs: Path | str, out: Path, *extra: str) -> dict:
    cfg = _compose(
        "predict", f"ckpt_path={ckpt}", f"input='{inputs}'", f"output={out}", "device=cpu",
        f"paths.output_dir={out.parent / 'hydra'}", *extra,
    )  # fmt: skip
    return predict_cli.run(cfg)


def test_predict_keeps_modes_bit_depth_and_existing_outputs(ckpt, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb = np.ascontiguousarray(skimage.data.astronaut()[100:141, 150:203])  # odd size 41x53
    cv2.imwrite(str(inputs / "rgba.png"), np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 77, np.uint8)]))
    cv2.imwrite(str(inputs / "deep.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    cv2.imwrite(str(inputs / "photo.jpg"), rgb[:, :, ::-1])
    out = tmp_path / "out"
    result = _predict(ckpt, inputs, out)
    assert sorted(Path(p).name for p in result["written"]) == ["deep.png", "photo.png", "rgba.png"]
    rgba = cv2.imread(str(out / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (41, 53, 4) and (rgba[:, :, 3] == 77).all()
    deep = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (41, 53, 3)
    assert cv2.imread(str(out / "photo.png"), cv2.IMREAD_UNCHANGED).shape == (41, 53, 3)

    stamp = (out / "photo.png").stat().st_mtime_ns
    again = _predict(ckpt, inputs / "*.jpg", out)  # a glob; the result exists -> kept
    assert again["written"] == [] and len(again["kept"]) == 1
    assert (out / "photo.png").stat().st_mtime_ns == stamp
    assert len(_predict(ckpt, inputs / "photo.jpg", out, "overwrite=true")["written"]) == 1

    before = _snapshot(inputs)
    with pytest.raises(ValueError, match="allow_inplace"):
        _predict(ckpt, inputs, inputs)
    assert _snapshot(inputs) == before


def test_predict_refuses_a_pickle_payload_and_needs_model_for_plain_weights(ckpt, tmp_path):
    marker = tmp_path / "marker_created_by_unpickling"
    evil = tmp_path / "evil.ckpt"
    sane = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({**sane, "callbacks": _Payload(marker)}, evil)
    image = tmp_path / "clock.png"
    image.write_bytes(CLOCK.read_bytes())
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as err:
        _predict(evil, image, tmp_path / "out")
    assert str(evil) in str(err.value)
    assert "weights_only=False" not in str(err.value)  # never advise turning safe loading off
    assert not marker.exists()
    assert not (tmp_path / "out").exists()

    plain = tmp_path / "weights.pth"
    torch.save({k[4:]: v for k, v in sane["state_dict"].items() if k.startswith("net.")}, plain)
    with pytest.raises(CheckpointError, match="model=msfs_small"):
        _predict(plain, image, tmp_path / "out")
    result = _predict(plain, image, tmp_path / "out", "model=msfs_small", *TINY_OVERRIDES)
    assert result["model"]["width"] == 8 and len(result["written"]) == 1


def test_predict_with_explicit_speed_options_records_them(ckpt, tmp_path, caplog):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skimage.data.astronaut()[100:148, 150:190, ::-1]))
    options = ["channels_last=true", "precision=bf16", "fold_batchnorm=true", "compile=false"]
    tiles = ["tile=32", "tile_overlap=8"]
    with caplog.at_level(logging.INFO, logger="deblur.prediction"):
        result = _predict(ckpt, image, tmp_path / "fast", *options, *tiles)
    assert "inference options: {'channels_last': True, 'precision': 'bf16'" in caplog.text  # the run's log
    assert result["inference"] == {
        "channels_last": True, "precision": "bf16", "fold_batchnorm": True, "compile": False,
    }  # fmt: skip
    plain = _predict(ckpt, image, tmp_path / "plain", "precision=fp32", "channels_last=false", *tiles)
    assert plain["inference"]["precision"] == "fp32" and not plain["inference"]["channels_last"]
    fast, slow = (cv2.imread(str(tmp_path / d / "photo.png")).astype(float) for d in ("fast", "plain"))
    assert fast.shape == (48, 40, 3) and np.abs(fast - slow).max() <= 2  # 8-bit rounding of a >45 dB gap
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16'"):
        _predict(ckpt, image, tmp_path / "bad", "precision=fp16x")
    assert not (tmp_path / "bad").exists()


def test_eval_writes_per_dataset_scores_and_the_results_table(ckpt, tmp_path):
    gopro = make_gopro(tmp_path / "GOPRO_Large", h=32, w=40)
    hide = make_hide(tmp_path / "HIDE_dataset")
    before = _snapshot(tmp_path)
    out = tmp_path / "eval"
    roots = {"gopro": gopro, "hide": hide}
    cpu = InferenceSettings(device="cpu")
    results = evaluate(ckpt, ["gopro", "hide"], roots, save_images=True, settings=cpu, output_dir=out)
    assert _snapshot(tmp_path / "GOPRO_Large") == {k: v for k, v in before.items() if "GOPRO_Large" in k}
    assert list(results["datasets"]) == ["gopro", "hide"]
    summary = json.loads((out / "gopro" / "summary.json").read_text())
    assert summary["count"] == 2 and summary["protocol"] == "gopro" and 0 < summary["psnr"] < 60
    assert 0 < summary["ssim"] <= 1 and "ssim_per_channel" in summary
    assert (out / "gopro" / "scores.csv").read_text().splitlines()[0] == "name,psnr,ssim,ssim_per_channel"
    assert (out / "gopro" / "images" / "GOPR0384_11_00" / "000001.png").is_file()
    assert json.loads((out / "hide" / "summary.json").read_text())["count"] == 3
    table = (out / "results.md").read_text()
    assert "| Dataset | Images | Protocol | PSNR (dB) | SSIM |" in table
    assert "| GoPro | 2 | gopro |" in table and "| HIDE | 3 | gopro |" in table
    written = json.loads((out / "results.json").read_text())
    assert written["model"]["width"] == 8 and written["datasets"]["hide"]["count"] == 3
    used = default_options(torch.device("cpu")).as_dict()  # null options: the device's defaults
    assert written["inference"] == used == summary["inference"]

    with pytest.raises(ValueError, match="roots.realblur_j"):
        evaluate(ckpt, ["realblur_j"], roots, output_dir=out)
    with pytest.raises(ValueError, match="score_workers must be an integer >= 0"):
        evaluate(ckpt, ["gopro"], roots, score_workers=-1, output_dir=out)


def test_eval_command_passes_its_config_keys_to_the_library(ckpt, tmp_path):
    hide = make_hide(tmp_path / "HIDE_dataset")
    out = tmp_path / "eval"
    cfg = _compose(
        "eval", f"ckpt_path={ckpt}", "datasets=[hide]", f"roots.hide={hide}", "limit=1", "device=cpu",
        "precision=fp32", "channels_last=false", "tile=16", "tile_overlap=4", "score_workers=1",
        f"paths.output_dir={out}",
    )  # fmt: skip
    results = eval_command(cfg)
    assert results["limit"] == 1 and results["tile"] == 16 and results["tile_overlap"] == 4
    assert results["inference"]["precision"] == "fp32" and not results["inference"]["channels_last"]
    assert json.loads((out / "hide" / "summary.json").read_text())["count"] == 1
    assert "| HIDE | 1 | gopro |" in (out / "results.md").read_text()
    missing = _compose("eval", f"paths.output_dir={out}")
    with pytest.raises(SystemExit) as exit_info:  # a user error: one message naming the key, exit code 2
        eval_command(missing)
    assert exit_info.value.code == 2


def test_train_on_a_gopro_tree_runs_a_fast_dev_run(compose_train, tmp_path):
    root = make_gopro(tmp_path / "GOPRO_Large")
    augment = "augment=flip_rot"
    cfg = compose_train(
        "data=gopro", f"data.root={root}", "data.crop_size=16", "data.batch_size=2", "data.num_workers=0",
        "debug=fdr", augment, *TINY_OVERRIDES,
    )  # fmt: skip
    assert cfg.data.name == "gopro" and cfg.data.blur_kind == "blur"
    payload = train(cfg)
    assert payload["global_step"] == 1
    assert os.path.isdir(root / "train")  # the dataset is only read


@pytest.mark.slow
def test_readme_quoting_example_for_odd_paths_runs(ckpt, tmp_path):
    """The README's line for paths with spaces, unicode and brackets, run by a shell as a user types it."""
    import re
    import shlex

    readme = (REPO_ROOT / "README.md").read_text()
    line = re.search(r"^deblur-predict ckpt_path=last\.ckpt 'input=.*$", readme, re.M).group(0)
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "[2024] café.png"), np.ascontiguousarray(skimage.data.astronaut()[:40, :48]))
    (tmp_path / "last.ckpt").write_bytes(ckpt.read_bytes())
    command = line.replace("deblur-predict", f"{shlex.quote(sys.executable)} -m deblur.cli.predict", 1)
    command += f" device=cpu precision=fp32 hydra.run.dir={shlex.quote(str(tmp_path / 'hydra'))}"
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "deblurred photos" / "[2024] café.png").is_file()


def test_eval_runs_fp32_unless_bf16_is_asked_for_and_says_so(ckpt, tmp_path, monkeypatch):
    from deblur.speed import inference_probe
    from deblur.speed.inference_probe import ProbeResult
    from deblur.speed.options import InferenceOptions

    def probe_prefers_bf16(device, *, precision=None, **kwargs):  # a machine where bf16 times faster
        return ProbeResult(InferenceOptions(channels_last=True, precision=precision or "bf16"), "probe")

    monkeypatch.setattr(inference_probe, "resolve_speed", probe_prefers_bf16)
    hide = make_hide(tmp_path / "HIDE_dataset")
    cpu = InferenceSettings(device="cpu")
    exact = evaluate(ckpt, ["hide"], {"hide": hide}, settings=cpu, output_dir=tmp_path / "fp32", limit=1)
    assert exact["inference"]["precision"] == "fp32" and exact["inference"]["channels_last"] is True
    assert "(cpu" in exact["device_name"] and exact["torch"] == torch.__version__
    table = (tmp_path / "fp32" / "results.md").read_text()
    assert "Precision" not in table and exact["device_name"] in table

    asked = InferenceSettings(device="cpu", speed={"precision": "bf16"})
    fast = evaluate(ckpt, ["hide"], {"hide": hide}, settings=asked, output_dir=tmp_path / "bf16", limit=1)
    assert fast["inference"]["precision"] == "bf16"
    table = (tmp_path / "bf16" / "results.md").read_text()
    assert "**Precision bf16**" in table.split("| Dataset")[0]  # said beside (above) the table


def test_predict_records_device_and_torch(ckpt, tmp_path):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skimage.data.astronaut()[100:132, 150:182, ::-1]))
    result = _predict(ckpt, image, tmp_path / "out", "precision=fp32")
    assert "(cpu" in result["device_name"] and result["torch"] == torch.__version__
    assert result["inference"]["precision"] == "fp32"


def test_predict_writes_its_settings_beside_the_outputs(ckpt, tmp_path):
    # predict.json: what made the results (checkpoint, network, device, speed options, tiles, TLC, x8),
    # and which results this run wrote or only kept
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skimage.data.astronaut()[100:132, 150:182, ::-1]))
    out = tmp_path / "out"
    opts = ["precision=fp32", "channels_last=true", "tile=16", "tile_overlap=4", "self_ensemble=true"]
    result = _predict(ckpt, image, out, *opts)
    record = json.loads((out / "predict.json").read_text())
    assert result["settings_file"] == str(out / "predict.json")
    assert record["checkpoint"] == str(ckpt.resolve()) and record["model"] == result["model"]
    assert record["device"] == "cpu" and record["torch"] == torch.__version__ and record["device_name"]
    assert record["inference"]["precision"] == "fp32" and record["inference"]["channels_last"] is True
    assert (record["tile"], record["tile_overlap"], record["self_ensemble"]) == (16, 4, True)
    assert record["tlc"] == {"enabled": False, "base_size": 384, "train_size": 256}
    assert (record["written"], record["kept"], record["failed"]) == (["photo.png"], [], [])
    again = _predict(ckpt, image, out, "precision=fp32")  # the result exists: kept, not remade
    assert again["written"] == [] and json.loads((out / "predict.json").read_text())["kept"] == ["photo.png"]
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "predict.json"]  # no temporary left


def test_eval_says_when_the_checkpoint_holds_ema_weights(ckpt, tmp_path):
    hide = make_hide(tmp_path / "HIDE_dataset")
    cpu = InferenceSettings(device="cpu")
    plain = evaluate(ckpt, ["hide"], {"hide": hide}, settings=cpu, output_dir=tmp_path / "plain", limit=1)
    assert plain["ema_weights"] is False and plain["ema_decay"] is None
    assert "EMA" not in (tmp_path / "plain" / "results.md").read_text()
    saved = torch.load(ckpt, weights_only=True)  # as deblur-train ema.decay=0.99 writes it
    ema = {**saved, "current_model_state": saved["state_dict"], "averaging_state": {"n_averaged": 3},
           "callbacks": {"WeightEMA": {"latest_update_step": 3, "decay": 0.99}}}  # fmt: skip
    torch.save(ema, tmp_path / "ema.ckpt")
    out = evaluate(tmp_path / "ema.ckpt", ["hide"], {"hide": hide}, settings=cpu, output_dir=tmp_path / "e",
                   limit=1)  # fmt: skip
    assert out["ema_weights"] is True and out["ema_decay"] == 0.99
    assert json.loads((tmp_path / "e" / "results.json").read_text())["ema_decay"] == 0.99
    assert "**EMA weights** (trained with `ema.decay=0.99`)" in (tmp_path / "e" / "results.md").read_text()
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skimage.data.astronaut()[100:132, 150:182, ::-1]))
    for path, averaged, decay in ((ckpt, False, None), (tmp_path / "ema.ckpt", True, 0.99)):
        _predict(path, image, tmp_path / f"out_{averaged}")
        record = json.loads((tmp_path / f"out_{averaged}" / "predict.json").read_text())
        assert (record["ema_weights"], record["ema_decay"]) == (averaged, decay)
