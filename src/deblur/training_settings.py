"""The settings that change a training run's numbers (precision, memory format): decided once, stored,
recorded.

Precision is an experimental variable, like the seed: a study holds it fixed and says what it was. So the
two speed settings of ``deblur-train`` (``trainer.precision`` and ``channels_last``) are decided once and
stored as JSON (:data:`SETTINGS_FILE`, written atomically):

* **per run**: ``<run folder>/training_settings.json``, written by rank 0 before training. DDP ranks > 0
  never decide: they read rank 0's file (waiting for it up to :data:`RANK_WAIT_S` seconds).
* **per study**: in a multirun, the first job to need a decision makes it (given values, or one timing
  probe, or the fixed rule) and writes ``<sweep dir>/training_settings.json`` under an exclusive lock
  (``fcntl``, on a lock file removed by its holder: :func:`_locked`; parallel jobs of the joblib launcher
  wait for it); every other job, and every job of a
  ``resume=true`` rerun, reads it. No job probes on its own. The file records what the decision was made
  for (``made_for``: the network, crop and batch size, device); a job whose own differ (another model in
  an ablation sweep, a rerun of the study's name with another crop) still trains with the study's
  settings, so the study's numbers stay comparable, and its log says so with a warning naming the file
  and the differences (:func:`mismatch`).
* **resumed runs**: a run resumed from a checkpoint keeps the settings its run started with (the
  ``training_settings.json`` beside the checkpoint's ``checkpoints/`` folder; for runs older than that
  file, the checkpoint's ``channels_last``), unless the user gives them explicitly.

Values the user gives (``channels_last=true|false``, ``trainer.precision=<not auto>``) always win over a
stored decision. How the settings were chosen is one of :data:`CHOSEN_BY`: ``given`` (both set by the
user), ``probe`` (timed, now or earlier: the speed cache), ``rule`` (the fixed rule: ``speed=fixed``, an
input too small to time, no bf16 on the device). ``metrics.json`` carries them
(:meth:`TrainingSettings.metrics`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from deblur.errors import UserError
from deblur.utils.device import device_name, select_device
from deblur.utils.files import atomic_write_json

log = logging.getLogger(__name__)

SETTINGS_FILE = "training_settings.json"
LOCK_FILE = ".training_settings.lock"
#: how the settings were chosen
CHOSEN_BY = ("given", "probe", "rule")
#: :class:`deblur.speed.training_probe.TrainingSpeed` ``source`` -> how chosen
#: (unknown sources with times: probe)
_SOURCE_CHOSEN_BY = {
    "explicit": "given",
    "fixed": "rule",
    "tiny input": "rule",
    "probe": "probe",
    "cache": "probe",
}
#: seconds a DDP rank > 0 waits for rank 0's settings file
RANK_WAIT_S = 600.0


@dataclass(frozen=True)
class TrainingSettings:
    """The resolved Lightning ``precision`` (``32-true``, ``bf16-mixed``, ...), ``channels_last``, how they
    were chosen (:data:`CHOSEN_BY`), the device name and torch version they were decided for, where the
    decision came from (``decided_in``: ``run``, ``study``, ``resumed run``, ``rank 0``), the probe's
    detail (``detail``: its source, times, the keys given) and what the decision was made for
    (``made_for``: :func:`decision_inputs`; empty in files written before it was recorded)."""

    precision: str
    channels_last: bool
    chosen_by: str
    device: str
    torch: str
    decided_in: str = "run"
    detail: dict[str, Any] = field(default_factory=dict)
    made_for: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The top-level ``metrics.json`` keys (``device``: the device the job ran on)."""
        return {
            "precision": self.precision, "channels_last": self.channels_last, "device": self.device,
            "torch": torch.__version__, "settings_chosen_by": self.chosen_by,
        }  # fmt: skip

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: Mapping[str, Any], path: Path) -> TrainingSettings:
        try:
            settings = cls(
                **{k: data[k] for k in ("precision", "channels_last", "chosen_by", "device", "torch")},
                decided_in=str(data.get("decided_in", "run")),
                detail=dict(data.get("detail") or {}),
                made_for=dict(data.get("made_for") or {}),
            )
        except (KeyError, TypeError) as err:
            raise UserError(
                f"{path} is not a training settings file ({err}); delete it to decide again"
            ) from err
        if not isinstance(settings.channels_last, bool) or not isinstance(settings.precision, str):
            raise UserError(
                f"{path}: channels_last must be true/false and precision a string; delete it to decide again"
            )
        return settings


