"""``deblur-eval``: a trained network on the benchmark test sets, scored as the papers score them.

    deblur-eval ckpt_path=run/checkpoints/last.ckpt datasets=[gopro,hide] \\
        roots.gopro=/data/GOPRO_Large roots.hide=/data/HIDE_dataset
    deblur-eval ckpt_path=w.pth model=msfs datasets=[realblur_j] roots.realblur_j=/data/RealBlur tile=512

For every dataset in ``datasets`` the network runs over its test split (``val`` split of
:mod:`deblur.data.datasets`; full images, tiled when ``tile`` is set), each prediction is rounded to 8 bits
as a saved PNG would be and scored against the ground truth with :func:`deblur.cli.score.score_pair`
under the dataset's protocol (``protocols``: GoPro/HIDE -> ``gopro``: PSNR peak 255 + MATLAB 3-D SSIM;
RealBlur -> ``realblur``: ECC-aligned, masked PSNR/SSIM).

Outputs in ``cfg.paths.output_dir`` (Hydra's run dir), all written atomically:

* ``<dataset>/scores.csv``, ``<dataset>/summary.json``, ``<dataset>/summary.md`` (as ``deblur-score``);
* ``<dataset>/images/<name>.png`` with ``save_images=true`` (names as in the dataset, e.g.
  ``GOPR0384_11_00/000001.png``);
* ``results.md``: one row per dataset with PSNR / SSIM columns (MSFS-Net Table 3 style);
* ``results.json``: the checkpoint, the network config, the settings and each dataset's summary.

Speed options (``channels_last``, ``precision``, ``fold_batchnorm``, ``compile``; null = the device's
:func:`deblur.speedups.default_options`) as for ``deblur-predict``; the options used are recorded under
``inference`` in ``results.json`` and each ``summary.json`` (``seconds_per_image`` depends on them).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import load_model
from deblur.cli.score import METRIC_COLUMNS, read_image, score_pair, write_outputs
from deblur.config import register_configs
from deblur.config.inference import InferenceSettings
from deblur.data.datasets import list_pairs, read_rgb
from deblur.inference import pad_and_run, tiled_inference
from deblur.io import write_image
from deblur.metrics.protocol import to_uint8
from deblur.paths import CONF_DIR
from deblur.speedups import (
    InferenceOptions,
    describe_options,
    inference_context,
    prepare_for_inference,
    resolve_options,
    to_input,
)
from deblur.utils.device import select_device
from deblur.utils.files import atomic_write_json, atomic_write_text

register_configs()
log = logging.getLogger(__name__)

#: display names of the results table
TITLES = {
    "gopro": "GoPro",
    "hide": "HIDE",
    "realblur_j": "RealBlur-J",
    "realblur_r": "RealBlur-R",
    "pairs": "pairs",
}


def _score(name: str, pred: np.ndarray, gt_path: str, protocol: str) -> dict[str, Any]:
    """Score one prediction (uint8 RGB) against its ground-truth file (runs in a worker or in-process)."""
    gt = read_image(gt_path)
    if gt.ndim == 2:
        gt = np.repeat(gt[:, :, None], 3, axis=2)
    if gt.shape != pred.shape:
        raise ValueError(
            f"size mismatch: prediction for {name} is {pred.shape}, ground truth {gt_path} {gt.shape}"
        )
    return {"name": name, **score_pair(pred, gt, protocol)}


def _worker_init() -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def evaluate_dataset(
    name: str,
    data_cfg: dict[str, Any],
    net: torch.nn.Module,
    device: torch.device,
    protocol: str,
    out_dir: Path,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    save_images: bool = False,
    limit: int | None = None,
    score_workers: int = 0,
    options: InferenceOptions | None = None,
) -> dict[str, Any]:
    """Run ``net`` over dataset ``name``'s test split, score, write ``out_dir``/{scores.csv, summary.*}.

    ``net`` as :func:`deblur.speedups.prepare_for_inference` returns it for ``options`` (default: fp32
    NCHW). Returns the summary (per-image means of the protocol's metrics, ``count``, ``protocol``, ...).
    """
    options = options or InferenceOptions()
    pairs = list_pairs(name, data_cfg, "val")
    if limit is not None:
        pairs = pairs[:limit]
    image_dir = out_dir / "images"
    pool = None
    if score_workers > 0:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(score_workers, mp_context=ctx, initializer=_worker_init)
    futures: list[Future] = []
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    step = max(1, len(pairs) // 10)
    try:
        for i, (blurry_path, sharp_path, pair_name) in enumerate(pairs, start=1):
            blurry = read_rgb(blurry_path)
            x = torch.from_numpy(np.ascontiguousarray(blurry.transpose(2, 0, 1))).float().div_(255.0)
            x = to_input(x[None].to(device), options)
            start = time.perf_counter()
            with inference_context(options, device):
                y = pad_and_run(net, x) if tile is None else tiled_inference(net, x, tile, tile_overlap)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
            pred = to_uint8(y[0].float().cpu().numpy().transpose(1, 2, 0))  # as the papers' saved PNGs
            if save_images:
                write_image((image_dir / pair_name).with_suffix(".png"), pred)
            if pool is None:
                rows.append(_score(pair_name, pred, str(sharp_path), protocol))
            else:
                futures.append(pool.submit(_score, pair_name, pred, str(sharp_path), protocol))
            if i % step == 0 or i == len(pairs):
                log.info("%s: %d/%d images", name, i, len(pairs))
        rows += [f.result() for f in futures]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    rows.sort(key=lambda r: r["name"])
    summary: dict[str, Any] = {col: _mean([r[col] for r in rows]) for col in METRIC_COLUMNS[protocol]}
    summary.update(
        count=len(rows),
        protocol=protocol,
        dataset=name,
        pred_dir=str(image_dir) if save_images else "(not saved)",
        gt_dir=str(data_cfg.get("root")),
        pred_without_gt=[],
        gt_without_pred=[],
        seconds_per_image=_mean(seconds),
        tile=tile,
        tile_overlap=tile_overlap if tile is not None else None,
        inference=options.as_dict(),
    )
    if protocol == "realblur":
        summary["ecc_fallbacks"] = [r["name"] for r in rows if not r.get("ecc_converged", True)]
    write_outputs(rows, summary, out_dir)
    return summary


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def results_markdown(results: dict[str, Any]) -> str:
    """The cross-dataset table: one row per dataset, PSNR / SSIM columns."""
    lines = [
        f"# Results: `{results['ckpt_path']}`",
        "",
        f"Network: `{results['model'].get('name')}`; tile: {results['tile'] or 'none (whole images)'}; "
        f"inference: {describe_options(results.get('inference'))}.",
        "",
        "| Dataset | Images | Protocol | PSNR (dB) | SSIM | SSIM (per-channel) |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in results["datasets"].items():
        lines.append(
            f"| {TITLES.get(name, name)} | {s['count']} | {s['protocol']} | {_fmt(s['psnr'], 2)} | "
            f"{_fmt(s['ssim'], 4)} | {_fmt(s.get('ssim_per_channel'), 4)} |"
        )
    lines += [
        "",
        "Protocols: `gopro` (GoPro, HIDE): 8-bit outputs, PSNR peak 255 over all channels, SSIM = MATLAB's",
        "3-D SSIM (the papers' numbers); per-channel SSIM = the BasicSR/skimage convention. `realblur`:",
        "prediction aligned to the ground truth (gain + ECC homography), masked PSNR / SSIM.",
    ]
    return "\n".join(lines) + "\n"


def _as_int(key: str, value: Any, minimum: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.datasets``; returns (and writes) the ``results.json`` payload."""
    ckpt_path = str(cfg.ckpt_path)
    datasets = list(cfg.datasets)
    protocols = OmegaConf.to_container(cfg.protocols, resolve=True)
    roots = OmegaConf.to_container(cfg.roots, resolve=True)
    options = OmegaConf.to_container(cfg.options, resolve=True) if cfg.get("options") else {}
    for name in datasets:
        if name not in protocols:
            raise ValueError(f"datasets: {name!r} cannot be evaluated; options: {', '.join(protocols)}")
        if not roots.get(name):
            raise ValueError(f"roots.{name} is not set: give the dataset folder, e.g. roots.{name}=/data/...")
    settings = InferenceSettings.from_config(cfg)
    tile, overlap = settings.tile, settings.tile_overlap
    limit = _as_int("limit", cfg.get("limit"), minimum=1, allow_none=True)
    workers = _as_int("score_workers", cfg.get("score_workers", 0))
    output_dir = Path(cfg.paths.output_dir)
    device = select_device(cfg.get("device", "auto"))
    inference = resolve_options(device, **settings.speed)

    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") is not None else None
    net, model_cfg = load_model(ckpt_path, model)
    net = prepare_for_inference(net, inference, device)
    log.info("inference options: %s", inference.as_dict())
    summaries: dict[str, Any] = {}
    for name in datasets:
        data_cfg = {
            "name": name,
            **(options.get(name) or {}),
            "root": roots[name],
            "on_bad_pair": cfg.get("on_bad_pair", "error"),
            "val_crop_size": None,
        }
        log.info("evaluating on %s (%s)", name, roots[name])
        summaries[name] = evaluate_dataset(
            name,
            data_cfg,
            net,
            device,
            protocols[name],
            output_dir / name,
            tile=tile,
            tile_overlap=overlap,
            save_images=bool(cfg.get("save_images", False)),
            limit=limit,
            score_workers=workers,
            options=inference,
        )
    results = {
        "ckpt_path": ckpt_path,
        "model": model_cfg,
        "device": str(device),
        "tile": tile,
        "tile_overlap": overlap if tile is not None else None,
        "limit": limit,
        "inference": inference.as_dict(),
        "datasets": summaries,
    }
    atomic_write_json(output_dir / "results.json", results)
    table = results_markdown(results)
    atomic_write_text(output_dir / "results.md", table)
    print(table, end="")
    print(f"wrote results.md, results.json and per-dataset scores to {output_dir}")
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Console entry point ``deblur-eval``."""
    run(cfg)


if __name__ == "__main__":
    main()
