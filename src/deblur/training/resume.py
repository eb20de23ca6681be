"""Where a run starts: ``ckpt_path`` / ``resume=true`` resolved to a checkpoint, the resume announced (and
refused when its training time fills ``trainer.max_time``), a finished job skipped, and a folder that
holds another run never overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deblur.errors import UserError
from deblur.lit.checkpointing import checkpoint_info
from deblur.training.max_time import _clock, _max_time_used_up, _time_left
from deblur.training.run_log import say
from deblur.training.summary import COMPLETE

#: ``ckpt_path`` values Lightning resolves itself
_LIGHTNING_CKPT = ("hpc", "registry")


# ---------------------------------------------------------------- resuming
def _no_checkpoint(which: str, output_dir: Path) -> UserError:
    return UserError(
        f"ckpt_path={which}: no checkpoint to resume in this run's folder {output_dir} "
        f"(nothing at {output_dir / 'checkpoints'}/{'last.ckpt' if which == 'last' else 'best-*.ckpt'}). "
        "Each run gets a new folder (hydra.run.dir is time-stamped), so name the folder of the run to "
        f"continue: deblur-train hydra.run.dir=<run folder> ckpt_path={which} (with the run's other "
        "overrides); in a study, rerun the multirun with resume=true."
    )


def _resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``: a file, or ``last`` / ``best`` in this run's checkpoints folder. With ``resume=true``
    and no ``ckpt_path``, ``checkpoints/last.ckpt`` when it exists (a multirun rerun continues its jobs).

    Raises:
        UserError: ``last`` / ``best`` without such a checkpoint (with ``resume=true``, ``last`` without
            one starts fresh), several ``best-*.ckpt``; FileNotFoundError: a missing file.
    """
    ckpt_path = cfg.get("ckpt_path")
    folder = output_dir / "checkpoints"
    last = folder / "last.ckpt"
    if ckpt_path is None:
        return str(last) if cfg.get("resume") and last.exists() else None
    if ckpt_path == "last":
        if last.exists():
            return str(last)
        if cfg.get("resume"):
            return None  # resume=true: a job without a checkpoint starts fresh
        raise _no_checkpoint("last", output_dir)
    if ckpt_path == "best":
        best = sorted(folder.glob("best-*.ckpt"))
        if len(best) == 1:
            return str(best[0])
        if not best:
            raise _no_checkpoint("best", output_dir)
        raise UserError(
            f"ckpt_path=best: {len(best)} best-*.ckpt files in {folder} ({', '.join(p.name for p in best)}); "
            "name the one to resume: ckpt_path=<file>"
        )
    if ckpt_path in _LIGHTNING_CKPT or "://" in str(ckpt_path):
        return str(ckpt_path)
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(path)


def _announce_resume(cfg: DictConfig, ckpt: str) -> int:
    """Say where the run resumes from (path, step, epoch, time used); refuse a checkpoint whose training
    time fills ``trainer.max_time`` (it would stop at once). Returns the checkpoint's step."""
    info = checkpoint_info(ckpt)
    used_up = _max_time_used_up(cfg, ckpt, info)
    if used_up:
        raise UserError(f"cannot resume: {used_up}")
    say(f"resuming from {ckpt} (step {info['step']}, epoch {info['epoch']})")
    limit, used = _time_left(cfg, info)
    if limit is not None and used:
        say(f"  training time so far {_clock(used)} counts toward trainer.max_time={cfg.trainer.max_time}")
    return int(info["step"])


def _continue_after_max_time(cfg: DictConfig, stored: dict[str, Any], output_dir: Path) -> bool:
    """``resume=true`` on a job whose ``metrics.json`` exists: True when it stopped by ``max_time`` and
    ``trainer.max_time`` now leaves time to continue from ``last.ckpt`` (what it says either way)."""
    done = output_dir / "metrics.json"
    stopped_by = stored.get("stopped_by")
    if stopped_by not in (None, *COMPLETE):
        where = f"stopped by {stopped_by} at step {stored.get('steps')} of {stored.get('planned_steps')}"
        last = output_dir / "checkpoints" / "last.ckpt"
        if stopped_by != "max_time":
            say(f"resume=true: {done} {where}; skipping (kept as it is)")
        elif not last.exists():
            say(f"resume=true: {done} {where}; skipping: no {last} to continue from")
        else:
            used_up = _max_time_used_up(cfg, str(last), checkpoint_info(last))
            if used_up is None:
                say(f"resume=true: {done} {where}; continuing with trainer.max_time={cfg.trainer.max_time}")
                return True
            say(f"resume=true: {done} {where}; skipping: {used_up}")
        return False
    say(f"resume=true: {done} exists, job already finished; skipping")
    return False


def _refuse_overwriting(output_dir: Path, ckpt_path: str | None) -> None:
    """A run that does not continue from this folder's own checkpoint must not write over a run kept
    there (its checkpoints, metrics.json and CSV log would be replaced)."""
    folder = output_dir / "checkpoints"
    if ckpt_path is not None and "://" not in ckpt_path:
        if Path(ckpt_path).resolve().parent == folder.resolve():
            return
    held = [p.relative_to(output_dir).as_posix() for p in (folder / "last.ckpt", output_dir / "metrics.json")
            if p.exists()]  # fmt: skip
    if held:
        raise UserError(
            f"paths.output_dir={output_dir} already holds a run ({', '.join(held)}); a new run there would "
            "overwrite it. Continue it with ckpt_path=last (in a study: resume=true), or choose a new folder "
            "(hydra.run.dir=... or paths.output_dir=...)."
        )
