"""The run summary: why ``trainer.fit`` ended (``stopped_by``), the steps planned, and the final table with
its stop line that ``deblur-train`` prints and logs."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from deblur.training.max_time import max_time_resume
from deblur.training.run_log import say

log = logging.getLogger(__name__)


#: ``stopped_by`` values of runs that did all the training they were configured for
COMPLETE = ("max_steps", "max_epochs", "fast_dev_run")


def stop_reason(trainer: L.Trainer) -> str:
    """Why ``trainer.fit`` ended: ``fast_dev_run``, ``max_steps``, ``max_epochs``, ``max_time`` (Lightning's
    ``Timer`` ran out), ``signal`` (SIGTERM) or ``callback`` (another callback set ``should_stop``, e.g.
    early stopping)."""
    from lightning.pytorch.callbacks import Timer

    if trainer.fast_dev_run:
        return "fast_dev_run"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    if trainer.max_epochs not in (None, -1) and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback.time_remaining("train") is not None:
            if callback.time_remaining("train") <= 0:
                return "max_time"
    if trainer.received_sigterm:
        return "signal"
    return "callback"


def planned_steps(trainer: L.Trainer) -> int | None:
    """The optimizer steps the run was configured for (``max_steps``, or epochs x batches)."""
    if trainer.max_steps not in (None, -1):
        return int(trainer.max_steps)
    try:
        planned = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - an infinite loader or no data: unknown
        return None
    return int(planned) if math.isfinite(planned) else None


def stop_line(payload: dict[str, Any], resume: str | None = None) -> str:
    """``stopped by max_time at step 227 of 300: ...`` for a metrics.json payload (old ones: empty);
    ``resume``: the command to continue (:func:`max_time_resume`), said for a run stopped by max_time."""
    stopped_by, steps, planned = payload.get("stopped_by"), payload.get("steps"), payload.get("planned_steps")
    if stopped_by is None:
        return ""
    line = f"stopped by {stopped_by} at step {steps}" + (f" of {planned}" if planned else "")
    if stopped_by in COMPLETE or not planned or steps >= planned:
        return line
    scheduler = ((payload.get("config") or {}).get("optim") or {}).get("scheduler") or {}
    name = scheduler.get("name")
    if name == "cosine":
        sized = scheduler.get("total_steps") or planned
        line += f": the cosine schedule was sized for {sized} steps (its learning rate had not come down)"
    elif name == "linear" and scheduler.get("end_epoch") is None:
        line += f": the linear schedule was sized for {planned} steps (its learning rate had not come down)"
    else:
        line += f": {planned - steps} planned steps were not trained"
    if stopped_by == "max_time" and resume:
        line += f"; raise trainer.max_time and continue: {resume}"
    elif stopped_by == "max_time":
        line += "; raise trainer.max_time and continue with ckpt_path=last (a study: resume=true)"
    return line


def summary_text(payload: dict[str, Any], resume: str | None = None) -> str:
    """The final table of a run (what ``deblur-train`` prints at the end); ``resume``: see
    :func:`stop_line`."""
    rows = [
        ("", "PSNR (dB)", "SSIM"),
        ("blurry input", f"{payload['val/psnr_input']:.2f}", f"{payload['val/ssim_input']:.4f}"),
        (f"{payload['model']} output", f"{payload['val/psnr']:.2f}", f"{payload['val/ssim']:.4f}"),
    ]
    size = f"{payload['parameters'] / 1e6:.2f} M parameters"
    lines = [f"Final validation ({payload['global_step']} steps, {size})"]
    lines += [f"  {name:<22}{psnr:>10}{ssim:>10}" for name, psnr, ssim in rows]
    lines.append(f"  gain: {payload['val/psnr_gain']:+.2f} dB    outputs: {payload['output_dir']}")
    stop = stop_line(payload, resume)
    if stop:
        lines.append(f"  {stop}")
    return "\n".join(lines)


def print_summary(payload: dict[str, Any]) -> None:
    """Print and log the final table; a run that did not do all its training also gets its stop line as
    a warning (with the command to continue after a ``max_time`` stop)."""
    resume = max_time_resume(payload) if payload.get("stopped_by") == "max_time" else None
    say("\n" + summary_text(payload, resume) + "\n")
    if payload.get("stopped_by") not in (None, *COMPLETE):
        log.warning(stop_line(payload, resume))
