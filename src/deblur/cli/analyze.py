"""``deblur-analyze``: entropy distributions of the low/high-frequency parts of a dataset at scales 1, 1/2
and 1/4, and their Jensen-Shannon divergences (MSFS-Net Section 3.1, Fig. 1, 2; Section 4.2.1, Fig. 7).

    deblur-analyze                                          # built-in dataset, val split
    deblur-analyze ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # + deblurred images, Fig. 7
    deblur-analyze data=gopro data.root=data/GOPRO_Large split=train device=cuda analysis.batch_size=16
    deblur-analyze analysis.sigma=3 analysis.bins=128 analysis.max_images=200

Reads the ``split`` (``val`` by default, or ``train``) of any ``data=`` option, computes for every image
(sharp, blurry and, given ``ckpt_path``, the network's output on the blurry one) the entropy of each
part at each scale (see :mod:`deblur.analysis.frequency` for every choice and its setting), and
writes into ``cfg.paths.output_dir`` (Hydra's run dir), atomically:

* ``analysis.json``: ``js_divergence.<comparison>.<band>.<scale>`` with comparison ``sharp_vs_blurry``
  (and ``sharp_vs_deblurred``), band ``high`` / ``low``, scale ``1`` / ``1/2`` / ``1/4``;
  ``entropy.<kind>.<band>.<scale>`` (one value per image, in the order of ``names``),
  ``entropy_mean`` likewise, the settings, the sample count and the throughput;
* ``fig1_patch_bands.png``, ``fig2_sharp_vs_blurry.png`` and, given a checkpoint,
  ``fig7_sharp_vs_deblurred.png``.

The training split is read without augmentation, once per pair (``repeats`` 1), whole images unless
``analysis.crop_size`` is set. The checkpoint is read with ``torch.load(weights_only=True)``; only the
network is rebuilt (from the ``model`` hyperparameters of a ``deblur-train`` checkpoint), so no loss
weights are needed. Everything runs on ``device`` (``auto``: the GPU when there is one).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from deblur.analysis.figures import plot_entropy_distributions, plot_patch_bands, save_figure
from deblur.analysis.frequency import (
    BANDS,
    EntropyCollector,
    FrequencyConfig,
    compare_entropies,
    js_table,
    to_lists,
)
from deblur.analysis.settings import AnalyzeSettings
from deblur.checkpoints import load_model
from deblur.config import register_configs
from deblur.paths import CONF_DIR
from deblur.utils.device import select_device
from deblur.utils.files import atomic_write_json

log = logging.getLogger(__name__)

SPLITS = ("val", "train")
#: analysis.json comparisons: name -> (first kind, second kind)
COMPARISONS: dict[str, tuple[str, str]] = {
    "sharp_vs_blurry": ("sharp", "blurry"),
    "sharp_vs_deblurred": ("sharp", "deblurred"),
}
FIGURES = {
    "fig1": "fig1_patch_bands.png",
    "sharp_vs_blurry": "fig2_sharp_vs_blurry.png",
    "sharp_vs_deblurred": "fig7_sharp_vs_deblurred.png",
}


def register_analyze_configs() -> None:
    """Register the suite's schemas, ``analysis/analysis_schema`` included (idempotent)."""
    register_configs()


register_analyze_configs()


