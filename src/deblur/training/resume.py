"""Where a run starts, in the order :func:`deblur.training.train` asks:

1. :func:`finished_job`: with ``resume=true`` a job that wrote ``metrics.json`` is not run again (unless it
   stopped by ``max_time`` and ``trainer.max_time`` now leaves time);
2. :func:`resolve_ckpt_path`: ``ckpt_path`` (a file, ``last``, ``best``) or ``resume=true`` -> a checkpoint;
3. :func:`refuse_overwriting`: a folder that holds another run is never written over;
4. :func:`check_resume`: the checkpoint is complete, holds this network, and leaves training time; the
   resume is announced (path, step, epoch, time used).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import check_complete
from deblur.errors import UserError
from deblur.lit.ema import check_ema_resume
from deblur.lit.resumption import check_checkpoint_model, checkpoint_info
from deblur.training.max_time import clock, max_time_used_up, time_left
from deblur.training.run_log import say
from deblur.training.summary import COMPLETE

#: ``ckpt_path`` values Lightning resolves itself
LIGHTNING_CKPT = ("hpc", "registry")


def _no_checkpoint(which: str, output_dir: Path) -> UserError:
    return UserError(
        f"ckpt_path={which}: no checkpoint to resume in this run's folder {output_dir} "
        f"(nothing at {output_dir / 'checkpoints'}/{'last.ckpt' if which == 'last' else 'best-*.ckpt'}). "
        "Each run gets a new folder (hydra.run.dir is time-stamped), so name the folder of the run to "
        f"continue: deblur-train hydra.run.dir=<run folder> ckpt_path={which} (with the run's other "
        "overrides); in a study, rerun the multirun with resume=true."
    )


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
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
    if ckpt_path in LIGHTNING_CKPT or "://" in str(ckpt_path):
        return str(ckpt_path)
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(path)


def announce_resume(cfg: DictConfig, ckpt: str) -> int:
    """Say where the run resumes from (path, step, epoch, time used); refuse a checkpoint whose training
    time fills ``trainer.max_time`` (it would stop at once). Returns the checkpoint's step."""
    info = checkpoint_info(ckpt)
    used_up = max_time_used_up(cfg, ckpt, info)
    if used_up:
        raise UserError(f"cannot resume: {used_up}")
    say(f"resuming from {ckpt} (step {info['step']}, epoch {info['epoch']})")
    limit, used = time_left(cfg, info)
    if limit is not None and used:
        say(f"  training time so far {clock(used)} counts toward trainer.max_time={cfg.trainer.max_time}")
    return int(info["step"])


def continue_after_max_time(cfg: DictConfig, stored: dict[str, Any], output_dir: Path) -> bool:
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
            used_up = max_time_used_up(cfg, str(last), checkpoint_info(last))
            if used_up is None:
                say(f"resume=true: {done} {where}; continuing with trainer.max_time={cfg.trainer.max_time}")
                return True
            say(f"resume=true: {done} {where}; skipping: {used_up}")
        return False
    say(f"resume=true: {done} exists, job already finished; skipping")
    return False


def finished_job(cfg: DictConfig, output_dir: Path) -> dict[str, Any] | None:
    """With ``resume=true``, the stored ``metrics.json`` payload of a job that is not run again (what it
    says: :func:`continue_after_max_time`); None: the job runs."""
    done = output_dir / "metrics.json"
    if not (cfg.get("resume") and done.exists()):
        return None
    stored = json.loads(done.read_text())
    return None if continue_after_max_time(cfg, stored, output_dir) else stored


def resumes_own_run(output_dir: Path, ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` is a checkpoint in this run's own ``checkpoints/`` folder."""
    if ckpt_path is None or "://" in ckpt_path:
        return False
    return Path(ckpt_path).resolve().parent == (output_dir / "checkpoints").resolve()


def refuse_overwriting(output_dir: Path, ckpt_path: str | None) -> None:
    """A run that does not continue from this folder's own checkpoint must not write over a run kept
    there (its checkpoints, metrics.json and CSV log would be replaced)."""
    folder = output_dir / "checkpoints"
    if resumes_own_run(output_dir, ckpt_path):
        return
    held = [p.relative_to(output_dir).as_posix() for p in (folder / "last.ckpt", output_dir / "metrics.json")
            if p.exists()]  # fmt: skip
    if held:
        raise UserError(
            f"paths.output_dir={output_dir} already holds a run ({', '.join(held)}); a new run there would "
            "overwrite it. Continue it with ckpt_path=last (in a study: resume=true), or choose a new folder "
            "(hydra.run.dir=... or paths.output_dir=...)."
        )


def check_resume(cfg: DictConfig, ckpt_path: str | None) -> int:
    """The step a run resumes from: 0 for a new run (and for ``ckpt_path`` values Lightning resolves
    itself: ``hpc``, ``registry``, URLs). A checkpoint file must be complete
    (:func:`deblur.checkpoints.check_complete`), finite and of this run's network
    (:func:`deblur.lit.resumption.check_checkpoint_model`), and leave training time
    (:func:`announce_resume`, which says where the run resumes from)."""
    if ckpt_path is None or ckpt_path in LIGHTNING_CKPT or "://" in ckpt_path:
        return 0
    check_complete(ckpt_path, "ckpt_path")
    check_checkpoint_model(ckpt_path, OmegaConf.to_container(cfg.model, resolve=True))
    check_ema_resume(ckpt_path, cfg)  # an EMA checkpoint resumes with EMA on (deblur.lit.ema)
    return announce_resume(cfg, ckpt_path)
