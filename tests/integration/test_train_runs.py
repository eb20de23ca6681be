"""End-to-end training on the built-in dataset: every ablation trains, metrics.json, resume, NaN guard."""

import json
import os
import subprocess
import sys

import pytest
import torch

from deblur.training import METRIC_KEYS, train
from tests.integration.conftest import TINY_TRAIN

MSFS_ABLATIONS = ["msfs/full", "msfs/no_fsm", "msfs/no_csffm", "msfs/no_clm", "msfs/no_consistency"]


@pytest.mark.parametrize("ablation", MSFS_ABLATIONS)
def test_every_msfs_ablation_runs_a_fast_dev_run(compose_train, ablation):
    cfg = compose_train(f"ablation={ablation}", "debug=fdr", *TINY_TRAIN)
    payload = train(cfg)
    assert payload["ablation"] == ablation
    assert payload["global_step"] == 1


FDDN_TINY = ["model=fddn_small", "loss.pretrained=false", "model.num_fdb=2", *TINY_TRAIN[5:]]


@pytest.mark.parametrize("variant", ["full", "no_distillation", "no_fsb", "no_fdb"])
def test_every_fddn_ablation_runs_a_fast_dev_run(compose_train, variant):
    payload = train(compose_train(f"ablation=fddn/{variant}", "debug=fdr", *FDDN_TINY))
    assert payload["model"] == "fddn" and payload["ablation"] == f"fddn/{variant}"
    assert payload["global_step"] == 1


def test_fddn_trains_on_the_builtin_dataset_with_its_augmentation(compose_train, tmp_path):
    payload = train(
        compose_train(
            "model=fddn_small", "loss.pretrained=false", "augment=fddn", "debug=limit", *TINY_TRAIN[5:]
        )
    )
    assert payload["model"] == "fddn" and payload["global_step"] == 6
    assert (tmp_path / "metrics.json").exists()


def test_limit_run_writes_metrics_json_checkpoints_and_figures(compose_train, tmp_path):
    cfg = compose_train("debug=limit", *TINY_TRAIN)
    payload = train(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in written and written[key] == pytest.approx(payload[key])
    assert 5 < written["val/psnr_input"] < 40
    assert written["config"]["model"]["width"] == 8  # the resolved config travels with the numbers
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "val_psnr.png").exists() and (tmp_path / "before_after.png").exists()
    assert list((tmp_path / "images").glob("step_*.png"))
    assert (tmp_path / "csv" / "metrics.csv").exists()


def test_psnr_curve_records_each_validation_with_its_own_value(compose_train, tmp_path):
    import lightning as L
    from omegaconf import OmegaConf

    from deblur.data.datamodule import DeblurDataModule
    from deblur.lit.callbacks import TrainingFigures
    from deblur.lit.restoration import RestorationModule

    cfg = OmegaConf.to_container(compose_train(*TINY_TRAIN), resolve=True)
    figures = TrainingFigures(str(tmp_path))
    logged = []

    class Spy(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            logged.append((trainer.global_step, float(trainer.callback_metrics["val/psnr"])))

    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[figures, Spy()],
    )
    trainer.fit(RestorationModule(cfg["model"], cfg["loss"], cfg["optim"]), DeblurDataModule(cfg["data"]))
    assert [(step, psnr) for step, psnr, _ in figures.history] == logged
    assert [step for step, _ in logged] == [2, 4, 6]
    assert (tmp_path / "val_psnr.png").exists()


def test_resume_from_last_checkpoint_continues_the_step_count(compose_train, tmp_path):
    train(compose_train("debug=limit", *TINY_TRAIN))
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # plain hyperparameters only
    assert ckpt["global_step"] == 6
    resumed = train(compose_train("debug=limit", "trainer.max_epochs=3", f"ckpt_path={last}", *TINY_TRAIN))
    assert resumed["global_step"] == 9 and resumed["epoch"] == 3


def test_last_checkpoint_follows_the_latest_step_even_without_improvement(compose_train, tmp_path):
    # the input's PSNR never changes, so the monitored "best" checkpoint stays at the first validation
    overrides = ["debug=limit", "trainer.max_epochs=3", "callbacks.model_checkpoint.monitor=val/psnr_input"]
    train(compose_train(*overrides, *TINY_TRAIN))
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 9
    best = list((tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert [p.name for p in best] == ["best-step0000003.ckpt"]


def test_nan_loss_stops_naming_the_step(compose_train):
    # Adam's step is ~lr whatever the gradient: weights of ~1e30 make the next losses inf or NaN
    cfg = compose_train(
        "debug=fdr", "trainer.fast_dev_run=3", "optim.lr=1e30", "optim.scheduler.name=constant", *TINY_TRAIN
    )
    with pytest.raises(FloatingPointError, match="global step"):
        train(cfg)


@pytest.mark.slow
def test_deblur_train_command_runs_from_the_shell(tmp_path):
    """The real console entry point, as a user calls it, with Hydra's own output folder."""
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "deblur.cli.train",
        "debug=limit",
        "trainer.max_epochs=1",
        *TINY_TRAIN,
        f"hydra.run.dir={tmp_path}/run",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    assert "Final validation" in result.stdout
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()


@pytest.mark.slow
def test_deblur_train_lists_the_options_of_an_unknown_ablation():
    cmd = [sys.executable, "-m", "deblur.cli.train", "ablation=msfs/no_everything"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "msfs/no_csffm" in result.stderr and "fddn/no_fdb" in result.stderr


def test_validation_scores_do_not_depend_on_the_training_precision(compose_train, tmp_path):
    """The blurry input's PSNR / SSIM involve no network: bf16-mixed training must report the fp32 values
    (SSIM's filtering under bf16 autocast once gave 0.32 instead of 0.81)."""
    scores = {}
    for precision in ("32-true", "bf16-mixed"):
        cfg = compose_train(
            "debug=fdr", "channels_last=true", f"trainer.precision={precision}", *TINY_TRAIN,
            f"paths.output_dir={tmp_path / precision}",
        )  # fmt: skip
        payload = train(cfg)
        scores[precision] = (payload["val/psnr_input"], payload["val/ssim_input"])
    assert scores["bf16-mixed"] == pytest.approx(scores["32-true"], abs=1e-5)
