"""DDP on the CPU with 2 processes (gloo): it trains, validation metrics are reduced across ranks without
padding (3 validation images over 2 ranks: the PSNR equals a single-process validation of the same
weights), and only rank 0 writes files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from deblur.data.datamodule import DeblurDataModule
from deblur.data.samplers import UnpaddedDistributedSampler
from deblur.lit.restoration import RestorationModule
from tests.integration.conftest import TINY_TRAIN


def test_unpadded_sampler_shards_every_index_once():
    shards = [list(UnpaddedDistributedSampler(range(7), 3, rank)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(7))
    assert [len(s) for s in shards] == [3, 2, 2]


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_reduce_validation_exactly(tmp_path):
    run = tmp_path / "run"
    overrides = [
        *TINY_TRAIN,  # data.val_pairs_per_photo=1: 3 validation images, batches of 2
        "trainer.accelerator=cpu", "trainer.devices=2", "strategy=ddp",
        "trainer.max_steps=2", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1", "trainer.max_time=null",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "callbacks.frequency_gap=null", "callbacks.lr_monitor=null", "optim.scheduler.warmup_steps=0",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deblur.cli.train", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "train_ddp_process_1" in " ".join(p.name for p in run.iterdir())  # rank 1 really ran
    # rank 1 trained with rank 0's decision (read from the run folder), it decided nothing itself
    assert "training settings (from rank 0" in (run / "train_ddp_process_1.log").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["config"]["trainer"]["devices"] == 2

    # rank 0 alone wrote: one metrics.json, one checkpoint folder, one image per validation
    assert list(tmp_path.rglob("metrics.json")) == [run / "metrics.json"]
    assert len(list((run / "images").glob("*.png"))) == 1
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints  # best + last, no temporaries

    # the same weights validated in this single process, on the same 3 images
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert len(ckpt["rng_state_per_rank"]) == 2  # every rank's random state, for an exact resume
    module = RestorationModule(**{k: ckpt["hyper_parameters"][k] for k in ("model", "loss", "optim")})
    module.load_state_dict(ckpt["state_dict"])
    config = metrics["config"]
    datamodule = DeblurDataModule(data=config["data"], augment=config["augment"])
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert len(datamodule.val_set) == 3
    for key in ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-3), key
