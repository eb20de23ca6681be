"""``deblur-predict``: deblur your own images with a trained network.

    deblur-predict ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt input=photos/ output=deblurred/
    deblur-predict ckpt_path=weights.pth model=msfs input='shots/*.jpg' output=out tile=512 tile_overlap=32

* ``ckpt_path``: a Lightning ``.ckpt`` (the network is rebuilt from its hyperparameters) or a plain state
  dict (then ``model=<option>`` names the network). Always loaded with ``weights_only=True``: a checkpoint
  that would run code when unpickled is refused (see :func:`deblur.inference.load_network`).
* ``input``: an image file, a folder (``recursive=true`` for sub-folders) or a glob pattern.
* ``output``: a folder; each result is ``<output>/<relative path without extension>.png`` (PNG, written
  atomically). It may not be a folder holding the inputs unless ``allow_inplace=true``; existing results
  are kept unless ``overwrite=true``.
* Any image size (padded to the network's multiple, cropped back); ``tile``/``tile_overlap`` run large
  images in overlapping tiles (``tile=null``: whole images). One image at a time; ``device=auto`` uses CUDA
  when available.
* Speed options (:mod:`deblur.speedups`): ``channels_last``, ``precision`` (fp32 | bf16), ``fold_batchnorm``,
  ``compile``; ``null`` (the default) takes :func:`deblur.speedups.default_options` for the device, an
  explicit value overrides it. The options used are logged and returned under ``inference``.

Image modes: grayscale inputs are replicated to RGB for the network and saved as grayscale (the mean of the
three output channels); an alpha channel is set aside and re-attached unchanged; 16-bit inputs are
processed in float (``v / 65535``) and saved as 16-bit PNGs. See ``docs/predict.md``.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import load_model
from deblur.config import register_configs
from deblur.inference import pad_and_run, tiled_inference
from deblur.paths import CONF_DIR
from deblur.speedups import (
    OPTION_KEYS,
    InferenceOptions,
    inference_context,
    prepare_for_inference,
    resolve_options,
    to_input,
)
from deblur.utils.device import select_device
from deblur.utils.files import atomic_write

register_configs()
log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


# ---------------------------------------------------------------- image I/O
@dataclass
class ImageMeta:
    """How an input was stored, to save the result the same way."""

    gray: bool
    depth: int  # 8 or 16
    alpha: np.ndarray | None  # (H, W), the input's dtype


def read_input(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Read an image as ``(H, W, 3)`` float32 RGB in [0, 1] plus what is needed to save it alike."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image file {path}")
    if img.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif img.dtype == np.uint16:
        depth, scale = 16, 65535.0
    else:
        raise ValueError(f"{path}: unsupported sample type {img.dtype} (8- or 16-bit images only)")
    alpha = None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        gray = True
        rgb = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        gray = False
        alpha = img[:, :, 3].copy()
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        gray = False
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise ValueError(f"{path}: unsupported number of channels {img.shape[2]}")
    return rgb.astype(np.float32) / np.float32(scale), ImageMeta(gray=gray, depth=depth, alpha=alpha)


def encode_output(rgb: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """``(H, W, 3)`` float RGB -> the array ``cv2.imwrite`` saves: gray (channel mean) or BGR[A], 8/16-bit."""
    rgb = np.clip(rgb, 0.0, 1.0)
    dtype, peak = (np.uint16, 65535.0) if meta.depth == 16 else (np.uint8, 255.0)
    if meta.gray:
        return np.rint(rgb.mean(axis=2) * peak).astype(dtype)
    out = cv2.cvtColor(np.rint(rgb * peak).astype(dtype), cv2.COLOR_RGB2BGR)
    if meta.alpha is not None:
        out = np.dstack([out, meta.alpha.astype(dtype)])
    return out


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` (as :func:`encode_output` gives) to ``path`` atomically as PNG."""

    def _write(tmp: str) -> None:
        if not cv2.imwrite(tmp, array):
            raise OSError(f"OpenCV could not write {path}")

    return atomic_write(path, _write, suffix=".png")


