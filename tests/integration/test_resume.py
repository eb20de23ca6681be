"""Resume and reproducibility: exact resume from last.ckpt, deterministic reruns, atomic checkpoints, a
checkpoint of another network refused. (resume=true over a multirun: tests/integration/test_studies.py.)"""

import csv

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from deblur.errors import UserError
from deblur.lit.restoration import RestorationModule
from deblur.lit.resumption import AtomicCheckpointIO, check_checkpoint_model
from deblur.training import METRIC_KEYS, train
from tests.integration.conftest import TINY_TRAIN
from tests.tiny import TINY_MSFS

# one epoch = 3 steps (limit_train_batches=3); augment=flip_rot draws from albumentations' own stream
TINY_MODEL = TINY_MSFS
N_STEPS = [
    "debug=limit", "callbacks=default", "logger=csv", "trainer.deterministic=true",
    "callbacks.frequency_gap=null", *TINY_TRAIN,
]  # fmt: skip


def _metrics(payload):
    return {k: payload[k] for k in METRIC_KEYS}


def test_stop_after_n_and_resume_to_2n_equals_an_uninterrupted_2n_run(compose_train, tmp_path):
    full = train(compose_train(*N_STEPS, "trainer.max_epochs=2", f"paths.output_dir={tmp_path}/a"))
    half = train(compose_train(*N_STEPS, "trainer.max_epochs=1", f"paths.output_dir={tmp_path}/b"))
    assert half["global_step"] == 3
    resumed = train(
        compose_train(*N_STEPS, "trainer.max_epochs=2", "ckpt_path=last", f"paths.output_dir={tmp_path}/b")
    )
    assert resumed["global_step"] == full["global_step"] == 6
    for key, value in _metrics(full).items():
        assert resumed[key] == pytest.approx(value, abs=1e-4), key
    assert half["val/psnr"] != pytest.approx(full["val/psnr"], abs=1e-4)  # the second epoch did train
    # deterministic=true: two runs with one seed agree exactly (run a's validation after epoch 1 = run b's)
    rows = list(csv.DictReader((tmp_path / "a/csv/metrics.csv").open()))
    first_val = next(r for r in rows if r.get("val/psnr"))
    assert float(first_val["val/psnr"]) == pytest.approx(half["val/psnr"], abs=1e-6)
    # the final weights agree too
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5


def test_stopped_mid_epoch_and_resumed_with_workers_equals_an_uninterrupted_run(compose_train, tmp_path):
    # 3 steps per epoch; the run stops at step 4 (1 batch into epoch 1) on a step checkpoint and is
    # resumed with 2 loader workers (the iterator is then created before Lightning restores the epoch)
    steps = [*N_STEPS, "trainer.max_epochs=null"]
    full = train(compose_train(*steps, "trainer.max_steps=8", f"paths.output_dir={tmp_path}/a"))
    every_2 = "callbacks.step_checkpoint.every_n_train_steps=2"
    half = train(compose_train(*steps, "trainer.max_steps=4", every_2, f"paths.output_dir={tmp_path}/b"))
    assert half["global_step"] == 4
    saved = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4 and saved["epoch"] == 1  # mid-epoch, not marked finished
    resumed = train(compose_train(*steps, "trainer.max_steps=8", "ckpt_path=last", "data.num_workers=2",
                                  f"paths.output_dir={tmp_path}/b"))  # fmt: skip
    assert resumed["global_step"] == full["global_step"] == 8
    for key, value in _metrics(full).items():
        assert resumed[key] == pytest.approx(value, abs=1e-4), key
    # the weights agree (re-training or skipping any batch of epoch 1 moves them by ~1e-3)
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6