# ------------------------------------------------------------------------------------------ inputs
def build_split(data: dict[str, Any], split: str, crop_size: int | None = None) -> Dataset:
    """The ``split`` of the dataset described by the ``data`` config node, without augmentation.

    ``val``: exactly the validation set of :class:`~deblur.data.datamodule.DeblurDataModule`. ``train``:
    the training pairs once each (``repeats`` 1), cropped to ``crop_size`` (None: whole images).
    """
    from deblur.data.datamodule import DATASETS, DeblurDataModule

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "val":
        module = DeblurDataModule(data=data, augment={"name": "none"})
        module.setup("validate")
        return module.val_set
    name = data.get("name")
    if name not in DATASETS:
        raise ValueError(f"data.name={name!r} is not a known dataset; options: {sorted(DATASETS)}")
    return DATASETS[name]({**data, "crop_size": crop_size, "repeats": 1}, "train", None)


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def _same_size_groups(samples: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for sample in samples:
        groups.setdefault(tuple(sample["sharp"].shape), []).append(sample)
    return list(groups.values())


# ------------------------------------------------------------------------------------------ analysis
@dataclass
class AnalysisResult:
    collector: EntropyCollector
    names: list[str]
    seconds: float


@torch.inference_mode()
def collect_entropies(
    dataset: Dataset,
    config: FrequencyConfig,
    net: nn.Module | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Entropies of every sample's sharp and blurry image (and ``net(blurry)`` as ``deblurred``).

    Images of one batch are grouped by size and each group is processed in one vectorised step on
    ``device``. ``progress(done, total)`` is called after each batch.
    """
    device = torch.device(device)
    collector = EntropyCollector(config)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_as_list, pin_memory=device.type == "cuda")
    names: list[str] = []
    done, total = 0, len(dataset)
    start = time.perf_counter()
    for samples in loader:
        for group in _same_size_groups(samples):
            sharp = torch.stack([s["sharp"] for s in group]).to(device, non_blocking=True)
            blurry = torch.stack([s["blurry"] for s in group]).to(device, non_blocking=True)
            collector.add("sharp", sharp)
            collector.add("blurry", blurry)
            if net is not None:
                collector.add("deblurred", net(blurry).float().clamp_(0.0, 1.0))
            names.extend(str(s.get("name", len(names))) for s in group)
        done += len(samples)
        if progress is not None:
            progress(done, total)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return AnalysisResult(collector=collector, names=names, seconds=time.perf_counter() - start)


def _centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    side = min(size, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side]


@torch.inference_mode()
def patch_triplet(
    dataset: Dataset, index: int, size: int, net: nn.Module | None, device: torch.device
) -> dict[str, torch.Tensor]:
    """``{"sharp", "blurry"[, "deblurred"]: (3, s, s)}``: the centre crop of sample ``index`` (Fig. 1);
    the network sees the whole blurry image, then its output is cropped."""
    sample = dataset[index % len(dataset)]
    patches = {"sharp": sample["sharp"], "blurry": sample["blurry"]}
    if net is not None:
        pred = net(sample["blurry"].unsqueeze(0).to(device)).float().clamp(0.0, 1.0)[0].cpu()
        patches["deblurred"] = pred
    return {kind: _centre_crop(image, size) for kind, image in patches.items()}


def _mean_table(entropies: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    return {band: {s: float(v.double().mean()) for s, v in per.items()} for band, per in entropies.items()}


def run_analysis(
    data: dict[str, Any],
    settings: AnalyzeSettings,
    output_dir: str | os.PathLike,
    split: str = "val",
    ckpt_path: str | None = None,
    device: str | torch.device = "auto",
) -> dict[str, Any]:
    """The command without Hydra: analyse, write ``analysis.json`` and the figures, return the payload."""
    output_dir = Path(output_dir)
    config = FrequencyConfig.from_mapping(vars(settings))
    device = select_device(device)
    dataset = build_split(data, split, settings.crop_size)
    if settings.max_images is not None:
        dataset = Subset(dataset, range(min(int(settings.max_images), len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of data.name={data.get('name')!r} is empty")
    net = load_model(ckpt_path, device=device)[0] if ckpt_path else None

    def progress(done: int, total: int) -> None:
        log.info("analysed %d / %d pairs", done, total)

    workers = settings.num_workers if settings.num_workers is not None else int(data.get("num_workers") or 0)
    result = collect_entropies(dataset, config, net, device, settings.batch_size, workers, progress)
    collector = result.collector
    kinds = collector.kinds
    entropies = {kind: collector.values(kind) for kind in kinds}
    comparisons = {
        name: compare_entropies(entropies[a], entropies[b], config)
        for name, (a, b) in COMPARISONS.items()
        if a in entropies and b in entropies
    }
    n_pairs = len(result.names)
    images = n_pairs * len(kinds)
    seconds = max(result.seconds, 1e-9)
    payload: dict[str, Any] = {
        "dataset": data.get("name"),
        "split": split,
        "num_pairs": n_pairs,
        "ckpt_path": str(ckpt_path) if ckpt_path else None,
        "device": str(device),
        "settings": {**config.to_dict(), "batch_size": settings.batch_size},
        "scales": list(config.scales),
        "bands": list(BANDS),
        "kinds": kinds,
        "js_divergence": {name: js_table(comp) for name, comp in comparisons.items()},
        "entropy_mean": {kind: _mean_table(entropies[kind]) for kind in kinds},
        "timing": {
            "seconds": result.seconds, "pairs_per_s": n_pairs / seconds, "images_per_s": images / seconds
        },
        "names": result.names,
        "entropy": {kind: to_lists(entropies[kind]) for kind in kinds},
        "figures": [],
    }

    patches = patch_triplet(dataset, settings.patch_index, settings.patch_size, net, device)
    title = f"{data.get('name')} {split}: sample {result.names[settings.patch_index % n_pairs]}"
    save_figure(plot_patch_bands(patches, config, title=title), output_dir / FIGURES["fig1"])
    payload["figures"].append(FIGURES["fig1"])
    for name, comp in comparisons.items():
        kinds_pair = COMPARISONS[name]
        title = f"{data.get('name')} {split} ({n_pairs} pairs): {kinds_pair[0]} vs {kinds_pair[1]}"
        save_figure(plot_entropy_distributions(comp, kinds_pair, title=title), output_dir / FIGURES[name])
        payload["figures"].append(FIGURES[name])
    atomic_write_json(output_dir / "analysis.json", payload)
    return payload


def format_summary(payload: dict[str, Any]) -> str:
    """A plain-text table of the JS divergences and mean entropies."""
    scales = payload["scales"]
    lines = [
        f"{payload['dataset']} {payload['split']}: {payload['num_pairs']} pairs on {payload['device']}, "
        f"{payload['timing']['images_per_s']:.1f} images/s",
        f"  {'JS divergence (bits)':<32}" + "".join(f"{'scale ' + s:>12}" for s in scales),
    ]
    for name, table in payload["js_divergence"].items():
        for band in BANDS:
            lines.append(f"  {name + ' ' + band:<32}" + "".join(f"{table[band][s]:>12.4f}" for s in scales))
    lines.append(f"  {'mean entropy (bits)':<32}")
    for kind, table in payload["entropy_mean"].items():
        for band in BANDS:
            lines.append(f"  {kind + ' ' + band:<32}" + "".join(f"{table[band][s]:>12.3f}" for s in scales))
    return "\n".join(lines)


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """Run ``deblur-analyze`` for a composed ``conf/analyze.yaml``; returns the analysis.json payload."""
    settings_dict = OmegaConf.to_container(cfg.analysis, resolve=True)
    settings = AnalyzeSettings(**settings_dict)  # validates (FrequencyConfig.__post_init__)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    payload = run_analysis(
        data=data,
        settings=settings,
        output_dir=cfg.paths.output_dir,
        split=cfg.split,
        ckpt_path=cfg.get("ckpt_path"),
        device=cfg.get("device", "auto"),
    )
    print(format_summary(payload))
    print(f"  outputs: {cfg.paths.output_dir}")
    return payload


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the full-scale high-band JS (sharp vs blurry)."""
    payload = analyze(cfg)
    value = payload["js_divergence"]["sharp_vs_blurry"]["high"][payload["scales"][0]]
    return value if math.isfinite(value) else float("nan")


if __name__ == "__main__":
    main()
