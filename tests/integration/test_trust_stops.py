"""Every training run that trained steps leaves a usable checkpoint (issue 18, item 5): whatever stops it
(max_steps / max_epochs between two validations, max_time, Ctrl+C / SIGTERM), it ends with
``checkpoints/last.ckpt`` at its last step and the figures of a final validation, and the command it
prints to continue works when pasted."""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from deblur.training import train
from tests.integration.conftest import TINY_TRAIN

REPO = Path(__file__).resolve().parents[2]
#: the default callbacks (validation every 200 steps), tiny and quick
QUICK = ["speed=fixed", "callbacks.frequency_gap=null", *TINY_TRAIN]


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


BY_EPOCHS = ["trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.limit_train_batches=3"]


@pytest.mark.parametrize("stop", [["trainer.max_steps=4"], BY_EPOCHS])
def test_a_run_stopped_between_validations_ends_with_a_checkpoint_and_figures(compose_train, tmp_path, stop):
    payload = train(compose_train(*QUICK, *stop))
    steps = payload["steps"]
    assert steps in (3, 4) and payload["stopped_by"] in ("max_steps", "max_epochs")
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == steps
    assert (tmp_path / "val_psnr.png").exists() and (tmp_path / "before_after.png").exists()
    history = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert [step for step, _, _ in history["TrainingFigures"]["history"]] == [steps]


# ---------------------------------------------------------------- the printed command, pasted
class Interrupt(L.Callback):
    """Ctrl+C after optimizer step ``step`` (Lightning sees the KeyboardInterrupt as from a real Ctrl+C)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


class Slow(L.Callback):
    """Every training step lasts ``seconds`` longer; after step ``mark``, ``<output_dir>/marked`` appears."""

    def __init__(self, seconds: float, mark: int = -1, output_dir: str = "") -> None:
        self.seconds, self.mark, self.output_dir = seconds, mark, output_dir

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.mark:
            (Path(self.output_dir) / "marked").touch()
        time.sleep(self.seconds)


@pytest.fixture
def deblur_train(monkeypatch):
    """deblur_train(*args) -> the exit code of ``deblur-train *args`` run in-process (Hydra and all)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import deblur.cli.train as cli

    root = logging.getLogger()
    handlers, sigint = list(root.handlers), signal.getsignal(signal.SIGINT)

    def run(*args: str) -> int:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["deblur-train", *args])
        try:
            cli.main()
        except SystemExit as exit_:
            return int(exit_.code or 0)
        finally:
            GlobalHydra.instance().clear()
            HydraConfig.instance().cfg = None
            signal.signal(signal.SIGINT, sigint)  # Lightning ignores Ctrl+C once it has seen one
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
                    handler.close()
        return 0

    return run


def _pasted(text: str, prefix: str) -> list[str]:
    """The command after ``prefix`` in ``text``, split as a shell splits it."""
    match = re.search(re.escape(prefix) + r"(deblur-train .*)$", text, flags=re.MULTILINE)
    assert match, text[-2000:]
    args = shlex.split(match.group(1))
    assert args[0] == "deblur-train"
    return args[1:]


def test_ctrl_c_keeps_last_ckpt_at_its_step_and_the_printed_command_continues(deblur_train, tmp_path, capsys):
    run = tmp_path / "run"
    interrupt = f"{__name__}.Interrupt"
    code = deblur_train(
        *QUICK, "trainer.max_steps=4", f"+callbacks.interrupt._target_={interrupt}",
        "+callbacks.interrupt.step=2", f"hydra.run.dir={run}",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 130  # a run stopped by a signal fails
    assert f"stopped by signal at step 2; {run / 'checkpoints' / 'last.ckpt'} holds step 2" in out
    assert _step(run / "checkpoints" / "last.ckpt") == 2 and not (run / "metrics.json").exists()
    assert "stopped by signal at step 2" in (run / "train.log").read_text()

    pasted = _pasted(out, "Continue with: ")
    assert pasted[:2] == [f"hydra.run.dir={run}", "ckpt_path=last"] and "trainer.max_steps=4" in pasted
    assert deblur_train(*pasted) == 0
    out = capsys.readouterr().out
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'} (step 2, epoch 0)" in out
    assert "stopped by max_steps at step 4 of 4" in out and (run / "metrics.json").exists()


def test_the_final_tables_max_time_command_continues_with_more_time(deblur_train, tmp_path, capsys):
    run = tmp_path / "run"
    slow = f"{__name__}.Slow"
    code = deblur_train(
        *QUICK, "trainer.max_steps=40", "trainer.max_time=00:00:00:01", f"+callbacks.slow._target_={slow}",
        "+callbacks.slow.seconds=0.4", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    steps = int(re.search(r"stopped by max_time at step (\d+) of 40", out).group(1))
    assert _step(run / "checkpoints" / "last.ckpt") == steps  # validated and saved at the stop
    pasted = _pasted(out, "raise trainer.max_time and continue: ")
    assert "trainer.max_time=00:00:00:01" not in pasted and "+callbacks.slow.seconds=0.4" in pasted
    assert deblur_train(*pasted) == 0
    out = capsys.readouterr().out
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'} (step {steps}, epoch" in out
    assert _step(run / "checkpoints" / "last.ckpt") > steps


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_fails_the_run_keeping_last_ckpt_at_its_step(tmp_path, signum, code):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "disabled"}  # fmt: skip
    slow = [f"+callbacks.slow._target_={__name__}.Slow", "+callbacks.slow.seconds=0.2",
            "+callbacks.slow.mark=2", f"+callbacks.slow.output_dir={run}"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "deblur.cli.train", *QUICK, "trainer.max_steps=1000", *slow,
         f"hydra.run.dir={run}", "trainer.enable_progress_bar=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (run / "marked").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-3000:]
    step = _step(run / "checkpoints" / "last.ckpt")
    assert step >= 2 and not (run / "metrics.json").exists()
    assert f"stopped by signal at step {step}; {run / 'checkpoints' / 'last.ckpt'} holds step {step}" in out
    assert f"Continue with: deblur-train hydra.run.dir={run} ckpt_path=last" in out
