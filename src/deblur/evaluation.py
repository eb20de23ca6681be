"""A trained network on the benchmark test sets, scored as the papers score them (behind ``deblur-eval``).

For every dataset the network runs over its test split (the ``val`` split of :mod:`deblur.data.on_disk`;
whole images, tiled when ``settings.tile`` is set) with :func:`deblur.inference.restore`; each prediction is
rounded to 8 bits as a saved PNG would be and scored against the ground truth with
:mod:`deblur.metrics.scoring` under the dataset's protocol (:data:`DEFAULT_PROTOCOLS`: GoPro / HIDE ->
``gopro``: PSNR peak 255 + MATLAB 3-D SSIM; RealBlur -> ``realblur``: ECC-aligned, masked PSNR / SSIM).
Both images are read as the dataset loaders read them (:func:`deblur.data.on_disk.read_rgb`), except that a
gray blurry image stays gray (:func:`deblur.data.on_disk.read_uint8`): its prediction is the mean of the
network's three output channels, as ``deblur-predict`` saves it, so ``deblur-eval`` and ``deblur-predict``
+ ``deblur-score`` give the same numbers. An image whose network output is not finite stops the evaluation,
naming the file (:class:`deblur.inference.NonFiniteOutput`); nothing is scored for it.

Outputs in ``output_dir``, all written atomically:

* ``<dataset>/scores.csv``, ``<dataset>/summary.json``, ``<dataset>/summary.md`` (as ``deblur-score``);
* ``<dataset>/images/<name>.png`` with ``save_images`` (names as in the dataset, e.g.
  ``GOPR0384_11_00/000001.png``);
* ``<dataset>/blurry_input/{scores.csv, summary.json, summary.md}`` with ``blurry_baseline``: each blurry
  input scored against its sharp image in the same stream and by the same code as the predictions, labelled
  ``baseline: blurry_input`` (as ``deblur-score blurry_baseline=true`` writes them);
* ``results.md``: one row per dataset with PSNR / SSIM columns (MSFS-Net Table 3 style), with
  ``blurry_baseline`` a "<Dataset>: blurry input (baseline)" row under each;
* ``results.json``: the checkpoint, the network config, the settings and each dataset's summary.

The network runs in fp32 unless ``settings`` ask for ``precision=bf16`` (:func:`eval_settings`: the
papers' numbers are fp32; ``results.md`` names a bf16 run beside its table). The speed options
(:mod:`deblur.speed`; from ``settings``, null = chosen by the probe or the device's defaults) are recorded
under ``inference`` in ``results.json`` and each ``summary.json``: ``seconds_per_image`` (the network on one
image, host copies included) depends on them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deblur.checkpoints import load_checkpoint
from deblur.config.inference_settings import InferenceSettings
from deblur.data.on_disk import list_pairs, read_rgb, read_uint8
from deblur.inference import prepare_network, restore
from deblur.io import write_image
from deblur.metrics.lpips_score import check_lpips_config
from deblur.metrics.not_predictions import BASELINE_KEY, BASELINE_LABEL
from deblur.metrics.scoring import (
    METRIC_COLUMNS,
    add_lpips,
    check_protocol,
    lpips_scope,
    lpips_scorer,
    protocol_settings,
    protocol_text,
    score_rows,
    summarize,
    with_lpips,
    write_outputs,
)
from deblur.speed.options import InferenceOptions, describe_options
from deblur.utils.device import runtime_record
from deblur.utils.files import atomic_write_json, atomic_write_text
from deblur.utils.values import check_bool, check_int, format_number, mean

log = logging.getLogger(__name__)

#: display names of the results table
TITLES = {
    "gopro": "GoPro",
    "hide": "HIDE",
    "realblur_j": "RealBlur-J",
    "realblur_r": "RealBlur-R",
    "pairs": "pairs",
}
#: the scoring protocol of each dataset that can be evaluated (``protocols`` of ``conf/eval.yaml``)
DEFAULT_PROTOCOLS = {
    "gopro": "gopro",
    "hide": "gopro",
    "realblur_j": "realblur",
    "realblur_r": "realblur",
    "pairs": "gopro",
}
#: the sub-folder of ``<dataset>/`` holding the blurry-input baseline's scores (``blurry_baseline=true``)
BASELINE_DIR = "blurry_input"


def evaluate_dataset(
    name: str,
    data_cfg: Mapping[str, Any],
    net: nn.Module,
    protocol: str,
    out_dir: str | os.PathLike,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    options: InferenceOptions | None = None,
    save_images: bool = False,
    limit: int | None = None,
    score_workers: int = 0,
    blurry_baseline: bool = False,
    self_ensemble: bool = False,
    crop_border: int = 0,
    test_y_channel: bool = False,
    lpips: Any = None,
) -> dict[str, Any]:
    """Run ``net`` over dataset ``name``'s test split, score, write ``out_dir``/{scores.csv, summary.*}.

    Args:
        name: a dataset with pairs (``gopro``, ``hide``, ``realblur_j``, ``realblur_r``, ``pairs``).
        data_cfg: its loader config (``root`` and the dataset's options, ``on_bad_pair``).
        net: the network as :func:`deblur.inference.prepare_network` returns it for ``options``.
        protocol: ``gopro``, ``realblur`` or ``basicsr``.
        out_dir: where the dataset's files go.
        tile, tile_overlap: run in overlapping tiles (None: whole images).
        options: the speed options ``net`` was prepared with (None: fp32 NCHW).
        save_images: also write each prediction as ``out_dir/images/<name>.png``.
        limit: only the first ``limit`` pairs (None: all).
        score_workers: processes scoring while the network runs (0: in this process).
        blurry_baseline: also score each blurry input (as read for the network) against its sharp image
            (the table's "blurry input" row): one more job per pair in the same scoring stream as the
            predictions, written to ``out_dir/blurry_input/`` (:func:`write_blurry_input`).
        self_ensemble: the x8 self-ensemble of each image (:func:`deblur.inference.restore`).
        crop_border, test_y_channel: protocol ``basicsr``'s settings (recorded in the summary).
        lpips: an LPIPS scorer (:func:`deblur.metrics.scoring.lpips_scorer`): adds ``lpips`` to every row and
            the summary; None: no LPIPS.

    Returns:
        The summary: per-image means of the protocol's metrics, ``count``, ``protocol``, ``dataset``,
        ``seconds_per_image``, the tiling, ``inference`` options and ``self_ensemble`` (also written as
        ``summary.json``); with ``blurry_baseline`` also ``blurry_input`` (:func:`write_blurry_input`).
    """
    scoring = protocol_settings(protocol, crop_border, test_y_channel)
    options = options or InferenceOptions()
    out_dir = Path(out_dir)
    pairs = list_pairs(name, dict(data_cfg), "val")
    if limit is not None:
        pairs = pairs[:limit]
    image_dir = out_dir / "images"
    seconds: list[float] = []
    step = max(1, len(pairs) // 10)

    kinds: list[str] = []  # "prediction" or BASELINE_LABEL, one per job, in the order of the jobs

    def predictions() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for i, (blurry_path, sharp_path, pair_name) in enumerate(pairs, start=1):
            blurry = read_uint8(blurry_path)  # a gray image stays gray, as deblur-predict reads it
            start = time.perf_counter()
            # uint8, rounded as a saved PNG; a non-finite output fails naming the file
            pred = restore(net, blurry, tile, options, tile_overlap, str(blurry_path),
                           self_ensemble=self_ensemble)
            seconds.append(time.perf_counter() - start)
            if save_images:
                write_image((image_dir / pair_name).with_suffix(".png"), pred)
            if i % step == 0 or i == len(pairs):
                log.info("%s: %d/%d images", name, i, len(pairs))
            sharp = np.asarray(read_rgb(sharp_path))
            kinds.append("prediction")
            yield pair_name, pred, sharp
            if blurry_baseline:  # the same pair again, the (already read) blurry input as the prediction
                kinds.append(BASELINE_LABEL)
                yield pair_name, np.asarray(blurry), sharp

    lpips_values: list[float | None] = []
    jobs = predictions() if lpips is None else with_lpips(predictions(), lpips, lpips_values)
    scored = score_rows(jobs, protocol, score_workers, **scoring)
    if lpips is not None:
        add_lpips(scored, lpips_values)
    rows = [row for row, kind in zip(scored, kinds, strict=True) if kind == "prediction"]
    rows.sort(key=lambda r: r["name"])
    summary = summarize(
        rows,
        protocol,
        **scoring,
        **({"lpips_net": lpips.net} if lpips is not None else {}),
        dataset=name,
        pred_dir=str(image_dir) if save_images else "(not saved)",
        gt_dir=str(data_cfg.get("root")),
        pred_without_gt=[],
        gt_without_pred=[],
        seconds_per_image=mean(seconds),
        tile=tile,
        tile_overlap=tile_overlap if tile is not None else None,
        inference=options.as_dict(),
        self_ensemble=self_ensemble,
    )
    if blurry_baseline:
        baseline = [row for row, kind in zip(scored, kinds, strict=True) if kind == BASELINE_LABEL]
        summary["blurry_input"] = write_blurry_input(baseline, summary, out_dir / BASELINE_DIR)
    write_outputs(rows, summary, out_dir)
    return summary


def write_blurry_input(
    rows: list[dict[str, Any]], summary: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """The blurry-input baseline of one dataset: ``rows`` (the blurry frames scored as predictions) written
    to ``out_dir``/{scores.csv, summary.*} exactly as ``deblur-score blurry_baseline=true`` writes them
    (every output labelled ``baseline: blurry_input``); returns the means for the dataset's summary:
    the protocol's metrics, ``count`` and ``baseline``."""
    protocol = summary["protocol"]
    rows = sorted(rows, key=lambda r: r["name"])
    for row in rows:
        row["baseline"] = BASELINE_LABEL
    kept = ("dataset", "gt_dir", "pred_without_gt", "gt_without_pred",
            "crop_border", "test_y_channel", "lpips_net")  # fmt: skip
    fields = {k: summary[k] for k in kept if k in summary}
    fields["pred_dir"] = f"(the blurry inputs of {summary['gt_dir']})"
    baseline = summarize(rows, protocol, **fields)
    baseline["baseline"] = BASELINE_LABEL
    write_outputs(rows, baseline, out_dir)
    means = {m: baseline[m] for m in (*METRIC_COLUMNS[protocol], "lpips") if m in baseline}
    return {**means, "count": baseline["count"], "baseline": BASELINE_LABEL}


def eval_settings(settings: InferenceSettings) -> InferenceSettings:
    """``deblur-eval``'s inference settings: ``precision`` fp32 unless one is asked for (the papers' numbers
    are fp32; bf16 only with ``precision=bf16``). Memory format and BatchNorm folding stay open to the probe:
    they stay within their tolerance of the fp32 NCHW output (:data:`deblur.speed.options.TOLERANCES`)."""
    if settings.speed.get("precision") is not None:
        return settings
    return dataclasses.replace(settings, speed={**settings.speed, "precision": "fp32"})


def _precision_note(results: Mapping[str, Any]) -> list[str]:
    precision = (results.get("inference") or {}).get("precision", "fp32")
    if precision == "fp32":
        return []
    return [
        f"**Precision {precision}** (asked for with `precision={precision}`): the network ran under "
        f"{precision} autocast, not in fp32 as the papers' numbers were made; these scores can differ from "
        "fp32 ones (docs/predict.md, speed options).",
        "",
    ]


def _ema_note(results: Mapping[str, Any]) -> list[str]:
    if not results.get("ema_weights"):
        return []
    decay = results.get("ema_decay")
    return [
        f"**EMA weights** (trained with `ema.decay={decay if decay is not None else '?'}`): the checkpoint's "
        "weights are the exponential moving average of the training weights, as its validation scored them.",
        "",
    ]


def _self_ensemble_note(results: Mapping[str, Any]) -> list[str]:
    if not results.get("self_ensemble"):
        return []
    return [
        "**Self-ensemble x8** (`self_ensemble=true`): each score is of the mean output over the 8 flips / "
        'rotations of the input (the "+" rows of restoration papers), not of a single run.',
        "",
    ]


def _tlc_text(tlc: Mapping[str, Any] | None) -> str:
    if not tlc or not tlc.get("enabled"):
        return "off"
    return f"on (base_size {tlc.get('base_size')}, train_size {tlc.get('train_size')})"


def _basicsr_note(results: Mapping[str, Any]) -> list[str]:
    """The settings of each dataset scored with protocol ``basicsr`` (none: no line)."""
    scored = {protocol_text(s) for s in results["datasets"].values() if s["protocol"] == "basicsr"}
    return [
        f"`{text}`: BasicSR's calculate_psnr / calculate_ssim (per-channel SSIM over the valid region; "
        "test_y_channel: on the BT.601 luma only)." for text in sorted(scored)
    ]


def results_markdown(results: Mapping[str, Any]) -> str:
    """The cross-dataset table of an :func:`evaluate` result: one row per dataset, PSNR / SSIM columns (and
    LPIPS when it was scored)."""
    lpips = any("lpips" in s for s in results["datasets"].values())
    lines = [
        f"# Results: `{results['ckpt_path']}`",
        "",
        f"Network: `{results['model'].get('name')}`; tile: {results['tile'] or 'none (whole images)'}; "
        f"inference: {describe_options(results.get('inference'))}; TLC: {_tlc_text(results.get('tlc'))}.",
        f"Device: {results.get('device_name', results.get('device'))}; torch {results.get('torch', '?')}.",
        "",
        *_precision_note(results),
        *_ema_note(results),
        *_self_ensemble_note(results),
        "| Dataset | Images | Protocol | PSNR (dB) | SSIM | SSIM (per-channel) |" + (lpips * " LPIPS |"),
        "|---|---|---|---|---|---|" + (lpips * "---|"),
    ]
    for name, s in results["datasets"].items():
        lines.append(
            f"| {TITLES.get(name, name)} | {s['count']} | {s['protocol']} | {format_number(s['psnr'], 2)} | "
            f"{format_number(s['ssim'], 4)} | {format_number(s.get('ssim_per_channel'), 4)} |"
            + (f" {format_number(s.get('lpips'), 4)} |" if lpips else "")
        )
        lines += _blurry_input_row(name, s, lpips)
    lines += [
        "",
        "Protocols: `gopro` (GoPro, HIDE): 8-bit outputs, PSNR peak 255 over all channels, SSIM = MATLAB's",
        "3-D SSIM (the papers' numbers); per-channel SSIM = the BasicSR/skimage convention. `realblur`:",
        "prediction aligned to the ground truth (gain + ECC homography), masked PSNR / SSIM.",
        *_blurry_input_note(results),
        *_basicsr_note(results),
        *([f"LPIPS: torchmetrics, net {results.get('lpips_net')} (lower = closer)."] if lpips else []),
        *(f"LPIPS on {TITLES.get(name, name)}{lpips_scope(s)}." for name, s in results["datasets"].items()
          if lpips and lpips_scope(s)),  # fmt: skip
    ]
    return "\n".join(lines) + "\n"


def _blurry_input_row(name: str, summary: Mapping[str, Any], lpips: bool = False) -> list[str]:
    """The "blurry input (baseline)" row under a dataset's row, when its blurry inputs were scored."""
    b = summary.get("blurry_input")
    if not b:
        return []
    return [
        f"| {TITLES.get(name, name)}: blurry input (baseline) | {b['count']} | {summary['protocol']} | "
        f"{format_number(b['psnr'], 2)} | {format_number(b['ssim'], 4)} | "
        f"{format_number(b.get('ssim_per_channel'), 4)} |"
        + (f" {format_number(b.get('lpips'), 4)} |" if lpips else "")
    ]


def _blurry_input_note(results: Mapping[str, Any]) -> list[str]:
    if not any(s.get("blurry_input") for s in results["datasets"].values()):
        return []
    return [
        "",
        f"Blurry input (baseline) rows (`{BASELINE_KEY}=true`): each blurry input scored against its sharp",
        "image with the same protocol and code as the network's output, not a result of the network (the",
        f"scores in `<dataset>/{BASELINE_DIR}/`, labelled `baseline: {BASELINE_LABEL}`).",
    ]


def _first_image(name: str, roots: Mapping[str, Any], options: Mapping[str, Any], settings: Any) -> Any:
    """The first blurry test image of dataset ``name`` (a tile of it when tiling), (1, 3, H, W) in [0, 1]:
    the speed probe's input. None when the dataset cannot be listed (the evaluation then says why)."""
    import torch

    cfg = {"name": name, **(options.get(name) or {}), "root": str(roots[name]), "validate": False,
           "on_bad_pair": "skip"}
    try:
        blurry = read_rgb(list_pairs(name, cfg, "val")[0][0])
    except (ValueError, OSError, IndexError):
        return None
    x = torch.from_numpy(np.ascontiguousarray(blurry).transpose(2, 0, 1).copy()).float().div_(255.0)[None]
    return x[..., : settings.tile, : settings.tile] if settings.tile else x


def evaluate(
    ckpt_path: str | os.PathLike,
    datasets: Sequence[str],
    roots: Mapping[str, str | os.PathLike | None],
    *,
    output_dir: str | os.PathLike,
    model: str | Mapping[str, Any] | None = None,
    protocols: Mapping[str, str] | None = None,
    protocol: str | None = None,
    crop_border: int = 0,
    test_y_channel: bool = False,
    metrics: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, Mapping[str, Any] | None] | None = None,
    settings: InferenceSettings | Mapping[str, Any] | None = None,
    save_images: bool = False,
    limit: int | None = None,
    on_bad_pair: str = "error",
    score_workers: int = 0,
    blurry_baseline: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint on benchmark test sets; write the per-dataset scores and the results table.

    Args:
        ckpt_path: a ``deblur-train`` checkpoint or a plain state dict (then ``model`` names the network).
        datasets: which test sets, in the order of the results table (keys of :data:`DEFAULT_PROTOCOLS`).
        roots: the folder of each dataset (``roots.<name>`` of ``conf/eval.yaml``).
        output_dir: where the outputs go (module docstring).
        model: the network of a plain state dict: a ``conf/model`` preset name or a model config.
        protocols: per-dataset protocol overrides (default :data:`DEFAULT_PROTOCOLS`).
        protocol: one protocol for every dataset (overrides ``protocols``; None: per dataset).
        crop_border, test_y_channel: the settings of protocol ``basicsr`` (BasicSR's keys), used by the
            datasets scored with it; a non-default value with no dataset scored by ``basicsr`` is an error.
        metrics: extra metrics (the ``metrics`` node of ``conf/eval.yaml``): ``{"lpips": True}`` adds LPIPS
            (torchmetrics; ``lpips_net``, ``lpips_weights`` as for
            :func:`deblur.metrics.scoring.score_folders`), run on the network's device.
        dataset_options: per-dataset loader options (``options.<name>`` of ``conf/eval.yaml``).
        settings: device, tiling and speed options
            (:class:`~deblur.config.inference_settings.InferenceSettings`, or a mapping with its keys,
            e.g. a composed command config); None: the defaults.
        save_images: also save every prediction as ``<dataset>/images/<name>.png``.
        limit: evaluate only the first N pairs of each dataset (None: all).
        on_bad_pair: ``error`` or ``skip`` unpaired / unreadable test files.
        score_workers: processes scoring in parallel with the network (0: in this process).
        blurry_baseline: also score every blurry input against its sharp image under the dataset's
            protocol: a "blurry input (baseline)" row per dataset in ``results.md``, ``blurry_input`` in
            each summary, ``<dataset>/blurry_input/`` as ``deblur-score blurry_baseline=true`` writes it.

    Returns:
        The ``results.json`` payload: ``ckpt_path``, ``model``, ``device``, ``device_name``, ``torch``,
        ``tile``, ``tile_overlap``, ``limit``, ``inference`` (speed options), ``tlc`` (``enabled``,
        ``base_size``, ``train_size``), ``self_ensemble`` and ``datasets`` (each dataset's summary).

    Raises:
        ValueError: a dataset that cannot be evaluated or has no root, a bad setting (naming its key).
        FileNotFoundError, deblur.checkpoints.CheckpointError: the checkpoint cannot be read.
    """
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    protocols = {**DEFAULT_PROTOCOLS, **(protocols or {})}
    if protocol is not None:
        check_protocol(protocol)
        protocols = dict.fromkeys(protocols, protocol)
    dataset_options = dataset_options or {}
    for name in datasets:
        if name not in protocols:
            raise ValueError(f"datasets: {name!r} cannot be evaluated; options: {', '.join(protocols)}")
        if not roots.get(name):
            raise ValueError(f"roots.{name} is not set: give the dataset folder, e.g. roots.{name}=/data/...")
        check_protocol(protocols[name])
    chosen = {protocols[name] for name in datasets}
    # checks the keys, and refuses them when no dataset would use them
    in_use = "basicsr" if "basicsr" in chosen else min(chosen)
    basicsr = protocol_settings(in_use, crop_border, test_y_channel)
    limit = check_int("limit", limit, minimum=1, allow_none=True)
    check_int("score_workers", score_workers)
    check_bool("save_images", save_images)
    check_bool(BASELINE_KEY, blurry_baseline)
    check_lpips_config(metrics)
    if not isinstance(settings, InferenceSettings):
        settings = InferenceSettings.from_config(settings or {})
    settings = eval_settings(settings)
    output_dir = Path(output_dir)

    net, model_cfg, weights = load_checkpoint(ckpt_path, model)  # weights: ema_weights, ema_decay
    net, options, device = prepare_network(net, settings, example=_first_image(datasets[0], roots,
                                                                              dataset_options, settings))
    log.info("inference options: %s", options.as_dict())
    lpips = lpips_scorer(metrics, device)
    summaries: dict[str, Any] = {}
    for name in datasets:
        data_cfg = {
            "name": name,
            **(dataset_options.get(name) or {}),
            "root": str(roots[name]),
            "on_bad_pair": on_bad_pair,
            "val_crop_size": None,
        }
        log.info("evaluating on %s (%s)", name, roots[name])
        summaries[name] = evaluate_dataset(
            name,
            data_cfg,
            net,
            protocols[name],
            output_dir / name,
            tile=settings.tile,
            tile_overlap=settings.tile_overlap,
            options=options,
            save_images=save_images,
            limit=limit,
            score_workers=score_workers,
            blurry_baseline=blurry_baseline,
            self_ensemble=settings.self_ensemble,
            **(basicsr if protocols[name] == "basicsr" else {}),
            lpips=lpips,
        )
    results = {
        "ckpt_path": str(ckpt_path),
        "model": model_cfg,
        **weights,  # ema_weights / ema_decay: the checkpoint's weights are the EMA of training's (ema.decay)
        "device": str(device),
        **runtime_record(device),
        "tile": settings.tile,
        "tile_overlap": settings.tile_overlap if settings.tile is not None else None,
        "limit": limit,
        "inference": options.as_dict(),
        "tlc": dataclasses.asdict(settings.tlc),
        BASELINE_KEY: blurry_baseline,
        "self_ensemble": settings.self_ensemble,
        **({"lpips_net": lpips.net} if lpips is not None else {}),
        "datasets": summaries,
    }
    atomic_write_json(output_dir / "results.json", results)
    atomic_write_text(output_dir / "results.md", results_markdown(results))
    return results
