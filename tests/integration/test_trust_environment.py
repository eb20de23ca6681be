"""Environment errors are one message (issue 18, item 6): a truncated checkpoint, FDDN's VGG16 weights
missing offline, a full disk: one line naming the file or key, exit code 2, no traceback."""

from __future__ import annotations

import errno
import logging
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import VGG16_Weights

from deblur.cli.train import _train_job
from deblur.training import train
from tests.integration.conftest import TINY_TRAIN
from tests.tiny import save_tiny_checkpoint

QUICK = ["speed=fixed", "callbacks.frequency_gap=null", *TINY_TRAIN]
FDDN_TINY = ["model=fddn_small", "model.num_fdb=2", "debug=fdr", "speed=fixed", *TINY_TRAIN[5:]]


def _one_message(capsys, cfg) -> str:
    with pytest.raises(SystemExit) as exit_:
        _train_job(cfg)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------- a checkpoint not written to its end
def _folder(run):
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    return run / "checkpoints"


@pytest.mark.parametrize("size, problem", [(0, "is empty (0 bytes)"), (5000, "is truncated (5000 bytes")])
def test_an_empty_or_truncated_last_ckpt_is_one_message(compose_train, tmp_path, capsys, size, problem):
    last = save_tiny_checkpoint(_folder(tmp_path) / "last.ckpt")
    last.write_bytes(last.read_bytes()[:size])
    err = _one_message(capsys, compose_train(*QUICK, "ckpt_path=last"))
    assert f"ckpt_path={last} {problem}" in err and "not written completely" in err


# ---------------------------------------------------------------- FDDN's VGG16 weights
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No VGG16 file in an empty torch hub cache, no network; the speed probe must not run."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(self, *args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    def no_probe(cfg, given):
        raise AssertionError("the speed probe ran before the loss weights were checked")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", no_network)
    monkeypatch.setattr("deblur.training_settings.probe_settings", no_probe)  # what train() decides through


def test_fddn_without_vgg16_weights_offline_fails_first_naming_loss_weights_path(
    compose_train, tmp_path, capsys, offline
):
    err = _one_message(capsys, compose_train(*FDDN_TINY, "paths.output_dir=" + str(tmp_path / "run")))
    assert "loss.weights_path=/path/to/vgg16-397923af.pth" in err and "network unreachable" in err
    assert "loss.pretrained=false" in err and not (tmp_path / "run" / "checkpoints").exists()
    missing = tmp_path / "nowhere.pth"
    err = _one_message(capsys, compose_train(*FDDN_TINY, f"loss.weights_path={missing}"))
    assert f"loss.weights_path={missing} is not a file" in err


def test_fddn_with_a_random_vgg_says_what_it_means_in_the_run_log(compose_train, tmp_path, capsys):
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "train.log")  # what Hydra's job logging adds
    root.addHandler(handler)
    try:
        with pytest.warns() as warned:
            train(compose_train(*FDDN_TINY, "loss.pretrained=false"))
    finally:
        root.removeHandler(handler)
        handler.close()
    assert not [w for w in warned if "meaningless" in str(w.message)]
    said = "randomly initialised VGG16 as a fixed feature extractor: fine for tests and smoke runs, but not"
    assert said in capsys.readouterr().out and said in (tmp_path / "train.log").read_text()


# ---------------------------------------------------------------- a full disk
IO, CSV = "lightning.pytorch.plugins.io", "lightning.fabric.loggers.csv_logs"


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _images_at_step_6(original):
    def imsave(fname, *args, **kwargs):
        if "step_0000006" in Path(fname).name.split(".tmp-")[0]:
            _full()
        return original(fname, *args, **kwargs)

    return imsave


def _checkpoints_at_step_6(original):
    def save_checkpoint(self, checkpoint, path, *args, **kwargs):
        if checkpoint["global_step"] == 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(self, checkpoint, path, *args, **kwargs)

    return save_checkpoint


def _logs_after_step_4(original):
    def save(self):
        if any(int(row.get("step", 0)) >= 4 for row in self.metrics):
            _full()
        return original(self)

    return save


@pytest.mark.parametrize(
    "target, fake, written, kept",
    [
        ("matplotlib.pyplot.imsave", _images_at_step_6, "images/step_0000006.png", 6),
        (f"{IO}.TorchCheckpointIO.save_checkpoint", _checkpoints_at_step_6, "checkpoints/", 3),
        (f"{CSV}._ExperimentWriter.save", _logs_after_step_4, "the run's files in", None),
    ],
    ids=["images", "checkpoints", "logs"],
)
def test_a_full_disk_is_one_message_naming_the_path_and_the_checkpoint_kept(
    compose_train, tmp_path, capsys, monkeypatch, target, fake, written, kept
):
    monkeypatch.setattr(target, fake(pytest.importorskip("pydoc").locate(target)))
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "train.log")  # what Hydra's job logging adds
    root.addHandler(handler)
    try:
        err = _one_message(capsys, compose_train(*QUICK, "debug=limit"))
    finally:
        root.removeHandler(handler)
        handler.close()
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert err.startswith("deblur-train: error: no space left on device: could not write ") and written in err
    step = torch.load(last, weights_only=True)["global_step"]  # the logs: written on the error, at its step
    assert step == (kept or step) and not (tmp_path / "metrics.json").exists()
    assert f"{last} is kept at step {step}; no metrics.json written" in err and "ckpt_path=last" in err
    assert "no space left on device" in (tmp_path / "train.log").read_text()
    assert not list(tmp_path.rglob(".*.tmp-*"))  # no temporary file left behind
