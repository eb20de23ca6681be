"""Progressive patches in real (tiny) training runs: the batches training_step sees change crop and batch
size at the stages' steps, across epoch ends, and a run resumed mid-stage continues with the very batches
of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from deblur.errors import UserError
from deblur.training import train
from tests.integration.conftest import TINY_TRAIN

# debug=limit: 3 batches per epoch. Stage 1 starts with epoch 1, stage 2 in its middle (step 5).
SCHEDULE = (  # the command-line form
    "[{step:0,crop_size:32,batch_size:2},{step:3,crop_size:40,batch_size:1},{step:5,crop_size:24,batch_size:3}]"
)
EXPECTED = {0: (2, 32), 1: (2, 32), 2: (2, 32), 3: (1, 40), 4: (1, 40), 5: (3, 24), 6: (3, 24), 7: (3, 24)}
RUN = [
    "debug=limit", "callbacks=default", "logger=csv", "trainer.deterministic=true", "trainer.max_epochs=null",
    "callbacks.frequency_gap=null", *TINY_TRAIN, f"data.progressive={SCHEDULE}",
]  # fmt: skip


class BatchShapes(L.Callback):
    """Appends ``[global_step, batch, crop, blurry sum, rank, names]`` of each training batch to JSON-lines
    ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        n, _, h, w = batch["blurry"].shape
        assert h == w
        with open(self.path, "a") as out:
            total = batch["blurry"].double().sum().item()
            row = [trainer.global_step, n, h, total, trainer.global_rank, list(batch["name"])]
            out.write(json.dumps(row) + "\n")


def _recorded(path) -> dict[int, tuple[int, int, float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {step: (n, crop, total) for step, n, crop, total, _, _ in rows}


def _recording(path) -> list[str]:
    return [f"+callbacks.shapes._target_={__name__}.BatchShapes", f"+callbacks.shapes.path={path}"]


def test_crop_and_batch_change_at_the_stages_steps(compose_train, tmp_path):
    shapes = tmp_path / "shapes.jsonl"
    out = f"paths.output_dir={tmp_path}/a"
    payload = train(compose_train(*RUN, "trainer.max_steps=8", *_recording(shapes), out))
    seen = _recorded(shapes)
    assert {step: (n, crop) for step, (n, crop, _) in seen.items()} == EXPECTED
    assert payload["global_step"] == 8
    record = json.loads((tmp_path / "a/metrics.json").read_text())["progressive"]
    assert (record["stage_at_end"], record["crop_size"], record["batch_size"]) == (2, 24, 3)
    assert record["stages"][1] == {"step": 3, "crop_size": 40, "batch_size": 1}
    hparams = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert hparams["datamodule_hyper_parameters"]["data"]["progressive"][2]["crop_size"] == 24


def test_a_run_resumed_mid_stage_trains_the_batches_of_an_uninterrupted_run(compose_train, tmp_path):
    full_shapes, resumed_shapes = tmp_path / "full.jsonl", tmp_path / "resumed.jsonl"
    out = f"paths.output_dir={tmp_path}/a"
    train(compose_train(*RUN, "trainer.max_steps=8", *_recording(full_shapes), out))
    every_2 = "callbacks.step_checkpoint.every_n_train_steps=2"
    half = train(compose_train(*RUN, "trainer.max_steps=4", every_2, f"paths.output_dir={tmp_path}/b"))
    assert half["global_step"] == 4  # stopped one batch into stage 1 (mid-epoch 1)
    resumed = train(compose_train(*RUN, "trainer.max_steps=8", "ckpt_path=last", "data.num_workers=2",
                                  *_recording(resumed_shapes), f"paths.output_dir={tmp_path}/b"))  # fmt: skip
    assert resumed["global_step"] == 8
    full, again = _recorded(full_shapes), _recorded(resumed_shapes)
    assert sorted(again) == [4, 5, 6, 7]
    assert again[4][:2] == (1, 40)  # stage 1's crop and batch, not the first stage's
    for step in again:  # the same pixels, not only the same sizes
        assert again[step] == pytest.approx(full[step], rel=1e-12), step
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6


def test_a_bad_stage_is_one_user_error_naming_its_key(compose_train):
    bad = "[{step:0,crop_size:32,batch_size:2},{step:0,crop_size:40,batch_size:0}]"
    with pytest.raises(UserError) as caught:
        train(compose_train(*TINY_TRAIN, f"data.progressive={bad}"))  # refused before anything is built
    assert str(caught.value) == (
        "2 bad config values:\n"
        "  data.progressive[1].step=0: an optimizer step after data.progressive[0].step=0\n"
        "  data.progressive[1].batch_size=0: an integer >= 1 (samples per device)"
    )


@pytest.mark.slow
def test_under_ddp_each_device_takes_its_stage_batch_of_disjoint_samples(tmp_path):
    run, shapes = tmp_path / "run", tmp_path / "shapes.jsonl"
    schedule = "[{step:0,crop_size:32,batch_size:2},{step:1,crop_size:24,batch_size:1}]"
    overrides = [
        *TINY_TRAIN,  # 8 training pairs: 4 per rank, an epoch of 2 batches of 2
        "trainer.accelerator=cpu", "trainer.devices=2", "strategy=ddp", "trainer.max_steps=3",
        "trainer.max_epochs=null", "trainer.max_time=null", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "callbacks.frequency_gap=null", "callbacks.lr_monitor=null",
        f"data.progressive={schedule}", *_recording(shapes), f"hydra.run.dir={run}",
    ]  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": path}  # fmt: skip
    cmd = [sys.executable, "-m", "deblur.cli.train", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [json.loads(line) for line in shapes.read_text().splitlines()]
    by_rank = {rank: {r[0]: (r[1], r[2], r[5]) for r in rows if r[4] == rank} for rank in (0, 1)}
    expected = {0: (2, 32), 1: (1, 24), 2: (1, 24)}
    for rank in (0, 1):  # batch_size is per device
        assert {step: (n, crop) for step, (n, crop, _) in by_rank[rank].items()} == expected
    for step in range(3):  # the ranks share the stream, each its own samples
        assert not set(by_rank[0][step][2]) & set(by_rank[1][step][2]), step
    assert json.loads((run / "metrics.json").read_text())["progressive"]["stage_at_end"] == 1
