"""The command that continues a run, as a user pastes it: ``deblur-train hydra.run.dir=<run> ckpt_path=last
<the run's own overrides>``.

Messages of runs that stop before their end (``trainer.max_time``, a signal, a full disk, a non-finite
loss) end with it. Under Hydra (``deblur-train``) the run's own overrides come from its Hydra config
(``hydra.overrides.task``): the same model, data and schedule, with ``hydra.run.dir``, ``ckpt_path`` and
``resume`` replaced; ``replace`` changes others (e.g. a raised ``trainer.max_time``). Called outside a
Hydra job (the Python API) the overrides are unknown and the command says so.
"""

from __future__ import annotations

import shlex
from pathlib import Path

#: overrides the command sets itself
_REPLACED = ("hydra.run.dir", "ckpt_path", "resume")


def _key(override: str) -> str:
    """``+callbacks.x._target_=a.B`` -> ``callbacks.x._target_`` (also for ``++`` / ``~``)."""
    return override.split("=", 1)[0].lstrip("+~")


def run_overrides() -> tuple[list[str] | None, bool]:
    """``(the Hydra job's task overrides or None outside a Hydra job, whether it is a multirun job)``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, False
    hc = HydraConfig.get()
    return list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


def resume_command(output_dir: str | Path, **replace: str) -> str:
    """``deblur-train hydra.run.dir=<output_dir> ckpt_path=last <overrides>``, shell-quoted.

    ``replace`` maps override keys to new values (``**{"trainer.max_time": "00:00:20:00"}``); they replace
    the run's own value of that key or are added.
    """
    overrides, multirun = run_overrides()
    dropped = (*_REPLACED, *replace)
    kept = [o for o in overrides or [] if _key(o) not in dropped]
    args = [f"hydra.run.dir={output_dir}", "ckpt_path=last", *kept, *(f"{k}={v}" for k, v in replace.items())]
    command = shlex.join(["deblur-train", *args])
    if overrides is None:
        command += " (plus the run's other overrides)"
    elif multirun:
        command += " (or, for the whole study, rerun its multirun with resume=true)"
    return command
