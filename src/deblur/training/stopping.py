"""How a run that does not end normally stops: divergence (:class:`TrainingDiverged`), Ctrl+C / SIGTERM,
a full disk, a user error raised in a DataLoader worker; each said as one message naming the checkpoint
kept and the command to continue."""

from __future__ import annotations

import functools
import re
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from deblur.data.datamodule import DeblurDataModule
from deblur.errors import UserError
from deblur.lit.restoration import RestorationModule
from deblur.lit.resumption import checkpoint_info
from deblur.training.resume_command import resume_command
from deblur.training.run_log import say
from deblur.utils.files import NoSpaceLeft, disk_full


class TrainingDiverged(UserError, FloatingPointError):
    """The loss or the final weights are not finite; the message names the step and the checkpoint kept."""


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
    package = Path(__file__).resolve().parents[1]  # src/deblur
    if frames and Path(frames[-1]).resolve().is_relative_to(package):
        return UserError(message)
    return err


def kept_checkpoint(output_dir: Path) -> str:
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return "no checkpoint was written before it"
    return f"{last} is kept from step {checkpoint_info(last)['step']} (the last finite state)"


def fit(
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
            f"training stopped by nan: {err} {kept_checkpoint(output_dir)}; after lowering optim.lr (or "
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


def says_what_a_full_disk_kept(fit_and_validate: Any) -> Any:
    """Decorate :func:`deblur.training.outcome.fit_and_validate` (first argument: the config): a full disk
    while writing images, checkpoints or logs becomes one :class:`~deblur.utils.files.NoSpaceLeft` naming
    the path, the checkpoint kept and the command to continue."""

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