# ---------------------------------------------------------------- inputs of the decision
def given_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the user set: ``channels_last`` (not null) and ``trainer.precision`` (not ``auto``)."""
    given: dict[str, Any] = {}
    if cfg.get("channels_last") is not None:
        given["channels_last"] = bool(cfg.get("channels_last"))
    precision = str(cfg["trainer"].get("precision") or "auto")
    if precision != "auto":
        given["precision"] = precision
    return given


def job_device(cfg: Mapping[str, Any]) -> torch.device:
    """The device the run trains on (``trainer.accelerator``; ``auto``: CUDA when available)."""
    accelerator = str(cfg["trainer"].get("accelerator") or "auto")
    return select_device("cuda" if accelerator in ("gpu", "cuda") else accelerator)


def training_shape(data: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(crop_size, batch_size)`` the run trains with, for the speed decision: ``data.crop_size`` /
    ``data.batch_size``; with ``data.progressive`` (which replaces both for training) its stage with the
    largest crop, the heaviest per-sample shape the run reaches."""
    from deblur.data.progressive import largest, parse_schedule

    stages = parse_schedule(data.get("progressive"))
    if stages is None:
        return data.get("crop_size"), data.get("batch_size")
    stage = stages[largest(stages, "crop_size")[0]]
    return stage.crop_size, stage.batch_size


def decision_inputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a decision is made for: ``model`` (:func:`deblur.checkpoints.describe_model`), ``crop_size``,
    ``batch_size`` (:func:`training_shape`) and ``device`` (its name)."""
    from deblur.checkpoints import describe_model

    crop_size, batch_size = training_shape(cfg["data"])
    return {
        "model": describe_model(_plain(cfg["model"])),
        "crop_size": crop_size,
        "batch_size": batch_size,
        "device": device_name(job_device(cfg)),
    }


def mismatch(made_for: Mapping[str, Any], own: Mapping[str, Any]) -> list[str]:
    """``key: decided for A, this job B`` for each input of :func:`decision_inputs` (the device aside: its
    own warning) that differs; empty when ``made_for`` is not recorded."""
    keys = [k for k in ("model", "crop_size", "batch_size") if made_for and made_for.get(k) != own.get(k)]
    return [f"{k}: decided for {made_for.get(k)}, this job {own.get(k)}" for k in keys]


def with_given(settings: TrainingSettings, given: Mapping[str, Any]) -> TrainingSettings:
    """``settings`` with the user's values on top (``chosen_by`` becomes ``given`` when both are given)."""
    if not given:
        return settings
    chosen_by = "given" if len(given) == 2 else settings.chosen_by
    return replace(settings, chosen_by=chosen_by, detail={**settings.detail, "given": sorted(given)}, **given)


def probe_settings(cfg: Mapping[str, Any], given: Mapping[str, Any]) -> TrainingSettings:
    """Decide now: the given values, the rest by
    :func:`deblur.speed.training_probe.choose_training_speed` (the probe, the speed cache, or the fixed
    rule)."""
    from deblur.speed import training_probe

    device = job_device(cfg)
    label = device_name(device)
    if len(given) == 2:
        return TrainingSettings(
            given["precision"],
            given["channels_last"],
            "given",
            label,
            torch.__version__,
            detail={"given": sorted(given)},
            made_for=decision_inputs(cfg),
        )
    crop_size, batch_size = training_shape(cfg["data"])
    chosen = training_probe.choose_training_speed(
        _plain(cfg["model"]), _plain(cfg["loss"]), device,
        batch=int(batch_size), size=int(crop_size or 256),
        channels_last=given.get("channels_last"), precision=given.get("precision"),
        mode=str(cfg.get("speed") or "probe"), cache=cfg.get("speed_cache"),
    )  # fmt: skip
    chosen_by = _SOURCE_CHOSEN_BY.get(chosen.source, "probe" if chosen.times_ms else "rule")
    detail = {"source": chosen.source, "times_ms": chosen.times_ms, "given": sorted(given)}
    return TrainingSettings(
        str(chosen.precision), bool(chosen.channels_last), chosen_by, label, torch.__version__, detail=detail,
        made_for=decision_inputs(cfg),
    )  # fmt: skip


def _plain(node: Any) -> Any:
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