def test_with_ema_a_resume_continues_the_raw_and_the_averaged_weights_bitwise(compose_train, tmp_path):
    # ema.decay (deblur.lit.ema): stopped mid-epoch at step 4 and resumed to 8 = 8 steps straight, for
    # the raw weights, the averaged ones (BatchNorm's running statistics included) and the update count
    steps = [*N_STEPS, "trainer.max_epochs=null", "model.norm=batch", "ema.decay=0.9"]
    full = train(compose_train(*steps, "trainer.max_steps=8", f"paths.output_dir={tmp_path}/a"))
    every_2 = "callbacks.step_checkpoint.every_n_train_steps=2"
    train(compose_train(*steps, "trainer.max_steps=4", every_2, f"paths.output_dir={tmp_path}/b"))
    # with ema off, Lightning would load the averaged weights as the raw ones: refused, naming the decay
    again = ["trainer.max_steps=8", "ckpt_path=last", f"paths.output_dir={tmp_path}/b"]
    with pytest.raises(UserError, match=r"holds EMA-averaged weights .* resume with ema\.decay=0\.9 "):
        train(compose_train(*steps, "ema.decay=null", *again))
    resumed = train(compose_train(*steps, *again))
    assert resumed["global_step"] == full["global_step"] == 8 and resumed["ema_decay"] == 0.9
    assert resumed["val/psnr"] == full["val/psnr"]
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    for part in ("state_dict", "current_model_state", "averaging_state"):
        assert a[part].keys() == b[part].keys(), part
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert int(b["averaging_state"]["n_averaged"]) == 8
    assert b["callbacks"]["WeightEMA"] == {"latest_update_step": 8, "decay": 0.9}
    assert any(not torch.equal(a["state_dict"][k], a["current_model_state"][k]) for k in a["state_dict"])


def test_checkpoint_of_another_model_fails_naming_both(compose_train, tmp_path):
    module = RestorationModule(model=TINY_MODEL, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-3})
    last = tmp_path / "other.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, last)
    with pytest.raises(ValueError, match=r"'msfs'.*'fddn'"):
        check_checkpoint_model(last, {"name": "fddn", "width": 8, "variant": "full"})
    wider = compose_train("debug=limit", *TINY_TRAIN, "model.width=16", f"ckpt_path={last}")
    with pytest.raises(ValueError, match=r"width=8.*width=16"):
        train(wider)  # refused before any training
    check_checkpoint_model(last, dict(TINY_MODEL))  # the same network passes


def test_atomic_checkpoint_io_leaves_no_partial_file(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 2

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        io.save_checkpoint({"bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 2  # the old file survives
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind


BY_STEPS = ["trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=200"]


@pytest.mark.parametrize("by", [BY_STEPS, ["trainer.check_val_every_n_epoch=2"]], ids=["by_steps", "every_2"])
def test_a_run_stopped_by_max_epochs_resumes_into_more_epochs_bitwise(compose_train, tmp_path, by):
    # validation by steps (never at an epoch end on its own: the final one is ValidateAtEnd's), or every 2nd
    # epoch (the first run's only epoch would not validate on its own): last.ckpt of the 1-epoch run must
    # resume into epoch 2 without replaying a batch, i.e. equal a 2-epoch run bitwise
    steps = [*N_STEPS, *by]
    full = train(compose_train(*steps, "trainer.max_epochs=2", f"paths.output_dir={tmp_path}/a"))
    half = train(compose_train(*steps, "trainer.max_epochs=1", f"paths.output_dir={tmp_path}/b"))
    assert half["global_step"] == 3 and half["planned_steps"] == 3
    # fit's own last validation was at step 3 even where check_val_every_n_epoch=2 skips epoch 1
    rows = [r for r in csv.DictReader((tmp_path / "b/csv/metrics.csv").open()) if r.get("val/psnr")]
    assert [int(r["step"]) for r in rows] == [2] and (tmp_path / "b/checkpoints/last.ckpt").exists()
    again = ["trainer.max_epochs=2", "ckpt_path=last", f"paths.output_dir={tmp_path}/b"]
    resumed = train(compose_train(*steps, *again))
    assert resumed["global_step"] == full["global_step"] == resumed["planned_steps"] == 6
    assert resumed["val/psnr"] == full["val/psnr"]
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


class StopAt(L.Callback):
    """Stops training after optimizer step ``step``, as ``trainer.max_time`` does (``should_stop``)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def test_a_run_stopped_inside_an_epoch_resumes_the_rest_of_that_epoch(compose_train, tmp_path):
    # 3 steps per epoch; stopped at step 4 (inside epoch 2) like a max_time stop: last.ckpt must not say
    # the epoch is over (the resume would skip its last 2 batches), it trains steps 5..9 = a 9-step run
    steps = [*N_STEPS, *BY_STEPS, "trainer.max_epochs=3"]
    full = train(compose_train(*steps, f"paths.output_dir={tmp_path}/a"))
    cfg = compose_train(*steps, f"paths.output_dir={tmp_path}/b")
    with open_dict(cfg):
        cfg.callbacks["stop"] = {"_target_": f"{__name__}.StopAt", "step": 4}
    assert train(cfg)["global_step"] == 4
    resumed = train(compose_train(*steps, "ckpt_path=last", f"paths.output_dir={tmp_path}/b"))
    assert resumed["global_step"] == full["global_step"] == 9
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
