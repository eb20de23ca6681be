"""The end of a ``deblur-train`` sweep: the study's table and the jobs' table, printed and written.

:class:`SweepSummary` is registered as a Hydra callback in ``conf/train.yaml`` (``hydra.callbacks``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from deblur.utils.files import atomic_write_text

log = logging.getLogger(__name__)


def sweep_table(sweep_dir: str | Path) -> str | None:
    """A Markdown table of the jobs of a sweep folder (job folder, val/psnr, val/ssim, gain, steps, stop,
    the training precision and memory format, the device), from their metrics.json; None when no job
    wrote one."""
    from deblur.analysis.tables import load_runs

    sweep = Path(sweep_dir)
    runs = load_runs([sweep])
    if not runs:
        return None
    lines = [
        f"Jobs of {sweep} ({len(runs)} with metrics.json)",
        "",
        "| job | PSNR (dB) | SSIM | gain (dB) | steps | stopped by | precision | device |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for run in runs:
        job = Path(run["_path"]).parent.relative_to(sweep).as_posix()
        steps = run.get("steps", run.get("global_step"))
        planned = run.get("planned_steps")
        lines.append(
            f"| {job} | {run.get('val/psnr', math.nan):.2f} | {run.get('val/ssim', math.nan):.4f} | "
            f"{run.get('val/psnr_gain', math.nan):+.2f} | {steps}{f' / {planned}' if planned else ''} | "
            f"{run.get('stopped_by', '?')} | {precision_text(run)} | {run.get('device', '?')} |"
        )
    return "\n".join(lines) + "\n"


def precision_text(run: dict[str, Any]) -> str:
    """``32-true, channels_last (probe)``: a metrics.json's training settings in words (``?`` for runs
    older than the record)."""
    precision = run.get("precision")
    if precision is None:
        return "?"
    layout = {True: ", channels_last", False: ", NCHW"}.get(run.get("channels_last"), "")
    chosen = run.get("settings_chosen_by")
    return f"{precision}{layout}" + (f" ({chosen})" if chosen else "")
#: a failed job's folder holds this file: its error in one line (listed in jobs.md)
FAILED_FILE = "failed.txt"


class JobFailed(CompactHydraException):
    """A sweep job stopped by a user error (already printed and logged): the job is marked failed and the
    sweep goes on with its other jobs; the command then exits with code 2 (:mod:`deblur.cli.entry`)."""

    def __init__(self, message: str, sweep_dir: str | None = None) -> None:
        super().__init__(message)
        self.sweep_dir = sweep_dir


def multirun_sweep_dir() -> str | None:
    """The sweep folder when called inside a multirun's job, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    # a composed config (deblur.compose, tests) may carry a multirun mode without a job's output folder
    output_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    return str(Path(output_dir).parent) if output_dir else None  # flat job folders (flat_name)


def failed_jobs(sweep_dir: str | Path) -> list[tuple[str, str]]:
    """``[(job folder, error)]`` of the sweep's jobs that failed and wrote no metrics.json since."""
    sweep = Path(sweep_dir)
    failed = []
    for marker in sorted(sweep.glob(f"*/{FAILED_FILE}")):
        if not (marker.parent / "metrics.json").exists():
            failed.append((marker.parent.name, marker.read_text().strip()))
    return failed


def jobs_report(sweep_dir: str | Path) -> str | None:
    """:func:`sweep_table` of the finished jobs, then the failed jobs with their errors; None if neither."""
    table = sweep_table(sweep_dir)
    failed = failed_jobs(sweep_dir)
    if not failed:
        return table
    lines = [f"Failed jobs of {sweep_dir} ({len(failed)}):", ""]
    lines += [f"- {job}: {error}" for job, error in failed]
    return (table + "\n" if table else "") + "\n".join(lines) + "\n"


def _study_collector(name: str) -> Any:
    """``experiments/<name>/collect.py`` as a module when it collects training sweeps (its
    ``collect(sweep_dirs, ...)`` reads the jobs' metrics.json; a source checkout only), else None."""
    import importlib.util
    import inspect

    from deblur.paths import REPO_ROOT

    path = REPO_ROOT / "experiments" / name / "collect.py"
    if not name or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"deblur_collect_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    collect = getattr(module, "collect", None)
    if collect is None or next(iter(inspect.signature(collect).parameters), None) != "sweep_dirs":
        return None  # e.g. cross_dataset's collector reads deblur-eval's results.json
    return module


class SweepSummary(HydraCallback):
    """Hydra callback (``conf/train.yaml``, ``hydra.callbacks``): when a ``deblur-train`` multirun ends,
    print its study's table (the collector ``experiments/<study>/collect.py`` of a sweep folder named after
    the study, e.g. ``study=msfs_ablation``; it also writes ``results.md``) and, for every sweep, the jobs'
    table, written to ``<sweep dir>/jobs.md``."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job writes its error to ``<job>/failed.txt``; ``jobs.md`` is rewritten after every job
        (so the jobs that finished are tabulated even when the sweep stops)."""
        job_dir = OmegaConf.select(job_return.hydra_cfg or config, "hydra.runtime.output_dir", default=None)
        if job_dir is None:
            return
        sweep = Path(str(job_dir)).parent  # job folders are flat (flat_name); ${now:...} is not re-read
        if job_return.status == JobStatus.FAILED:
            err = job_return._return_value  # the property would print Hydra's "Error executing job" again
            text = " ".join(str(err).split()) or type(err).__name__
            error = text if isinstance(err, JobFailed) else f"{type(err).__name__}: {text}"
            Path(str(job_dir)).mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(str(job_dir)) / FAILED_FILE, error + "\n")
        report = jobs_report(str(sweep))
        if report is not None:
            atomic_write_text(Path(str(sweep)) / "jobs.md", report)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        if not sweep.is_dir():
            return
        collector = _study_collector(sweep.name)
        if collector is not None:
            try:
                collector.collect([sweep])
            except (SystemExit, Exception) as err:  # noqa: BLE001 - a summary must not fail the sweep
                log.warning("the study collector of %s did not run: %s", sweep.name, err)
        table = jobs_report(sweep)
        if table is not None:
            atomic_write_text(sweep / "jobs.md", table)
            print("\n" + table)
            log.info("sweep summary written to %s", sweep / "jobs.md")
