"""What a training run shows and writes besides its numbers (issue 19, item 6): the progress bar's epoch
description, the model summary's FLOPs, one CSV row per validation, the model preset in metrics.json, the
baseline of a one-point PSNR curve, labelled triplets of distinct validation photos, val/psnr_gain."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from deblur.config.presets import model_preset
from deblur.data.datamodule import DeblurDataModule
from deblur.lit import callbacks as lit_callbacks
from deblur.lit.restoration import RestorationModule
from deblur.training import build_trainer, train
from tests.integration.conftest import TINY_TRAIN
from tests.tiny import TINY_MSFS

#: 3 validation photos x 2 blurs each, batches of 2: the first batch holds two blurs of one photo
DATA = {
    "name": "synthetic", "seed": 0, "val_seed": 1234, "pairs_per_photo": 1, "val_pairs_per_photo": 2,
    "max_side": 96, "repeats": 1, "crop_size": 32, "val_crop_size": 32, "batch_size": 2, "val_batch_size": 2,
}  # fmt: skip


@pytest.fixture(scope="module")
def fitted() -> RestorationModule:
    torch.manual_seed(0)
    module = RestorationModule(TINY_MSFS, {"name": "msfs"}, {"name": "adam", "lr": 1e-3}, num_log_images=4)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=3,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, DeblurDataModule(DATA))
    return module


def test_progress_bar_of_a_step_bounded_run_shows_no_negative_epoch(compose_train):
    from deblur.lit.progress import RichStepProgressBar, epoch_description, step_metric

    trainer = build_trainer(compose_train(*TINY_TRAIN, "trainer.max_steps=300"), precision="32-true")
    bar = trainer.progress_bar_callback
    assert type(bar).__module__ == "deblur.lit.progress"
    trainer.fit_loop.max_epochs = -1  # as fit sets it for a step-bounded run: Lightning's "Epoch 1/-2"
    assert epoch_description(trainer, 1) == "Epoch 1" and step_metric(trainer) == "0/300"
    if isinstance(bar, RichStepProgressBar):
        bar._trainer = trainer
        assert bar._get_train_description(1).strip() == "Epoch 1"
    bounded = SimpleNamespace(max_epochs=10, max_steps=-1, global_step=7)
    assert epoch_description(bounded, 3) == "Epoch 3/9" and step_metric(bounded) == "7"
    quiet_cfg = compose_train(*TINY_TRAIN, "trainer.enable_progress_bar=false")
    quiet = build_trainer(quiet_cfg, precision="32-true")
    assert quiet.progress_bar_callback is None


def test_model_summary_counts_the_flops_of_one_training_crop(fitted):
    from lightning.pytorch.utilities.model_summary import summarize

    assert tuple(fitted.example_input_array.shape) == (1, 3, 32, 32)
    assert summarize(fitted).total_flops > 1e5  # Lightning printed "Total FLOPs: 0" without an example


def test_validation_logs_the_psnr_gain_and_keeps_triplets_of_distinct_photos(fitted):
    metrics = fitted.trainer.callback_metrics
    gain = float(metrics["val/psnr"]) - float(metrics["val/psnr_input"])
    assert float(metrics["val/psnr_gain"]) == pytest.approx(gain, abs=1e-4)  # to every logger, W&B too
    assert fitted.last_val_names == ["astronaut_00", "coffee_00", "camera_00", "astronaut_01"]
    blurry, pred, sharp = fitted.last_val_samples
    assert blurry.shape == pred.shape == sharp.shape == (4, 3, 32, 32)


def test_triplet_figure_labels_its_columns_and_rows():
    images = torch.rand(3, 2, 3, 16, 24).unbind(0)
    fig = lit_callbacks.triplet_figure(*images, names=["a_00", "b_00"])
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:3]] == ["blurry", "output", "sharp"]
    assert [axes[0].get_ylabel(), axes[3].get_ylabel()] == ["a_00", "b_00"]
    assert lit_callbacks.figure_array(fig).shape[2] == 3


def test_a_one_point_psnr_curve_draws_the_baseline_as_a_line(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(lit_callbacks, "_save_figure", lambda fig, path: drawn.append((fig, path.name)))
    figures = lit_callbacks.TrainingFigures(str(tmp_path))
    figures.history = [(6, 24.0, 22.5)]
    module = SimpleNamespace(last_val_samples=None, state_dict=dict)  # no weights: nothing non-finite
    figures.on_fit_end(SimpleNamespace(is_global_zero=True), module)
    (fig, name), = drawn
    assert name == "val_psnr.png"
    (baseline,) = [line for line in fig.axes[0].get_lines() if line.get_label() == "blurry input"]
    xs, ys = baseline.get_xdata(), baseline.get_ydata()
    assert len(set(map(float, xs))) == 2 and set(map(float, ys)) == {22.5}  # spans the axes


def test_final_validation_adds_no_repeated_csv_row_and_metrics_name_the_preset(compose_train, tmp_path):
    cfg = compose_train("debug=limit", *TINY_TRAIN)  # 2 epochs, validated after each
    payload = train(cfg)
    with (tmp_path / "csv" / "metrics.csv").open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/psnr")]
    assert len(rows) == 2 and len({row["step"] for row in rows}) == 2
    assert rows[-1]["val/psnr_gain"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["model"] == "msfs" and "model_preset" in written
    assert written["model_preset"] is None  # model.width=8 etc.: no preset has these values
    assert payload["val/psnr"] == pytest.approx(float(rows[-1]["val/psnr"]), abs=1e-4)


def test_model_preset_names_the_conf_model_option(compose_train):
    assert model_preset(compose_train("model=msfs_small").model) == "msfs_small"
    assert model_preset(compose_train("model=fddn").model) == "fddn"
    assert model_preset(compose_train("model=msfs_small", "model.width=8").model) is None
