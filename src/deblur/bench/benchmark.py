"""One benchmark run as ``deblur-bench`` does it: :func:`run` measures every model, loader and analysis of
``conf/bench.yaml`` against this machine's peak conv rate and writes ``bench.json`` and ``bench.md``.

What is measured and the keys of ``bench.json``: :mod:`deblur.bench` and :mod:`deblur.bench.report`;
options: ``conf/bench.yaml``. Progress is logged; a section that fails is recorded with its error
(``<section>.error``) and the run goes on, so one unsupported option does not lose the other figures.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from deblur.bench import gpu, networks, pipeline, report
from deblur.bench.peak import measure_peaks
from deblur.config import register_configs
from deblur.paths import CONF_DIR
from deblur.utils.device import cpu_name, select_device

log = logging.getLogger(__name__)
register_configs()


def compose_train(overrides: list[str]) -> DictConfig:
    """The ``deblur-train`` config with ``overrides`` (inside or outside a running Hydra app). Inside
    ``deblur-bench`` it composes with the app's config search path, so a ``--config-dir`` folder's
    ``model/<name>.yaml`` is found as ``deblur-train --config-dir`` finds it."""
    if GlobalHydra.instance().is_initialized():
        return compose("train", overrides=overrides)
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return compose("train", overrides=overrides)


def _machine(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def counted_presets(cfg: DictConfig) -> list[str]:
    """``presets`` followed by the ``timed`` names it lacks (e.g. the user's own ``timed=[mynet]`` of a
    ``--config-dir`` folder): every timed network is counted too."""
    return [*cfg.presets, *(p for p in cfg.timed if p not in cfg.presets)]


def _check_presets(cfg: DictConfig) -> None:
    counted = counted_presets(cfg)
    for key in ("loader", "tiling"):
        section = cfg[key]
        if section.enabled and section.preset not in counted:
            raise ValueError(f"{key}.preset={section.preset!r} is not in presets={counted}")


def _guarded(result: dict[str, Any], key: str, fn: Any, *args: Any) -> None:
    """``result[key] = fn(*args)``; on an error, record it under ``result[key]["error"]`` and go on."""
    try:
        result[key] = fn(*args)
    except Exception as err:  # noqa: BLE001 - the benchmark reports and continues
        log.exception("%s failed", key)
        result[key] = {"error": f"{type(err).__name__}: {err}"}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the benchmark of ``cfg`` (conf/bench.yaml); returns what ``bench.json`` holds."""
    _check_presets(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    device = select_device(cfg.device)
    timing = OmegaConf.to_container(cfg.timing)
    speed = OmegaConf.to_container(cfg.speed) if "speed" in cfg else None
    mac_sizes = [tuple(int(v) for v in s) for s in cfg.mac_sizes]
    fwd, step = cfg.forward, cfg.train_step
    hd = tuple(int(v) for v in fwd.hd) if fwd.hd else None
    needed = sorted({*mac_sizes, (fwd.size, fwd.size), *([hd] if hd else [])})
    settings = OmegaConf.to_container(cfg, resolve=False)
    settings.pop("paths", None)  # holds Hydra-runtime interpolations
    settings["output"] = str(cfg.output)
    result: dict[str, Any] = {"machine": _machine(device), "settings": settings}
    result["settings"]["mac_sizes"] = [networks.size_key(h, w) for h, w in mac_sizes]

    log.info("peak conv rate on %s", device)
    result["peak"] = measure_peaks(
        device, list(cfg.peak.widths), cfg.peak.size, cfg.peak.batch, cfg.peak.repeats
    )
    peak = result["peak"]["best"]["gflops"]

    configs: dict[str, tuple[dict, dict]] = {}
    extra = list(cfg.model_overrides)
    result["models"] = {}
    for preset in counted_presets(cfg):
        model_cfg, loss_cfg = networks.preset_configs(preset, lambda o: compose_train([*o, *extra]))
        configs[preset] = (model_cfg, loss_cfg)
        entry: dict[str, Any] = {"model": model_cfg, "loss": loss_cfg, **networks.count(model_cfg, needed)}
        if preset in networks.PAPER_FIGURES and not cfg.model_overrides:
            entry["paper"] = networks.PAPER_FIGURES[preset]
        result["models"][preset] = entry
    for preset in cfg.timed:
        model_cfg, loss_cfg = configs[preset]
        entry = result["models"][preset]
        log.info("timing %s", preset)
        try:
            entry.update(
                networks.bench_forward(
                    model_cfg, entry, device, peak, fwd.batch, fwd.size, hd, timing, bool(fwd.compile), speed
                )
            )
        except Exception as err:  # noqa: BLE001
            log.exception("forward of %s failed", preset)
            entry["forward_error"] = f"{type(err).__name__}: {err}"
        _guarded(entry, "train_steps", networks.bench_train_steps, model_cfg, loss_cfg, device, step.batch,
                 step.size, timing, list(step.precisions), speed)  # fmt: skip
        steps = entry.pop("train_steps")  # {"train_step": ..., "train_step_nchw": ...} or {"error": ...}
        entry.update(steps if "error" not in steps else {"train_step": steps, "train_step_nchw": {}})
        work = f"train_gmacs_{networks.size_key(step.size, step.size)}"
        entry[work] = networks.count_train_step(model_cfg, loss_cfg, step.size, step.batch)
        for figures in [*entry["train_step"].values(), *entry["train_step_nchw"].values()]:
            if isinstance(figures, dict) and "ms" in figures:
                figures["gflops"] = 2 * entry[work] * step.batch / (figures["ms"] / 1e3)
                figures["fraction_of_peak"] = figures["gflops"] / peak

    if cfg.loader.enabled:
        log.info("data loader")
        _guarded(result, "loader", _loader, cfg, result)
    if cfg.analysis.enabled:
        log.info("frequency analysis")
        images = networks.sample_batch(
            cfg.analysis.images, cfg.analysis.size, cfg.analysis.size, torch.device("cpu")
        )
        _guarded(result, "analysis", pipeline.bench_analysis, images, cfg.analysis.repeats, device, timing)
    if cfg.tiling.enabled:
        log.info("tiled inference")
        t = cfg.tiling
        _guarded(result, "tiling", pipeline.bench_tiling, configs[t.preset][0], t.size[0], t.size[1],
                 t.tile, t.overlap, bool(t.untiled), torch.get_num_threads())  # fmt: skip
        result["tiling"] = {"preset": t.preset, **result["tiling"]}
    if cfg.precision_run.enabled:
        log.info("fp32 vs bf16-mixed training run")
        overrides = [*cfg.precision_run.overrides, *cfg.model_overrides, f"seed={cfg.seed}"]
        _guarded(result, "precision_run", pipeline.bench_precision_run, compose_train, overrides,
                 Path(cfg.output) / "precision_run")  # fmt: skip
    gpu_cfg = OmegaConf.to_container(cfg.gpu, resolve=True) if "gpu" in cfg else {"enabled": False}
    if gpu_cfg.get("enabled") or (gpu_cfg.get("enabled") is None and device.type == "cuda"):
        log.info("GPU tables")
        _guarded(result, "gpu", gpu.bench_gpu, configs, list(gpu_cfg.get("presets") or cfg.timed), device,
                 result["peak"], gpu_cfg, timing, speed)  # fmt: skip
    result["targets"] = report.targets(result, cfg.targets_preset)
    json_path, md_path = report.write(result, Path(cfg.output))
    log.info("wrote %s and %s", json_path, md_path)
    print(md_path.read_text())
    return result


def _loader(cfg: DictConfig, result: dict[str, Any]) -> dict[str, Any]:
    """The training loader of the built-in dataset at the training step's batch and crop."""
    train_cfg = compose_train([f"augment={cfg.loader.augment}"])
    data = OmegaConf.to_container(train_cfg.data, resolve=True)
    data.update(
        batch_size=cfg.train_step.batch, crop_size=cfg.train_step.size, num_workers=cfg.loader.num_workers
    )
    data["max_side"] = cfg.loader.max_side  # photos large enough for the training crop
    augment = OmegaConf.to_container(train_cfg.augment, resolve=True)
    figures = pipeline.bench_loader(data, augment, cfg.loader.batches)
    consumed = result["models"].get(cfg.loader.preset, {}).get("train_step", {}).get("fp32", {})
    figures["preset"] = cfg.loader.preset
    figures["consumed_samples_per_s"] = consumed.get("samples_per_s")
    figures["ratio"] = (
        figures["samples_per_s"] / consumed["samples_per_s"] if consumed.get("samples_per_s") else None
    )
    return figures
