"""A refused command changes nothing: the run folder Hydra writes (``.hydra/`` and ``<job>.log``) is checked
before Hydra writes it, and put back as it was when the command fails with a user error.

Hydra 1.3 runs a job in this order (``hydra.core.utils.run_job``): the callbacks' ``on_run_start`` /
``on_multirun_start``, then per job: create the run folder, open ``<job>.log``, write ``.hydra/{config,
hydra,overrides}.yaml``, ``on_job_start``, the task function. A check in the task function comes too late
to keep a folder clean, so :class:`RunFolderGuard` (registered for every command in
``conf/hydra/default.yaml``) works in the callbacks:

* ``on_run_start`` / ``on_multirun_start``: a run folder (``hydra.run.dir``) or sweep folder
  (``hydra.sweep.dir``) that is, or lies inside, an input folder of the command (:data:`INPUT_KEYS`) is
  refused with one message and exit code 2 before anything is created;
* it remembers whether the run folder existed and the bytes of its ``.hydra/`` files (in a sweep: of every
  job folder already there).

When the task fails with a user error, :func:`undo_run_folder` (called by
:func:`deblur.cli.common.user_errors`) removes a run folder the command created that holds only Hydra's
``.hydra/``, log files and empty folders, and, in a folder that existed, puts ``.hydra/`` back byte for
byte and cuts its logs back to their former size (removing the logs it created) unless the task had
claimed the folder (:func:`claim_run_folder`: ``deblur-train`` once it knows it may write there). A
folder that existed before or holds anything else is never removed.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from deblur.utils.files import atomic_write

#: config keys naming input folders (a mapping such as ``roots`` counts with all its values); a key absent
#: from a command's config is skipped
INPUT_KEYS = ("pred_dir", "gt_dir", "input", "data.root", "roots")
#: what Hydra itself writes into a run folder
HYDRA_FILES = frozenset({"config.yaml", "hydra.yaml", "overrides.yaml"})


@dataclass
class _Folder:
    """A run folder as it was before Hydra wrote to it."""

    path: Path
    existed: bool
    hydra_files: dict[str, bytes] | None = None  # None: no .hydra/ folder
    log_sizes: dict[str, int] = field(default_factory=dict)  # the folder's *.log files and their sizes
    claimed: bool = False


@dataclass
class _State:
    current: _Folder | None = None
    jobs: dict[Path, _Folder] | None = None  # a sweep's job folders already there (None: not known here)


_STATE = _State()


def _command() -> str:
    name = Path(sys.argv[0]).stem
    return name if name.startswith("deblur-") else f"deblur-{name}"


def _refuse(message: str) -> None:
    print(f"{_command()}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # an interpolation that resolves only inside the job: not checked here
        return None


def input_folders(config: DictConfig) -> list[tuple[str, Path]]:
    """``[(key, folder)]``: the existing input folders a command's config names (:data:`INPUT_KEYS`; the
    base folder of a ``input`` glob; ``input`` is left out with ``allow_inplace=true``)."""
    found: list[tuple[str, Any]] = []
    for key in INPUT_KEYS:
        if key == "input" and _select(config, "allow_inplace") is True:
            continue
        value = _select(config, key)
        if isinstance(value, DictConfig):
            found += [(f"{key}.{name}", _select(value, str(name))) for name in value]
        else:
            found.append((key, value))
    folders = []
    for key, value in found:
        if not isinstance(value, str) or value in ("", "???"):
            continue
        path = Path(value).expanduser()
        if key == "input" and not path.is_dir():
            from deblur.prediction import _glob_base

            path = _glob_base(value)
        if path.is_dir():
            folders.append((key, path.resolve()))
    return folders


def check_outside_inputs(config: DictConfig, folder: Path, key: str) -> None:
    """Exit with one message (code 2) when ``folder`` (``key``) is, or lies inside, an input folder."""
    resolved = folder.expanduser().resolve()
    for input_key, input_dir in input_folders(config):
        if resolved.is_relative_to(input_dir):
            _refuse(
                f"{key}={folder} is inside the input folder {input_key}={input_dir}: inputs are never "
                f"written to, and the run would write .hydra/ and its log there. Choose a {key} outside it."
            )


def _snapshot(folder: Path) -> _Folder:
    hydra = folder / ".hydra"
    files = None
    if hydra.is_dir():
        files = {p.name: p.read_bytes() for p in hydra.iterdir() if p.is_file()}
    logs = {p.name: p.stat().st_size for p in folder.glob("*.log") if p.is_file()} if folder.is_dir() else {}
    return _Folder(path=folder, existed=folder.exists(), hydra_files=files, log_sizes=logs)


def _restore_logs(state: _Folder) -> None:
    """Cut each log back to its size before the run; remove the logs the run created."""
    for path in state.path.glob("*.log"):
        size = state.log_sizes.get(path.name)
        if size is None:
            path.unlink()
        elif path.stat().st_size > size:
            with path.open("r+b") as fh:
                fh.truncate(size)


class RunFolderGuard(Callback):
    """Hydra callback: refuse a run or sweep folder inside an input folder before Hydra writes to it, and
    remember the run folder as it was (see the module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # as run_job does: ${hydra:...} in hydra.run.dir
        folder = Path(str(config.hydra.run.dir))
        check_outside_inputs(config, folder, "hydra.run.dir")
        _STATE.current = _snapshot(folder.absolute())

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)
        sweep = Path(str(config.hydra.sweep.dir))
        check_outside_inputs(config, sweep, "hydra.sweep.dir")
        jobs = [p.absolute() for p in sweep.iterdir() if p.is_dir()] if sweep.is_dir() else []
        _STATE.jobs = {job: _snapshot(job) for job in jobs}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode == RunMode.MULTIRUN:
            folder = Path(str(config.hydra.runtime.output_dir)).absolute()
            if _STATE.jobs is None:  # a launcher running jobs in other processes: never remove a folder
                _STATE.current = _Folder(path=folder, existed=True, hydra_files=None, claimed=True)
            else:
                _STATE.current = _STATE.jobs.get(folder) or _Folder(path=folder, existed=False)


