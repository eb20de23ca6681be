"""Deblur image files into a folder: what ``deblur-predict`` does, as a library function.

:func:`predict_images` resolves the input (a file, a folder or a glob pattern), checks the output folder
before any work (writable, never an input file, never a name two inputs share), loads the network with
:func:`deblur.checkpoints.load_model`, prepares it (device, speed options, TLC) with
:func:`deblur.inference.prepare_network`, and writes each result as a PNG stored like its input (8- or
16-bit, gray, alpha kept), atomically, rounded to nearest.

Safety rules (whatever the flags):

* an input file is never an output target: a result whose path is an input file is refused;
* existing results are kept unless ``overwrite=True``;
* unreadable inputs, and inputs for which the network's output is not finite
  (:class:`deblur.inference.NonFiniteOutput`; never written), stop the run (``on_error="error"``) or are
  reported and skipped (``on_error="skip"``; the run then ends with :class:`PredictionIncomplete` after the
  other images);
* temporary files of our own naming pattern left in the output folder by a killed run are removed.

Beside the results, ``<output>/predict.json`` (:data:`SETTINGS_FILE`, written atomically after the images,
also when some were skipped) records the run's settings: checkpoint, network, device, torch version,
precision / memory format, tiles, TLC, self-ensemble, and which results this run wrote or kept.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deblur.io import IMAGE_EXTENSIONS, ImageReadError, encode_like, read_image, to_float, write_image
from deblur.utils.device import runtime_record
from deblur.utils.files import atomic_write_json, check_writable, remove_stale_temporaries

log = logging.getLogger(__name__)

ON_ERROR = ("error", "skip")

#: the settings record written beside the results (not an image: never read as an input)
SETTINGS_FILE = "predict.json"


class PredictionIncomplete(RuntimeError):
    """Some inputs could not be processed (``on_error="skip"``); ``result`` holds what was done."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def collect_inputs(spec: str, recursive: bool = False) -> tuple[list[tuple[Path, str]], list[Path]]:
    """``input`` -> ([(image file, output name without extension)], folders the inputs live in).

    Args:
        spec: an image file, a folder (its images; sub-folders too with ``recursive``) or a glob pattern
            (``**`` allowed). Hidden files and folders are skipped.
        recursive: read sub-folders of a folder.

    Raises:
        FileNotFoundError: ``spec`` is none of these; ValueError: it holds no image.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return [(path, path.stem)], [path.parent]
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        files = [p for p in sorted(path.glob(pattern)) if _is_image(p, path)]
        if not files:
            raise ValueError(f"input={spec}: no images in this folder (recursive={recursive})")
        return [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files], [path]
    if glob.has_magic(spec):
        matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(spec), recursive=True))]
        listed = [p for p in matches if p.is_file() or p.is_symlink()]  # broken links fail naming them
        files = [p for p in listed if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise ValueError(f"input={spec}: the pattern matches no image files")
        base = _glob_base(spec)
        entries = []
        for p in files:
            try:
                name = p.relative_to(base).with_suffix("").as_posix()
            except ValueError:
                name = p.stem
            entries.append((p, name))
        return entries, sorted({p.parent for p in files} | {base})
    raise FileNotFoundError(f"input does not exist (not a file, folder or glob pattern): {spec}")


def _is_image(p: Path, root: Path) -> bool:
    rel = p.relative_to(root)
    hidden = any(part.startswith(".") for part in rel.parts)
    listed = p.is_file() or p.is_symlink()  # a broken link is listed: reading it fails naming it
    return not hidden and listed and p.suffix.lower() in IMAGE_EXTENSIONS


def _glob_base(spec: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    base: list[str] = []
    for part in Path(os.path.expanduser(spec)).parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def plan_outputs(
    inputs: list[tuple[Path, str]], input_dirs: list[Path], spec: str, output: str | os.PathLike,
    allow_inplace: bool = False,
) -> list[tuple[Path, Path]]:
    """``[(input file, output file)]``, refusing every layout that could write over an input.

    Raises:
        ValueError: ``output`` is a file; it is (inside) the input folder without ``allow_inplace``; two
            inputs share an output name; an output path is an input file (whatever ``allow_inplace``).
    """
    out_dir = Path(output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output must be a folder, but {out_dir} is a file")
    resolved = out_dir.resolve()
    inplace = [d for d in input_dirs if d.resolve() == resolved]
    spec_path = Path(spec).expanduser()
    if spec_path.is_dir() and resolved.is_relative_to(spec_path.resolve()):
        inplace.append(spec_path)
    if inplace and not allow_inplace:
        raise ValueError(
            f"output={output} is (inside) the input folder {inplace[0]}; results are never written among the "
            "inputs unless allow_inplace=true"
        )
    names = [name for _, name in inputs]
    if len(set(names)) != len(names):
        raise ValueError(_collision_message(inputs, out_dir))
    plan = [(path, out_dir / f"{name}.png") for path, name in inputs]
    sources = {path.resolve() for path, _ in inputs}
    clashes = [target for _, target in plan if target.resolve() in sources]
    if clashes:
        raise ValueError(
            f"output={output}: {len(clashes)} result(s) would replace input file(s), e.g. {clashes[0]}; an "
            "input is never an output target (whatever allow_inplace / overwrite say): choose another output "
            "folder"
        )
    return plan


def _collision_message(inputs: list[tuple[Path, str]], out_dir: Path) -> str:
    """Which inputs share an output file (``a.png`` and ``a.jpg`` -> ``a.png``) and what to do."""
    by_name: dict[str, list[Path]] = {}
    for path, name in inputs:
        by_name.setdefault(name, []).append(path)
    clashes = [(name, paths) for name, paths in sorted(by_name.items()) if len(paths) > 1]
    name, paths = clashes[0]
    more = f" ({len(clashes)} output names are shared like this)" if len(clashes) > 1 else ""
    return (
        f"{' and '.join(str(p) for p in paths)} would both be written to {out_dir / name}.png{more}: a "
        "result is named after its input without the extension; rename or move one of them, or deblur "
        "them into separate output folders"
    )


def settings_record(
    payload: Mapping[str, Any], ckpt_path: str | os.PathLike, settings: Any
) -> dict[str, Any]:
    """What ``predict.json`` holds: ``checkpoint`` (absolute path), ``model``, ``device``, ``device_name``,
    ``torch``, ``inference`` (precision, channels_last, fold_batchnorm, compile), ``tile``, ``tile_overlap``,
    ``tlc``, ``self_ensemble``, ``ema_weights`` / ``ema_decay`` (whether the checkpoint holds the EMA of the
    training weights, :func:`deblur.checkpoints.weights_record`), and ``written`` / ``kept`` / ``failed``
    (results relative to the output folder; failed inputs as given): a result kept from an earlier run was
    not made with these settings."""
    out_dir = Path(payload["output"])

    def relative(paths: list[str]) -> list[str]:
        return [Path(os.path.relpath(p, out_dir)).as_posix() for p in paths]

    checkpoint = str(ckpt_path)
    return {
        "checkpoint": checkpoint if "://" in checkpoint else str(Path(checkpoint).expanduser().resolve()),
        **{k: payload[k] for k in ("model", "device", "device_name", "torch", "inference", "self_ensemble")},
        **{k: payload.get(k) for k in ("ema_weights", "ema_decay")},  # the checkpoint's weights are an EMA
        "tile": settings.tile,
        "tile_overlap": settings.tile_overlap if settings.tile else None,
        "tlc": dataclasses.asdict(settings.tlc),
        "written": relative(payload["written"]),
        "kept": relative(payload["kept"]),
        "failed": list(payload["failed"]),
    }


def _example(plan: list[tuple[Path, Path]], tile: int | None) -> Any:
    """The first readable input as a (1, 3, H, W) tensor (a tile when tiling): the speed probe's input."""
    import torch

    for path, _ in plan:
        try:
            image, _ = read_image(path)
        except ImageReadError:
            continue
        rgb = to_float(image if image.ndim == 3 else image[:, :, None].repeat(3, axis=2))
        x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
        return x[..., :tile, :tile] if tile else x
    return None