# ---------------------------------------------------------------- the stored decision
def read_settings(path: Path) -> TrainingSettings | None:
    """The settings stored at ``path``; None when there is no file. Raises UserError for a broken file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise UserError(
            f"{path} is unreadable ({err}); delete it to decide the training settings again"
        ) from err
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a training settings file; delete it to decide again")
    return TrainingSettings.from_record(data, Path(path))


def write_settings(path: Path, settings: TrainingSettings) -> None:
    atomic_write_json(path, settings.record())


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``folder/.training_settings.lock`` (jobs of one sweep, in parallel)
    that leaves no file behind: the holder removes the lock file before it unlocks.

    A job that was waiting on the removed file then holds a lock nobody else can see; it finds the path
    gone (or naming another file) once it has the lock, and starts over on the file now at the path. So
    only the holder of the lock on the file at the path runs the block, and a sweep folder keeps no lock
    file (one is left only by a job killed inside the block; the next job uses and removes it)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if not _same_file(handle, path):
                    continue  # the file was removed by the job before us: lock the one now at the path
                try:
                    yield
                finally:
                    path.unlink(missing_ok=True)
                return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _same_file(handle: Any, path: Path) -> bool:
    """Whether the open ``handle`` is the file at ``path`` now."""
    try:
        linked = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (linked.st_dev, linked.st_ino) == (opened.st_dev, opened.st_ino)


def shared_decision(folder: Path, decide: Callable[[], TrainingSettings]) -> tuple[TrainingSettings, bool]:
    """The decision stored in ``folder`` (:data:`SETTINGS_FILE`), or ``decide()`` written there when there is
    none; under an exclusive lock, so that of jobs running at once exactly one decides.
    Returns ``(settings, decided here)``."""
    path = Path(folder) / SETTINGS_FILE
    with _locked(Path(folder)):
        stored = read_settings(path)
        if stored is not None:
            return stored, False
        settings = decide()
        write_settings(path, settings)
        return settings, True


def sweep_folder() -> Path | None:
    """The sweep folder of a Hydra multirun job (absolute), else None (a single run, or no Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    folder = Path(str(hc.sweep.dir)).expanduser()
    return folder if folder.is_absolute() else Path(str(hc.runtime.cwd)) / folder


def process_rank() -> int:
    """This process's global rank as the launcher set it (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``); 0
    without one."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return int(_get_rank() or 0)


def _wait_for(path: Path, timeout: float) -> TrainingSettings:
    deadline = time.monotonic() + timeout
    while True:
        stored = read_settings(path)
        if stored is not None:
            return stored
        if time.monotonic() > deadline:
            raise UserError(
                f"rank {process_rank()}: no {path} from rank 0 after {timeout:.0f} s; rank 0 decides the "
                "training settings (set channels_last and trainer.precision to give them to every rank)"
            )
        time.sleep(0.5)


def _resumed_settings(ckpt_path: str | None) -> tuple[TrainingSettings | None, dict[str, Any]]:
    """(settings the resumed run started with, or None; values of an older checkpoint to keep)."""
    if ckpt_path is None or "://" in ckpt_path or not Path(ckpt_path).is_file():
        return None, {}
    stored = read_settings(Path(ckpt_path).resolve().parent.parent / SETTINGS_FILE)
    if stored is not None:
        return stored, {}
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    hparams = checkpoint.get("hyper_parameters") or {}
    if isinstance(hparams.get("channels_last"), bool):
        log.info(
            "%s has no %s beside it: keeping its channels_last=%s; precision is decided again",
            ckpt_path,
            SETTINGS_FILE,
            hparams["channels_last"],
        )
        return None, {"channels_last": hparams["channels_last"]}
    return None, {}


def decide_training_settings(
    cfg: Mapping[str, Any], output_dir: str | os.PathLike, ckpt_path: str | None = None
) -> TrainingSettings:
    """The precision and memory format of this run (module docstring), written to the run folder.

    Args:
        cfg: the composed train config (``channels_last``, ``trainer.precision``, ``speed``, ``speed_cache``,
            ``model``, ``loss``, ``data``).
        output_dir: the run folder (``<output_dir>/training_settings.json`` is written by rank 0).
        ckpt_path: the resolved checkpoint the run resumes from (None: a fresh run).

    Raises:
        UserError: a broken settings file (naming it), no rank-0 file for a rank > 0.
    """
    output_dir = Path(output_dir)
    own = output_dir / SETTINGS_FILE
    given = given_settings(cfg)
    label = device_name(job_device(cfg))
    if process_rank() > 0:
        settings = replace(_wait_for(own, RANK_WAIT_S), decided_in="rank 0")
        log.info("training settings (from rank 0, %s): %s", own, _describe(settings))
        return settings
    resumed, kept = _resumed_settings(ckpt_path)
    sweep = sweep_folder()
    if len(given) == 2:
        settings = probe_settings(cfg, given)
    elif resumed is not None:
        settings = with_given(replace(resumed, decided_in="resumed run"), given)
    elif sweep is not None:
        pinned = {**kept, **given}

        def decide() -> TrainingSettings:
            return replace(probe_settings(cfg, pinned), decided_in="study")

        study, decided = shared_decision(sweep, decide)
        where = "decided by this job" if decided else "decided by an earlier job"
        log.info(
            "training settings of the study (%s, %s): %s", sweep / SETTINGS_FILE, where, _describe(study)
        )
        settings = with_given(replace(study, decided_in="study"), pinned)
        differs = mismatch(study.made_for, decision_inputs(cfg))
        if differs:
            log.warning(
                "the study's training settings in %s were decided for another job (%s); this job trains "
                "with them too, so the study's jobs stay comparable. To decide for this job instead, use a "
                "new study= name, or delete that file so that the next job decides again",
                sweep / SETTINGS_FILE,
                "; ".join(differs),
            )
            settings = replace(settings, detail={**settings.detail, "differs_from_decision": differs})
    else:
        settings = with_given(probe_settings(cfg, {**kept, **given}), given)
    if settings.device != label:
        log.warning(
            "training settings decided on %s are used on %s (the study keeps one decision)",
            settings.device,
            label,
        )
        settings = replace(settings, device=label, detail={**settings.detail, "decided_on": settings.device})
    write_settings(own, settings)
    log.info("training settings: %s", _describe(settings))
    return settings


def _describe(settings: TrainingSettings) -> str:
    layout = "channels_last" if settings.channels_last else "NCHW"
    return f"precision {settings.precision}, {layout} (chosen by {settings.chosen_by}, on {settings.device})"
