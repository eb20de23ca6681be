"""Non-finite weights or outputs are never a result (issue 18, item 1), and a gray image is scored the same
way by deblur-eval and by deblur-predict + deblur-score (item 3). Nothing is trained: the networks are tiny
random MSFS-Nets saved as Lightning saves checkpoints, some with one weight made NaN or made huge."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from deblur.analysis.analyzer import analyze
from deblur.checkpoints import CheckpointError, convert_checkpoint, load_model
from deblur.config.inference_settings import InferenceSettings
from deblur.errors import UserError
from deblur.evaluation import evaluate
from deblur.inference import NonFiniteOutput
from deblur.lit.restoration import RestorationModule
from deblur.metrics.scoring import score_folders
from deblur.paths import REPO_ROOT
from deblur.prediction import PredictionIncomplete, predict_images
from deblur.training import initialise_weights
from tests.tiny import TINY_MSFS, save_tiny_checkpoint
from tests.unit.test_datasets import sharp_image

CPU = InferenceSettings(device="cpu", speed_mode="fixed")


def _changed(good: Path, target: Path, key: str, change) -> Path:
    payload = torch.load(good, map_location="cpu", weights_only=True)
    payload["state_dict"][key] = change(payload["state_dict"][key].clone())
    torch.save(payload, target)
    return target


def _with_nan(t: torch.Tensor) -> torch.Tensor:
    t.view(-1)[0] = math.nan
    return t


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> SimpleNamespace:
    """good: a tiny network; nan: one value of one weight is NaN; huge: finite weights whose first
    convolution overflows float32 on a bright image (a black image still gives a finite output)."""
    folder = tmp_path_factory.mktemp("ckpts")
    good = save_tiny_checkpoint(folder / "good.ckpt")
    state = torch.load(good, map_location="cpu", weights_only=True)["state_dict"]
    floating = [k for k, t in state.items() if t.is_floating_point()]
    nan_key = floating[len(floating) // 2]
    first_conv = next(k for k in floating if state[k].ndim == 4)
    return SimpleNamespace(
        good=good,
        nan=_changed(good, folder / "nan.ckpt", nan_key, _with_nan),
        nan_key=nan_key.removeprefix("net."),
        huge=_changed(good, folder / "huge.ckpt", first_conv, lambda t: torch.full_like(t, 3e38)),
    )


def _image(path: Path, value: int | np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = value if isinstance(value, np.ndarray) else np.full((24, 32, 3), value, np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def _pairs(root: Path, blurry: np.ndarray, sharp: np.ndarray) -> Path:
    """A ``data=pairs`` dataset of one pair (arrays as cv2 writes them: BGR or gray)."""
    _image(root / "blurry" / "a.png", blurry)
    _image(root / "sharp" / "a.png", sharp)
    return root


# ---------------------------------------------------------------- non-finite weights
def test_one_nan_weight_is_refused_by_every_loader_naming_the_file_and_the_tensor(ckpts, tmp_path):
    def refused(action) -> str:
        with pytest.raises(CheckpointError) as err:
            action()
        message = str(err.value)
        assert str(ckpts.nan) in message and ckpts.nan_key in message, message
        return message

    assert isinstance(CheckpointError("x"), UserError)
    assert "non-finite" in refused(lambda: load_model(ckpts.nan))

    image = _image(tmp_path / "in" / "photo.png", 128)
    refused(lambda: predict_images(ckpts.nan, str(image), tmp_path / "out", settings=CPU))
    assert not list((tmp_path / "out").glob("*.png"))

    root = _pairs(tmp_path / "pairs", np.full((24, 32, 3), 90, np.uint8), np.full((24, 32, 3), 99, np.uint8))
    refused(lambda: evaluate(ckpts.nan, ["pairs"], {"pairs": root}, settings=CPU, output_dir=tmp_path / "e"))
    assert not (tmp_path / "e" / "results.json").exists()

    data = {"name": "synthetic", "max_side": 128, "val_crop_size": 32, "val_pairs_per_photo": 1}
    refused(lambda: analyze(data, "val", ckpt_path=ckpts.nan, analysis={"max_images": 1}, settings=CPU))

    refused(lambda: convert_checkpoint(ckpts.nan, tmp_path / "converted.ckpt"))
    assert not (tmp_path / "converted.ckpt").exists()


def test_init_from_a_nan_checkpoint_names_it_instead_of_advising_a_lower_learning_rate(ckpts):
    optim = {"name": "adam", "lr": 1e-4}
    module = RestorationModule(model=dict(TINY_MSFS), loss={"name": "msfs"}, optim=optim)
    with pytest.raises(CheckpointError) as err:
        initialise_weights(module, str(ckpts.nan))
    message = str(err.value)
    assert f"init_from={ckpts.nan}" in message and ckpts.nan_key in message
    assert "optim.lr" not in message


def test_an_infinite_buffer_is_refused_too(ckpts, tmp_path):
    state = torch.load(ckpts.good, map_location="cpu", weights_only=True)["state_dict"]
    key = next(k for k, t in state.items() if t.is_floating_point() and t.ndim == 1)
    path = _changed(ckpts.good, tmp_path / "inf.ckpt", key, lambda t: t.fill_(math.inf))
    with pytest.raises(CheckpointError, match=key.removeprefix("net.")):
        load_model(path)


# ---------------------------------------------------------------- non-finite outputs
def test_predict_fails_an_image_whose_output_is_not_finite_and_never_writes_it(ckpts, tmp_path):
    inputs = tmp_path / "in"
    bright, dark = _image(inputs / "bright.png", 255), _image(inputs / "dark.png", 0)
    out = tmp_path / "out"
    with pytest.raises(NonFiniteOutput, match="bright.png") as err:
        predict_images(ckpts.huge, str(inputs), out, settings=CPU)
    assert isinstance(err.value, UserError) and "NaN or infinite" in str(err.value)
    assert not (out / "bright.png").exists()

    with pytest.raises(PredictionIncomplete, match="non-finite") as incomplete:
        predict_images(ckpts.huge, str(inputs), out, settings=CPU, on_error="skip")
    assert incomplete.value.result["failed"] == [str(bright)]
    assert incomplete.value.result["written"] == [str(out / "dark.png")]
    assert sorted(p.name for p in out.iterdir()) == ["dark.png", "predict.json"]  # and the settings record
    assert dark.exists()


def test_eval_fails_an_image_whose_output_is_not_finite_and_scores_nothing(ckpts, tmp_path):
    root = _pairs(tmp_path / "pairs", np.full((24, 32, 3), 250, np.uint8), np.full((24, 32, 3), 99, np.uint8))
    out = tmp_path / "eval"
    with pytest.raises(NonFiniteOutput, match=str(root / "blurry" / "a.png")):
        evaluate(ckpts.huge, ["pairs"], {"pairs": root}, settings=CPU, save_images=True, output_dir=out)
    assert not (out / "pairs" / "summary.json").exists() and not (out / "results.json").exists()
    assert not (out / "pairs" / "images" / "a.png").exists()


# ---------------------------------------------------------------- one rule for gray predictions
def test_a_gray_image_scores_the_same_in_eval_and_in_predict_plus_score(ckpts, tmp_path):
    rgb = sharp_image(0, 32, 40)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) // 2 + 20
    root = _pairs(tmp_path / "pairs", gray, rgb[:, :, ::-1])
    results = evaluate(ckpts.good, ["pairs"], {"pairs": root}, settings=CPU, output_dir=tmp_path / "eval")
    predict_images(ckpts.good, str(root / "blurry"), tmp_path / "pred", settings=CPU)
    _, summary = score_folders(tmp_path / "pred", root / "sharp")
    assert results["datasets"]["pairs"]["psnr"] == summary["psnr"]
    assert results["datasets"]["pairs"]["ssim"] == summary["ssim"]


# ---------------------------------------------------------------- the command: exit code 2, one message
@pytest.mark.slow
def test_predict_command_refuses_a_nan_checkpoint_with_exit_code_2(ckpts, tmp_path):
    image = _image(tmp_path / "photo.png", 128)
    proc = subprocess.run(
        [sys.executable, "-m", "deblur.cli.predict", f"ckpt_path={ckpts.nan}", f"input={image}",
         f"output={tmp_path / 'out'}", "device=cpu", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"ckpt_path={ckpts.nan} holds non-finite weights: {ckpts.nan_key}" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_resuming_from_a_nan_checkpoint_is_refused_naming_it(ckpts):
    from deblur.lit.resumption import check_checkpoint_model

    with pytest.raises(CheckpointError) as err:  # train() runs this before the probe and the Trainer
        check_checkpoint_model(ckpts.nan, dict(TINY_MSFS))
    assert f"ckpt_path={ckpts.nan}" in str(err.value) and ckpts.nan_key in str(err.value)
    check_checkpoint_model(ckpts.good, dict(TINY_MSFS))  # a finite one passes
