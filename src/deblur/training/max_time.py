"""``trainer.max_time`` across resumes: the time a checkpoint has trained, whether it fills the limit, and
the command that continues a run stopped by it with the limit raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deblur.config.checks import MAX_TIME
from deblur.lit.resumption import checkpoint_info
from deblur.training.resume_command import resume_command


def max_time_seconds(max_time: Any) -> float | None:
    """``trainer.max_time`` (``DD:HH:MM:SS``, a mapping of timedelta keys, or null) in seconds."""
    from datetime import timedelta

    if max_time is None:
        return None
    if isinstance(max_time, str):
        match = MAX_TIME.match(max_time.strip())
        if not match:
            return None
        days, hours, minutes, seconds = (int(g) for g in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    if isinstance(max_time, dict):
        return timedelta(**max_time).total_seconds()
    return None


def clock(seconds: float) -> str:
    """Seconds as Lightning's ``DD:HH:MM:SS``."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def time_left(cfg: DictConfig, info: dict[str, Any]) -> tuple[float | None, float | None]:
    """(seconds of ``trainer.max_time``, seconds the checkpoint has already used)."""
    return max_time_seconds(cfg.trainer.get("max_time")), info.get("train_seconds")


def max_time_used_up(cfg: DictConfig, ckpt: str, info: dict[str, Any]) -> str | None:
    """The message for a checkpoint whose training time already fills ``trainer.max_time``, else None."""
    limit, used = time_left(cfg, info)
    if limit is None or used is None or used < limit:
        return None
    max_steps = cfg.trainer.get("max_steps")
    if isinstance(max_steps, int) and 0 < max_steps <= info["step"]:
        return None  # all steps done (e.g. stopped during its final validation): nothing to train
    suggestion = clock(2 * max(limit, used))
    return (
        f"{ckpt} (step {info['step']}) has trained for {clock(used)}, all of trainer.max_time="
        f"{cfg.trainer.max_time} (the run stopped by max_time): raise trainer.max_time to train further, "
        f"e.g. trainer.max_time={suggestion}"
    )


def max_time_resume(payload: dict[str, Any]) -> str:
    """The command that continues a run stopped by ``max_time``, with ``trainer.max_time`` doubled (at
    least twice the training time its ``last.ckpt`` holds)."""
    output_dir = Path(payload["output_dir"])
    trainer_cfg = (payload.get("config") or {}).get("trainer") or {}
    last = output_dir / "checkpoints" / "last.ckpt"
    used = checkpoint_info(last).get("train_seconds") if last.exists() else None
    raised = clock(2 * max(max_time_seconds(trainer_cfg.get("max_time")) or 0, used or 0))
    return resume_command(output_dir, **{"trainer.max_time": raised})