def predict_images(
    ckpt_path: str | os.PathLike,
    input: str,
    output: str | os.PathLike,
    *,
    model: str | Mapping[str, Any] | None = None,
    settings: Any = None,
    recursive: bool = False,
    overwrite: bool = False,
    allow_inplace: bool = False,
    on_error: str = "error",
) -> dict[str, Any]:
    """Deblur every image of ``input`` into the folder ``output``.

    Args:
        ckpt_path: a checkpoint :func:`deblur.checkpoints.load_model` accepts.
        input: an image file, a folder or a glob pattern (:func:`collect_inputs`).
        output: the results' folder; each result is ``<output>/<name>.png``.
        model: the network for a plain state dict (a ``conf/model`` preset name or a config).
        settings: :class:`deblur.config.inference_settings.InferenceSettings` (device, tiles, speed, TLC).
        recursive: include sub-folders of a folder input (results mirror them).
        overwrite: replace results that exist (never inputs).
        allow_inplace: allow ``output`` to be (inside) the input folder.
        on_error: ``error`` stops at an unreadable image (or one whose output is not finite); ``skip``
            reports it and goes on.

    Returns:
        ``{"written", "kept", "failed", "output", "model", "device", "device_name", "torch", "inference",
        "self_ensemble"}`` (``device_name``, ``torch``: :func:`deblur.utils.device.runtime_record`;
        ``inference``: the speed options used: precision, memory format, BatchNorm folding, compile),
        and ``settings_file``: the path of ``<output>/predict.json`` (:func:`settings_record`).

    Raises:
        PredictionIncomplete: with ``on_error="skip"``, after the run, when some inputs failed.
    """
    from deblur.checkpoints import load_checkpoint
    from deblur.config.inference_settings import InferenceSettings
    from deblur.inference import NonFiniteOutput, prepare_network, restore

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    settings = settings or InferenceSettings()
    inputs, input_dirs = collect_inputs(str(input), recursive=recursive)
    plan = plan_outputs(inputs, input_dirs, str(input), output, allow_inplace)
    out_dir = Path(output).expanduser()
    check_writable(out_dir, key="output")
    removed = remove_stale_temporaries(out_dir, recursive=True)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), out_dir)

    net, model_cfg, weights = load_checkpoint(ckpt_path, model=model, device="cpu")  # ema_weights, ema_decay
    net, options, device = prepare_network(net, settings, example=_example(plan, settings.tile))
    label = model_cfg.get("name") or model_cfg.get("_target_")
    log.info("network %s on %s; %d image(s)", label, device, len(plan))
    log.info("inference options: %s", options.as_dict())
    if settings.self_ensemble:
        log.info("self_ensemble: on (each image is the mean of 8 flipped / rotated runs)")
    runtime = runtime_record(device)
    log.info("device: %s; torch %s", runtime["device_name"], runtime["torch"])
    written: list[str] = []
    kept: list[str] = []
    failed: list[str] = []
    for path, target in plan:
        if target.exists() and not overwrite:
            log.info("exists, kept (overwrite=true replaces results, never inputs): %s", target)
            kept.append(str(target))
            continue
        try:
            image, meta = read_image(path)
            result = restore(net, to_float(image), settings.tile, options, settings.tile_overlap, str(path),
                             self_ensemble=settings.self_ensemble)
        except (ImageReadError, NonFiniteOutput) as err:
            if on_error == "error":
                raise
            log.error("skipped: %s", err)
            failed.append(str(path))
            continue
        write_image(target, encode_like(result, meta))
        written.append(str(target))
        log.info("%s -> %s", path, target)
    payload = {
        "written": written,
        "kept": kept,
        "failed": failed,
        "output": str(out_dir),
        "model": model_cfg,
        "device": str(device),
        **runtime,
        "inference": options.as_dict(),
        "self_ensemble": settings.self_ensemble,
        **weights,
    }
    record = settings_record(payload, ckpt_path, settings)
    payload["settings_file"] = str(atomic_write_json(out_dir / SETTINGS_FILE, record))
    if failed:
        raise PredictionIncomplete(
            f"{len(failed)} of {len(plan)} input(s) could not be read or gave a non-finite output and were "
            f"skipped (first: {failed[0]}); {len(written)} written",
            payload,
        )
    return payload