def claim_run_folder() -> None:
    """The task writes its results into the run folder from now on: a later user error keeps ``.hydra/``
    as Hydra wrote it for this run."""
    if _STATE.current is not None:
        _STATE.current.claimed = True


#: what a run writes before it trains (the settings decision, the CSV logger's hparams): still a stub
STUB_FILES = frozenset({"training_settings.json", "hparams.yaml"})


def _only_hydra_files(folder: Path) -> bool:
    for entry in folder.iterdir():
        if entry.name == ".hydra" and entry.is_dir():
            if not all(p.is_file() and p.name in HYDRA_FILES for p in entry.iterdir()):
                return False
        elif entry.is_dir() and not entry.is_symlink():
            if any((p.is_file() and p.name not in STUB_FILES) or p.is_symlink() for p in entry.rglob("*")):
                return False  # a folder the run wrote into (an empty one, e.g. csv/, holds nothing)
        elif not (entry.is_file() and (entry.suffix == ".log" or entry.name in STUB_FILES)):
            return False
    return True


def undo_run_folder() -> None:
    """After a user error: remove the run folder this command created when it holds only ``.hydra/``, log
    files and empty folders; in a folder that existed and was not claimed, put ``.hydra/`` and the logs
    back as they were."""
    state, _STATE.current = _STATE.current, None
    if state is None or not state.path.is_dir():
        return
    if not state.existed:
        if _only_hydra_files(state.path):
            shutil.rmtree(state.path)
        return
    if state.claimed:
        return
    _restore_logs(state)
    hydra = state.path / ".hydra"
    if state.hydra_files is None:
        if hydra.is_dir() and all(p.name in HYDRA_FILES for p in hydra.iterdir()):
            shutil.rmtree(hydra)
        return
    hydra.mkdir(exist_ok=True)
    for path in hydra.iterdir():
        if path.is_file() and path.name not in state.hydra_files:
            path.unlink()
    for name, data in state.hydra_files.items():
        if not (hydra / name).is_file() or (hydra / name).read_bytes() != data:
            atomic_write(hydra / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
