"""Training as ``deblur-train`` runs it: build data, module and Trainer from a composed config, fit,
validate the final weights and write ``metrics.json``.

:func:`train` takes a ``conf/train.yaml`` config (from ``deblur-train`` or :func:`deblur.compose`):

    >>> import deblur                                                    # doctest: +SKIP
    >>> cfg = deblur.compose("train", ["debug=fdr", "paths.output_dir=/tmp/run"])  # doctest: +SKIP
    >>> metrics = deblur.train(cfg)                                      # doctest: +SKIP

What a run promises (docs/trust.md):

* bad config values fail before anything is built, naming their key (:mod:`deblur.config.checks`);
* a run that would train 0 steps, or ends with non-finite numbers, fails (no ``metrics.json``);
* ``metrics.json`` says why training stopped (``stopped_by``: max_steps, max_epochs, max_time, ...) and
  after how many ``steps`` of the ``planned_steps``;
* a resume says where it resumes from; ``ckpt_path=last`` / ``best`` without a checkpoint is an error; a
  new run never overwrites a folder that holds a run; a resumed run appends to ``csv/metrics.csv``;
* ``train.log`` (Hydra's job log) holds the run's log, Lightning's messages and the final table;
* the precision and memory format are decided once per run / study / resumed run and recorded in
  ``metrics.json`` (:mod:`deblur.training_settings`).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import re
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import check_complete
from deblur.config.checks import MAX_TIME, check_train_config
from deblur.config.presets import model_preset
from deblur.data.datamodule import DeblurDataModule
from deblur.data.datasets import check_data_root
from deblur.data.progressive import progressive_record
from deblur.errors import UserError
from deblur.lit.checkpointing import AtomicCheckpointIO, RNGState, check_checkpoint_model, checkpoint_info
from deblur.lit.restoration import RestorationModule
from deblur.lit.wandb import log_run_figures
from deblur.lit.wandb import wandb_loggers as wandb_loggers_of
from deblur.models.registry import size_mb
from deblur.resume_command import resume_command
from deblur.run_folder import claim_run_folder
from deblur.training_settings import decide_training_settings, given_settings, probe_settings
from deblur.utils.files import NoSpaceLeft, atomic_write, atomic_write_json, disk_full

log = logging.getLogger(__name__)
#: the run's own messages (resume notices, the final table): written to the run's log files only (they
#: are printed as well), see :func:`route_logs_to_run_file`
report_log = logging.getLogger("deblur.report")

#: keys of metrics.json that other tools (collectors, notebooks) rely on
METRIC_KEYS = ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input")
#: ``stopped_by`` values of runs that did all the training they were configured for
COMPLETE = ("max_steps", "max_epochs", "fast_dev_run")
#: ``ckpt_path`` values Lightning resolves itself
_LIGHTNING_CKPT = ("hpc", "registry")


class TrainingDiverged(UserError, FloatingPointError):
    """The loss or the final weights are not finite; the message names the step and the checkpoint kept."""


# ---------------------------------------------------------------- logging
def route_logs_to_run_file() -> None:
    """Send Lightning's messages and :data:`report_log` to the run's log files (Hydra's ``<job>.log``).

    Lightning gives its logger a console handler of its own and stops propagation when it is imported
    before logging is configured, so Hydra's file handler never saw its messages. The file handlers of
    the root logger are attached to both loggers; handlers of an earlier job of the same process (a
    multirun) are removed first.
    """
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    report_log.propagate = False
    report_log.setLevel(logging.INFO)
    for logger in (logging.getLogger("lightning.pytorch"), report_log):
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and handler not in files:
                logger.removeHandler(handler)
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    package = logging.getLogger("deblur")
    if files and package.level > logging.INFO:  # NOTSET (0) inherits Hydra's INFO
        package.setLevel(logging.INFO)


def say(message: str) -> None:
    """Print ``message`` and write it to the run's log file."""
    print(message)
    report_log.info(message)


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_strategy(cfg: DictConfig) -> Any:
    """``strategy`` group -> a Lightning strategy name or instance."""
    node = cfg.get("strategy")
    if node is None:
        return "auto"
    if "_target_" in node:
        return instantiate(node)
    return node.get("name", "auto")


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    nodes = cfg.get("callbacks") or {}
    callbacks = [instantiate(node) for node in nodes.values() if node is not None and "_target_" in node]
    return [*callbacks, *_progress_bar(cfg, callbacks), RNGState()]  # RNG states in checkpoints: exact resume


def _progress_bar(cfg: DictConfig, callbacks: list[L.Callback]) -> list[L.Callback]:
    """Lightning's bar with an honest epoch / step description (:mod:`deblur.lit.progress`), when the
    trainer shows one and no configured callback is a bar."""
    from lightning.pytorch.callbacks import ProgressBar

    from deblur.lit.progress import progress_bar

    shown = (cfg.get("trainer") or {}).get("enable_progress_bar", True) is not False
    if not shown or any(isinstance(c, ProgressBar) for c in callbacks):
        return []
    return [progress_bar()]


def _wandb_names() -> dict[str, str]:
    """W&B group (the sweep folder's name: the study, or the sweep's time) and run name of a Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    names = {"name": hc.job.override_dirname or hc.job.name}
    if hc.mode == RunMode.MULTIRUN:
        names["group"] = Path(hc.sweep.dir).name
    return names


def build_loggers(cfg: DictConfig) -> list[Any] | bool:
    nodes = cfg.get("logger") or {}
    loggers = []
    for node in nodes.values():
        if node is None or "_target_" not in node:
            continue
        extra = {}
        if node._target_.endswith("WandbLogger"):  # fill group / name left null from the Hydra job
            extra = {k: v for k, v in _wandb_names().items() if node.get(k) is None}
        loggers.append(instantiate(node, **extra))
    return loggers or False


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    # None is meaningful for some keys (check_val_every_n_epoch=None: validate by steps), so pass all
    kwargs = dict(_container(cfg.trainer))
    kwargs.update(overrides)
    return L.Trainer(
        strategy=build_strategy(cfg),
        callbacks=build_callbacks(cfg),
        logger=build_loggers(cfg),
        default_root_dir=cfg.paths.output_dir,
        plugins=[AtomicCheckpointIO()],  # checkpoints written to a temporary file, then renamed
        **kwargs,
    )


def _param_count(module: RestorationModule) -> int:
    return sum(p.numel() for p in module.net.parameters())


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


def _seconds(max_time: Any) -> float | None:
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


def _clock(seconds: float) -> str:
    """Seconds as Lightning's ``DD:HH:MM:SS``."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def _time_left(cfg: DictConfig, info: dict[str, Any]) -> tuple[float | None, float | None]:
    """(seconds of ``trainer.max_time``, seconds the checkpoint has already used)."""
    return _seconds(cfg.trainer.get("max_time")), info.get("train_seconds")


def _max_time_used_up(cfg: DictConfig, ckpt: str, info: dict[str, Any]) -> str | None:
    """The message for a checkpoint whose training time already fills ``trainer.max_time``, else None."""
    limit, used = _time_left(cfg, info)
    if limit is None or used is None or used < limit:
        return None
    max_steps = cfg.trainer.get("max_steps")
    if isinstance(max_steps, int) and 0 < max_steps <= info["step"]:
        return None  # all steps done (e.g. stopped during its final validation): nothing to train
    suggestion = _clock(2 * max(limit, used))
    return (
        f"{ckpt} (step {info['step']}) has trained for {_clock(used)}, all of trainer.max_time="
        f"{cfg.trainer.max_time} (the run stopped by max_time): raise trainer.max_time to train further, "
        f"e.g. trainer.max_time={suggestion}"
    )


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


def _csv_step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


def keep_csv_history(trainer: L.Trainer, resume_step: int) -> None:
    """Keep the rows a CSV logger wrote before ``resume_step`` when a run resumes in its own folder.

    Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts writing ("Previous log files in this
    directory will be deleted"). The rows logged up to the checkpoint (steps below ``resume_step``, and the
    final validation at it) are written back, and new rows are appended to them. Rows of steps after the
    checkpoint, which the resumed run trains again, are moved to ``superseded_after_step_<N>.csv``.
    """
    from lightning.pytorch.loggers import CSVLogger

    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        keep = [
            r for r in rows
            if _csv_step(r) < resume_step or (_csv_step(r) == resume_step and r.get("val/psnr"))
        ]  # fmt: skip
        later = [r for r in rows if r not in keep]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Previous log files.*")
            writer = logger.experiment  # deletes metrics.csv

        def write(rows_: list[dict[str, str]], header_: list[str] = header) -> Any:
            def _write(tmp: str) -> None:
                with open(tmp, "w", newline="") as f:
                    out = csv.DictWriter(f, fieldnames=header_, restval="")
                    out.writeheader()
                    out.writerows(rows_)

            return _write

        if later:
            aside = path.with_name(f"superseded_after_step_{resume_step}.csv")
            atomic_write(aside, write(later))
            log.info("%d row(s) of %s logged after step %d (trained again now) moved to %s",
                     len(later), path, resume_step, aside)  # fmt: skip
        if keep:
            atomic_write(path, write(keep))
            writer.metrics_keys = sorted(header)
            log.info("%s: %d row(s) from before the resume kept; new rows are appended", path, len(keep))


# ---------------------------------------------------------------- the run
def training_speed(cfg: DictConfig) -> tuple[bool, str]:
    """``(channels_last, trainer precision)`` of a run: as configured, or probed where left open.

    ``channels_last: null`` and / or ``trainer.precision: auto`` time a few training steps of the configured
    network and loss at the training crop (:func:`deblur.speed_probe.choose_training_speed`, cached per
    machine) and take the fastest; ``speed=fixed`` takes the fixed rule instead. The defaults are fixed
    (``channels_last: true``, ``32-true``): docs/training.md says why.

    One run's choice, decided afresh; :func:`train` decides through
    :func:`deblur.training_settings.decide_training_settings` (once per study, kept by a resumed run).
    """
    chosen = probe_settings(cfg, given_settings(cfg))
    log.info("training speed: channels_last=%s, precision=%s", chosen.channels_last, chosen.precision)
    return chosen.channels_last, chosen.precision


def check_loss_weights(cfg: DictConfig) -> None:
    """A loss with pretrained weights (FDDN's VGG16 perceptual loss) gets them before the speed probe and
    the Trainer, or fails naming ``loss.weights_path``; the run's log says what the loss uses."""
    loss = _container(cfg.loss)
    if "pretrained" in loss:
        from deblur.losses.perceptual import check_vgg16_weights

        say(check_vgg16_weights(bool(loss["pretrained"]), loss.get("weights_path")))


def initialise_weights(module: RestorationModule, path: str, resuming: bool = False) -> None:
    """``init_from=<file>``: start training from the weights in ``path`` (fine-tuning).

    Any file :func:`deblur.checkpoints.load_model` reads (a ``deblur-train`` checkpoint, a plain state dict,
    the MSFS-Net authors' released weights) whose network fits this run's ``model``; only the network's
    weights are taken: the optimiser, the schedule and the step counter start from zero (unlike
    ``ckpt_path``, which resumes a run). When the run resumes from its own checkpoint, that checkpoint's
    weights win and ``init_from`` is not applied again.
    """
    from deblur.checkpoints import load_model

    if resuming:
        say(f"init_from={path} not applied: resuming from the run's checkpoint, which holds newer weights")
        return
    source, _ = load_model(path, model=module.hparams["model"], key="init_from")
    module.net.load_state_dict(source.state_dict(), strict=True)
    say(f"init_from: network weights from {path} (step counter, optimiser and schedule start fresh)")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate as configured; returns (and writes) the metrics.json payload.

    With ``resume=true`` a job whose output dir already holds ``metrics.json`` is not run again (its stored
    payload is returned) unless it stopped by ``max_time`` and ``trainer.max_time`` was raised; one with
    ``checkpoints/last.ckpt`` continues from it.

    Raises:
        UserError: a bad config value (naming its key), no checkpoint for ``ckpt_path=last``, a folder that
            holds another run, a training set smaller than one batch, a run that trained 0 steps.
        TrainingDiverged: a non-finite loss or final weights (naming the step and the checkpoint kept).
    """
    from deblur.losses.registry import with_default_loss

    if with_default_loss(cfg):
        log.info("model._target_=%s names no loss: training with loss=l1", cfg.model["_target_"])
    check_train_config(cfg)
    route_logs_to_run_file()
    output_dir = Path(cfg.paths.output_dir)
    done = output_dir / "metrics.json"
    if cfg.get("resume") and done.exists():
        stored = json.loads(done.read_text())
        if not _continue_after_max_time(cfg, stored, output_dir):
            return stored
    ckpt_path = _resolve_ckpt_path(cfg, output_dir)
    _refuse_overwriting(output_dir, ckpt_path)
    check_loss_weights(cfg)
    start_step = 0
    if ckpt_path is not None and ckpt_path not in _LIGHTNING_CKPT and "://" not in ckpt_path:
        check_complete(ckpt_path, "ckpt_path")
        check_checkpoint_model(ckpt_path, _container(cfg.model))
        start_step = _announce_resume(cfg, ckpt_path)
    check_data_root(_container(cfg.data))  # a missing dataset is reported before the speed probe
    settings = decide_training_settings(cfg, output_dir, ckpt_path)
    channels_last, precision = settings.channels_last, settings.precision
    L.seed_everything(cfg.seed, workers=True)
    datamodule = DeblurDataModule(
        data=_container(cfg.data), augment=_container(cfg.get("augment")), shuffle_seed=int(cfg.seed)
    )
    module = RestorationModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optim=_container(cfg.optim),
        channels_last=channels_last,
    )
    if cfg.get("init_from"):
        initialise_weights(module, str(cfg.init_from), resuming=ckpt_path is not None)
    claim_run_folder()  # checks passed: a user error from here on keeps the .hydra/ Hydra wrote for this run
    trainer = build_trainer(cfg, precision=precision)
    if start_step and Path(ckpt_path).resolve().parent == (output_dir / "checkpoints").resolve():
        keep_csv_history(trainer, start_step)
    wandb_loggers = wandb_loggers_of(trainer)
    try:
        for logger in wandb_loggers:  # the resolved config, not ${...} strings (rank 0 only)
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            logger.log_hyperparams(settings.metrics())  # the resolved precision, layout, device, torch
        payload = _fit_and_validate(
            cfg, trainer, module, datamodule, ckpt_path, output_dir, start_step, record=settings.metrics()
        )
        if trainer.is_global_zero:
            for logger in wandb_loggers:  # figures, and the frequency gap as a plot
                log_run_figures(logger, output_dir, trainer.callback_metrics, trainer.global_step)
    finally:
        if wandb_loggers:
            import wandb

            wandb.finish()  # one W&B run per job, also in a multirun
    return payload


def unwrap_worker_error(err: BaseException) -> BaseException:
    """A user error raised in a DataLoader worker, as its own one message.

    PyTorch re-raises a worker's exception as ``Caught <Type> in DataLoader worker process N.`` followed by
    the worker's whole traceback. For a user error (:func:`deblur.errors.is_user_error`: a
    :class:`UserError` such as a ``DatasetError`` naming a corrupt file, a missing file, or a ``ValueError``
    raised by the suite's own code) the original message is returned as an error of the same kind;
    anything else is returned unchanged (a bug keeps its traceback).
    """
    text = str(err)
    if not (text.startswith("Caught ") and "Original Traceback" in text):
        return err
    name = re.escape(type(err).__name__)
    matches = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", text, flags=re.MULTILINE))
    if not matches:
        return err
    message = text[matches[-1].end() :].rstrip()
    if isinstance(err, UserError | FileNotFoundError | NotADirectoryError | PermissionError):
        try:
            return type(err)(message)
        except Exception:  # noqa: BLE001 - an exception class with another signature
            return UserError(message)
    if not isinstance(err, ValueError):
        return err
    frames = re.findall(r'^\s*File "([^"]+)"', text[: matches[-1].start()], flags=re.MULTILINE)
    package = Path(__file__).resolve().parent
    if frames and Path(frames[-1]).resolve().is_relative_to(package):
        return UserError(message)
    return err


def _kept_checkpoint(output_dir: Path) -> str:
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return "no checkpoint was written before it"
    return f"{last} is kept from step {checkpoint_info(last)['step']} (the last finite state)"


def _fit(
    trainer: L.Trainer, module: RestorationModule, datamodule: DeblurDataModule, ckpt_path: str | None,
    output_dir: Path,
) -> None:  # fmt: skip
    """``trainer.fit`` with its failures said plainly: divergence, signals, user errors from workers."""
    try:
        with warnings.catch_warnings():
            # Lightning warns on a mid-epoch checkpoint unless the loader has state_dict(); ours resumes
            # through the sampler's position source instead (DeblurDataModule.training_position)
            warnings.filterwarnings("ignore", message=".*ended before the epoch ended.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except FloatingPointError as err:
        raise TrainingDiverged(
            f"training stopped by nan: {err} {_kept_checkpoint(output_dir)}; after lowering optim.lr (or "
            "setting trainer.gradient_clip_val) continue with ckpt_path=last, or start a new run. No "
            "metrics.json written."
        ) from err
    except SystemExit as err:  # Ctrl+C (Lightning exits) or SIGTERM (Lightning's SIGTERMException)
        if trainer.is_global_zero:
            say(stopped_by_signal(trainer.global_step, output_dir))
        raise SystemExit(signal_exit_code(err)) from err
    except Exception as err:
        unwrapped = unwrap_worker_error(err)
        if unwrapped is err:
            raise
        raise unwrapped from None


def stopped_by_signal(step: int, output_dir: Path) -> str:
    """What a run stopped by Ctrl+C / SIGTERM says: the step, the checkpoint kept, the command to continue."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return f"stopped by signal at step {step}; no checkpoint was written (callbacks without last.ckpt)"
    return (
        f"stopped by signal at step {step}; {last} holds step {checkpoint_info(last)['step']}; no "
        f"metrics.json written. Continue with: {resume_command(output_dir)}"
    )


def signal_exit_code(err: SystemExit) -> int:
    """A run stopped by a signal fails: 128 + the signal's number (Lightning exits with 1 on Ctrl+C and
    with 0 on SIGTERM)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(err, SIGTERMException):
        return 128 + signal.SIGTERM
    if isinstance(err.__context__, KeyboardInterrupt):
        return 128 + signal.SIGINT
    return err.code if isinstance(err.code, int) and err.code else 1


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


def _planned_steps(trainer: L.Trainer) -> int | None:
    """The optimizer steps the run was configured for (``max_steps``, or epochs x batches)."""
    if trainer.max_steps not in (None, -1):
        return int(trainer.max_steps)
    try:
        planned = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - an infinite loader or no data: unknown
        return None
    return int(planned) if math.isfinite(planned) else None


def _validate_final(trainer: L.Trainer, module: RestorationModule, datamodule: DeblurDataModule) -> list:
    """``trainer.validate`` of the final weights. When fit's last validation was at this very step (same
    weights, same numbers), its loggers are left out, so ``csv/metrics.csv`` and W&B get no second row."""
    repeat = module.last_validation_step == trainer.global_step
    loggers = trainer.loggers
    if repeat:
        trainer.loggers = []
    try:
        return trainer.validate(module, datamodule=datamodule, verbose=False)
    finally:
        trainer.loggers = loggers


def says_what_a_full_disk_kept(fit_and_validate: Any) -> Any:
    """Decorate :func:`_fit_and_validate` (first argument: the config): a full disk while writing images,
    checkpoints or logs becomes one :class:`~deblur.utils.files.NoSpaceLeft` naming the path, the
    checkpoint kept and the command to continue."""

    @functools.wraps(fit_and_validate)
    def run(cfg: DictConfig, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return fit_and_validate(cfg, *args, **kwargs)
        except Exception as err:
            full = disk_full(err)
            if full is None:
                raise
            raise no_space_left(full, Path(cfg.paths.output_dir)) from err

    return run


def no_space_left(full: BaseException, output_dir: Path) -> NoSpaceLeft:
    """The one message of a full disk: the file that could not be written (else the run folder), the
    checkpoint kept, the command to continue."""
    path = getattr(full, "path", None) or getattr(full, "filename", None)
    where = f"could not write {path}" if path else f"could not write the run's files in {output_dir}"
    last = output_dir / "checkpoints" / "last.ckpt"
    kept, then = "no checkpoint was kept", "start the run again"
    if last.exists():
        kept = f"{last} is kept at step {checkpoint_info(last)['step']}"
        then = f"continue with: {resume_command(output_dir)}"
    message = f"no space left on device: {where}; {kept}; no metrics.json written. Free space, then {then}"
    return NoSpaceLeft(path or output_dir, message)


@says_what_a_full_disk_kept
def _fit_and_validate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: RestorationModule,
    datamodule: DeblurDataModule,
    ckpt_path: str | None,
    output_dir: Path,
    start_step: int = 0,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit, validate the final weights, write metrics.json; ``record``: the resolved training settings
    (:meth:`deblur.training_settings.TrainingSettings.metrics`), top-level keys of metrics.json."""
    _fit(trainer, module, datamodule, ckpt_path, output_dir)
    stopped_by = stop_reason(trainer)
    steps = trainer.global_step
    if steps == 0:
        raise UserError(
            f"training ran 0 optimizer steps (stopped by {stopped_by}; "
            f"trainer.max_steps={trainer.max_steps}, "
            f"trainer.max_time={cfg.trainer.get('max_time')}, trainer.limit_train_batches="
            f"{cfg.trainer.get('limit_train_batches')}); no metrics.json written"
        )

    # Final validation of the final weights (not the best checkpoint): the numbers the run ends with.
    results = _validate_final(trainer, module, datamodule)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing and not cfg.trainer.get("fast_dev_run"):
        raise RuntimeError(f"validation did not produce {missing}; got {sorted(metrics)}")
    bad = [k for k in ("val/psnr", "val/ssim") if k in metrics and not math.isfinite(metrics[k])]
    if bad:
        raise TrainingDiverged(
            f"the final weights at step {steps} give {', '.join(f'{k}={metrics[k]}' for k in bad)}: training "
            f"diverged; {_kept_checkpoint(output_dir)}. No metrics.json written."
        )
    params = _param_count(module)
    payload = {
        **{k: metrics.get(k, math.nan) for k in METRIC_KEYS},
        "val/psnr_gain": metrics.get("val/psnr", math.nan) - metrics.get("val/psnr_input", math.nan),
        "model": cfg.model.get("name") or cfg.model.get("_target_"),
        "model_preset": model_preset(_container(cfg.model)),
        "ablation": cfg.get("ablation_name"),
        "parameters": params,
        "size_mb": size_mb(params),
        "global_step": steps,
        "epoch": trainer.current_epoch,
        "steps": steps,
        "planned_steps": _planned_steps(trainer),
        "stopped_by": stopped_by,
        "resumed_from_step": start_step or None,
        "output_dir": str(output_dir),
        **progressive_record(_container(cfg.data), steps),  # data.progressive's stages, the last one trained
        **(record or {}),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", payload)
        _print_summary(payload)
    return payload


def max_time_resume(payload: dict[str, Any]) -> str:
    """The command that continues a run stopped by ``max_time``, with ``trainer.max_time`` doubled (at
    least twice the training time its ``last.ckpt`` holds)."""
    output_dir = Path(payload["output_dir"])
    trainer_cfg = (payload.get("config") or {}).get("trainer") or {}
    last = output_dir / "checkpoints" / "last.ckpt"
    used = checkpoint_info(last).get("train_seconds") if last.exists() else None
    raised = _clock(2 * max(_seconds(trainer_cfg.get("max_time")) or 0, used or 0))
    return resume_command(output_dir, **{"trainer.max_time": raised})


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


def _print_summary(payload: dict[str, Any]) -> None:
    resume = max_time_resume(payload) if payload.get("stopped_by") == "max_time" else None
    say("\n" + summary_text(payload, resume) + "\n")
    if payload.get("stopped_by") not in (None, *COMPLETE):
        log.warning(stop_line(payload, resume))