# ---------------------------------------------------------------- inputs
def collect_inputs(spec: str, recursive: bool = False) -> tuple[list[tuple[Path, str]], list[Path]]:
    """``input`` -> ([(file, output name without extension)], folders the inputs live in).

    A file, a folder (its images; sub-folders with ``recursive``) or a glob pattern (``**`` allowed).
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
        files = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
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
    return not hidden and p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _glob_base(spec: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(os.path.expanduser(spec)).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


# ---------------------------------------------------------------- run
def deblur(
    net: torch.nn.Module,
    rgb: np.ndarray,
    device: torch.device,
    tile: int | None,
    overlap: int,
    options: InferenceOptions | None = None,
) -> np.ndarray:
    """One ``(H, W, 3)`` float image in [0, 1] through ``net`` -> ``(H, W, 3)`` float32 (not clamped).

    ``net`` as :func:`deblur.speedups.prepare_for_inference` returns it for ``options`` (default: fp32 NCHW).
    """
    options = options or InferenceOptions()
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    x = to_input(x, options)
    with inference_context(options, device):
        y = pad_and_run(net, x) if tile is None else tiled_inference(net, x, tile, overlap)
    return y[0].float().cpu().numpy().transpose(1, 2, 0)


def _model_cfg(cfg: DictConfig) -> dict[str, Any] | None:
    node = cfg.get("model")
    return None if node is None else OmegaConf.to_container(node, resolve=True)


def _tile(cfg: DictConfig) -> tuple[int | None, int]:
    tile = cfg.get("tile")
    overlap = cfg.get("tile_overlap", 32)
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive number of pixels or null, got {tile!r}")
    if tile is not None and not (isinstance(overlap, int) and 0 <= overlap < tile):
        raise ValueError(f"tile_overlap must be an integer in [0, tile={tile}), got {overlap!r}")
    return tile, int(overlap)


def _inference_options(cfg: DictConfig, device: torch.device) -> InferenceOptions:
    """The speed options of ``cfg`` (keys ``channels_last``, ``precision``, ``fold_batchnorm``, ``compile``):
    null takes :func:`deblur.speedups.default_options` for ``device``; bad values raise naming the key."""
    return resolve_options(device, **{key: cfg.get(key) for key in OPTION_KEYS})


def run(cfg: DictConfig) -> dict[str, Any]:
    """Deblur ``cfg.input`` into ``cfg.output``; returns ``{"written": [...], "skipped": [...], ...}``."""
    ckpt_path, spec, output = str(cfg.ckpt_path), str(cfg.input), str(cfg.output)  # '???' fails here
    tile, overlap = _tile(cfg)
    device = select_device(cfg.get("device", "auto"))
    options = _inference_options(cfg, device)
    inputs, input_dirs = collect_inputs(spec, recursive=bool(cfg.get("recursive", False)))
    out_dir = Path(output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output must be a folder, but {out_dir} is a file")
    resolved = out_dir.resolve()
    inplace = [d for d in input_dirs if d.resolve() == resolved]
    if Path(spec).expanduser().is_dir() and resolved.is_relative_to(Path(spec).expanduser().resolve()):
        inplace.append(Path(spec))
    if inplace and not cfg.get("allow_inplace", False):
        raise ValueError(
            f"output={output} is (inside) the input folder {inplace[0]}; results are never written among the "
            "inputs unless allow_inplace=true"
        )
    names = [name for _, name in inputs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"several inputs map to the same output name(s) {dup[:10]}; give a folder instead")

    net, model_cfg = load_model(ckpt_path, _model_cfg(cfg))
    net = prepare_for_inference(net, options, device)
    log.info("network %s on %s; %d image(s)", model_cfg.get("name"), device, len(inputs))
    log.info("inference options: %s", options.as_dict())
    written, skipped = [], []
    for path, name in inputs:
        target = out_dir / f"{name}.png"
        if target.exists() and not cfg.get("overwrite", False):
            log.info("exists, kept (overwrite=true replaces it): %s", target)
            skipped.append(str(target))
            continue
        rgb, meta = read_input(path)
        result = deblur(net, rgb, device, tile, overlap, options)
        write_png(target, encode_output(result, meta))
        written.append(str(target))
        log.info("%s -> %s", path, target)
    kept = f"; kept {len(skipped)} existing" if skipped else ""
    print(f"deblurred {len(written)} image(s) into {out_dir}{kept}")
    return {
        "written": written,
        "skipped": skipped,
        "output": str(out_dir),
        "model": model_cfg,
        "device": str(device),
        "inference": options.as_dict(),
    }


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    """Console entry point ``deblur-predict``."""
    run(cfg)


if __name__ == "__main__":
    main()
