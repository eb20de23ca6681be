"""The frequency analysis of a dataset (behind ``deblur-analyze``): entropy distributions of the low- and
high-frequency parts at scales 1, 1/2 and 1/4 and their Jensen-Shannon divergences (MSFS-Net Section 3.1,
Fig. 1, 2; Section 4.2.1, Fig. 7).

:func:`analyze` reads the ``split`` (``val``, or ``train``) of a dataset, computes for every image (sharp,
blurry and, given a checkpoint, the network's output on the blurry one) the entropy of each part at each
scale (see :mod:`deblur.analysis.frequency` for every choice and its setting), and returns the result as
data. Given ``output_dir`` it also writes there, atomically:

* ``analysis.json``: the returned payload: ``js_divergence.<comparison>.<band>.<scale>`` with comparison
  ``sharp_vs_blurry`` (and ``sharp_vs_deblurred``), band ``high`` / ``low``, scale ``1`` / ``1/2`` /
  ``1/4``; ``entropy.<kind>.<band>.<scale>`` (one value per image, in the order of ``names``),
  ``entropy_mean`` likewise, the settings, the sample count and the throughput, ``distinct_images``
  (source photos analysed), ``min_distinct_images`` and ``warnings`` (a line when there are fewer
  distinct images than that minimum, see :mod:`deblur.analysis.sample_size`; also on the figures);
* ``fig1_patch_bands.png``, ``fig2_sharp_vs_blurry.png`` and, given a checkpoint,
  ``fig7_sharp_vs_deblurred.png`` (drawn by :mod:`deblur.analysis.figures`).

The training split is read without augmentation, once per pair (``repeats`` 1), whole images unless
``crop_size`` is set. The checkpoint is read by :func:`deblur.checkpoints.load_model` (weights only) and the
network run as :func:`deblur.inference.prepare_network` prepares it for the inference settings (device,
speed options, tiling), so no loss weights are needed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from deblur.analysis.frequency import (
    BANDS,
    EntropyCollector,
    EntropyDistributions,
    FrequencyConfig,
    compare_entropies,
    js_table,
    to_lists,
)
from deblur.analysis.sample_size import MIN_DISTINCT_IMAGES, sample_size_warning
from deblur.analysis.settings import AnalyzeSettings
from deblur.config.inference_settings import InferenceSettings
from deblur.data.base import dataset_sources, distinct_first
from deblur.inference import restore
from deblur.paths import CONF_DIR
from deblur.speed.options import InferenceOptions, describe_options
from deblur.utils.device import runtime_record

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


# ------------------------------------------------------------------------------------------ inputs
def data_config(data: str | Mapping[str, Any]) -> dict[str, Any]:
    """A complete dataset config: the values of ``conf/data/<name>.yaml`` (typed by its schema), with the
    keys of ``data`` on top.

    Args:
        data: a ``conf/data`` option name (``"synthetic"``, ``"gopro"``, ...) or a mapping holding ``name``
            and any keys to set (e.g. ``{"name": "gopro", "root": "/data/GOPRO_Large"}``); a complete data
            config (as a command composes it) comes back unchanged.

    Raises:
        ValueError: an unknown dataset, a key the dataset does not take, or a missing ``root``.
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from deblur.config.schema import register_configs

    overlay = {"name": data} if isinstance(data, str) else dict(data)
    name = overlay.get("name")
    path = CONF_DIR / "data" / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
        raise ValueError(f"data: unknown dataset name {name!r}; options: {', '.join(known)}")
    register_configs()
    node = OmegaConf.load(path)
    store = ConfigStore.instance()
    schemas = [store.load(f"data/{d}.yaml").node for d in node.pop("defaults", []) if d != "_self_"]
    try:
        merged = OmegaConf.merge(*schemas, node, overlay)
    except OmegaConfBaseException as err:
        raise ValueError(f"data ({name}): {err}") from err
    if OmegaConf.is_missing(merged, "root"):
        raise ValueError(f"data.root is not set: give the {name} dataset folder, e.g. data.root=/data/...")
    return OmegaConf.to_container(merged, resolve=True)


def build_split(data: Mapping[str, Any], split: str, crop_size: int | None = None) -> Dataset:
    """The ``split`` of the dataset described by the ``data`` config, without augmentation.

    ``val``: exactly the validation set of :class:`~deblur.data.datamodule.DeblurDataModule`. ``train``:
    the training pairs once each (``repeats`` 1), cropped to ``crop_size`` (None: whole images).
    """
    from deblur.data.datamodule import DATASETS, DeblurDataModule

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = dict(data)
    if split == "val":
        module = DeblurDataModule(data=data, augment={"name": "none"})
        module.setup("validate")
        return module.val_set
    name = data.get("name")
    if name not in DATASETS:
        raise ValueError(f"data.name={name!r} is not a known dataset; options: {sorted(DATASETS)}")
    return DATASETS[name]({**data, "crop_size": crop_size, "repeats": 1}, "train", None)


def limit_images(dataset: Dataset, max_images: int | None) -> tuple[Dataset, int]:
    """``(dataset, distinct source photos in it)``; with ``max_images``, the first ``max_images`` samples
    in :func:`~deblur.data.base.distinct_first` order (one pair of every photo before a second pair of
    any), so that a limit takes distinct photos rather than several blurs or crops of one."""
    sources = dataset_sources(dataset)
    if max_images is None:
        return dataset, len(set(sources))
    order = distinct_first(sources)[: int(max_images)]
    return Subset(dataset, order), len({sources[i] for i in order})


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
    """What :func:`collect_entropies` gathered: the entropies, the sample names and the seconds taken."""

    collector: EntropyCollector
    names: list[str]
    seconds: float


@dataclass(frozen=True)
class NetworkRun:
    """How the network of an analysis runs: as :func:`deblur.inference.restore` takes it."""

    net: nn.Module
    options: InferenceOptions | None = None
    tile: int | None = None
    tile_overlap: int = 32
    self_ensemble: bool = False

    def __call__(self, images: torch.Tensor, name: str | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the network's outputs, float32, clamped to [0, 1]. A non-finite
        output fails naming ``name`` (:class:`deblur.inference.NonFiniteOutput`)."""
        return restore(self.net, images.float(), self.tile, self.options, self.tile_overlap, name,
                       self_ensemble=self.self_ensemble)


@torch.inference_mode()
def collect_entropies(
    dataset: Dataset,
    config: FrequencyConfig,
    net: nn.Module | NetworkRun | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Entropies of every sample's sharp and blurry image (and the network's output as ``deblurred``).

    Images of one batch are grouped by size and each group is processed in one vectorised step on
    ``device``. ``net``: a network in eval mode (run as is, fp32) or a :class:`NetworkRun`.
    ``progress(done, total)`` is called after each batch.
    """
    device = torch.device(device)
    run = NetworkRun(net) if isinstance(net, nn.Module) else net
    collector = EntropyCollector(config)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        pin_memory=device.type == "cuda",
    )
    names: list[str] = []
    done, total = 0, len(dataset)
    start = time.perf_counter()
    for samples in loader:
        for group in _same_size_groups(samples):
            sharp = torch.stack([s["sharp"] for s in group]).to(device, non_blocking=True)
            blurry = torch.stack([s["blurry"] for s in group]).to(device, non_blocking=True)
            collector.add("sharp", sharp)
            collector.add("blurry", blurry)
            group_names = [str(s.get("name", len(names) + i)) for i, s in enumerate(group)]
            if run is not None:
                collector.add("deblurred", run(blurry, ", ".join(group_names)))
            names.extend(group_names)
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
    dataset: Dataset, index: int, size: int, net: nn.Module | NetworkRun | None = None
) -> dict[str, torch.Tensor]:
    """``{"sharp", "blurry"[, "deblurred"]: (3, s, s)}``: the centre crop of sample ``index`` (Fig. 1);
    the network sees the whole blurry image, then its output is cropped."""
    run = NetworkRun(net) if isinstance(net, nn.Module) else net
    sample = dataset[index % len(dataset)]
    patches = {"sharp": sample["sharp"], "blurry": sample["blurry"]}
    if run is not None:
        patches["deblurred"] = run(sample["blurry"].unsqueeze(0))[0].cpu()
    return {kind: _centre_crop(image, size) for kind, image in patches.items()}


def _mean_table(entropies: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    return {band: {s: float(v.double().mean()) for s, v in per.items()} for band, per in entropies.items()}


def _analysis_settings(analysis: AnalyzeSettings | Mapping[str, Any] | None) -> AnalyzeSettings:
    if isinstance(analysis, AnalyzeSettings):
        return analysis
    given = dict(analysis or {})
    names = [f.name for f in fields(AnalyzeSettings)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"unknown analysis setting(s) {unknown}; options: {names}")
    return AnalyzeSettings(**given)  # validates (FrequencyConfig.__post_init__)


def analyze(
    data: str | Mapping[str, Any] = "synthetic",
    split: str = "train",
    *,
    ckpt_path: str | os.PathLike | None = None,
    model: str | Mapping[str, Any] | None = None,
    analysis: AnalyzeSettings | Mapping[str, Any] | None = None,
    settings: InferenceSettings | Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Entropy distributions of a dataset's frequency parts and their JS divergences, as data.

    Args:
        data: the dataset: a ``conf/data`` option name or a data config mapping (see :func:`data_config`).
        split: ``val`` (the validation set, as training validates on) or ``train`` (every training pair
            once, no augmentation).
        ckpt_path: a checkpoint: adds the deblurred images, ``sharp_vs_deblurred`` and Fig. 7.
        model: the network of a plain state dict (a ``conf/model`` preset name or a model config).
        analysis: the ``analysis`` settings (:class:`~deblur.analysis.settings.AnalyzeSettings` or a mapping
            of some of its fields, e.g. ``{"sigma": 3.0, "max_images": 200}``); None: the defaults.
        settings: device, speed options and tiling of the network and the analysis
            (:class:`~deblur.config.inference_settings.InferenceSettings`, or a mapping with its keys, e.g. a
            composed command config); None: the defaults (``device="auto"``).
        output_dir: when given, write ``analysis.json`` and the figures there.

    Returns:
        The ``analysis.json`` payload: ``dataset``, ``split``, ``num_pairs``, ``distinct_images``,
        ``min_distinct_images``, ``warnings``, ``ckpt_path``, ``device``, ``device_name`` and ``torch``
        (:func:`deblur.utils.device.runtime_record`), ``inference`` (the network's speed options: precision,
        memory format, ...; None without a checkpoint), ``self_ensemble`` (None without a checkpoint),
        ``settings``,
        ``scales``, ``bands``, ``kinds``, ``js_divergence``, ``entropy_mean``, ``timing``,
        ``names``, ``entropy`` and ``figures`` (the files written; empty without ``output_dir``).

    Raises:
        ValueError: a bad split, dataset or setting (naming its key); FileNotFoundError /
        CheckpointError: the checkpoint cannot be read.

    Examples:
        >>> data = {"name": "synthetic", "max_side": 128, "val_crop_size": 32, "val_pairs_per_photo": 1}
        >>> result = analyze(data, analysis={"max_images": 3}, settings={"device": "cpu"})
        >>> result["num_pairs"], list(result["js_divergence"]), result["scales"]
        (3, ['sharp_vs_blurry'], ['1', '1/2', '1/4'])
        >>> 0.0 <= result["js_divergence"]["sharp_vs_blurry"]["high"]["1"] <= 1.0
        True
    """
    from deblur.checkpoints import load_model
    from deblur.inference import prepare_network
    from deblur.utils.device import select_device

    data = data_config(data)
    analysis = _analysis_settings(analysis)
    if not isinstance(settings, InferenceSettings):
        settings = InferenceSettings.from_config(settings or {})
    config = FrequencyConfig.from_mapping(vars(analysis))
    dataset = build_split(data, split, analysis.crop_size)
    dataset, distinct = limit_images(dataset, analysis.max_images)
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of data.name={data.get('name')!r} is empty")
    warning = sample_size_warning(distinct)
    if warning:
        log.warning("%s %s: %s", data.get("name"), split, warning)
    run, options = None, None
    if ckpt_path:
        net, _ = load_model(ckpt_path, model)
        net, options, device = prepare_network(net, settings)
        run = NetworkRun(net, options, settings.tile, settings.tile_overlap, settings.self_ensemble)
    else:
        device = select_device(settings.device)

    def progress(done: int, total: int) -> None:
        log.info("analysed %d / %d pairs", done, total)

    workers = analysis.num_workers if analysis.num_workers is not None else int(data.get("num_workers") or 0)
    result = collect_entropies(dataset, config, run, device, analysis.batch_size, workers, progress)
    kinds = result.collector.kinds
    entropies = {kind: result.collector.values(kind) for kind in kinds}
    comparisons = {
        name: compare_entropies(entropies[a], entropies[b], config)
        for name, (a, b) in COMPARISONS.items()
        if a in entropies and b in entropies
    }
    n_pairs = len(result.names)
    seconds = max(result.seconds, 1e-9)
    payload: dict[str, Any] = {
        "dataset": data.get("name"),
        "split": split,
        "num_pairs": n_pairs,
        "distinct_images": distinct,
        "min_distinct_images": MIN_DISTINCT_IMAGES,
        "warnings": [warning] if warning else [],
        "ckpt_path": str(ckpt_path) if ckpt_path else None,
        "device": str(device),
        **runtime_record(device),
        "inference": None if options is None else options.as_dict(),
        "self_ensemble": None if options is None else settings.self_ensemble,
        "settings": {**config.to_dict(), "batch_size": analysis.batch_size},
        "scales": list(config.scales),
        "bands": list(BANDS),
        "kinds": kinds,
        "js_divergence": {name: js_table(comp) for name, comp in comparisons.items()},
        "entropy_mean": {kind: _mean_table(entropies[kind]) for kind in kinds},
        "timing": {
            "seconds": result.seconds,
            "pairs_per_s": n_pairs / seconds,
            "images_per_s": n_pairs * len(kinds) / seconds,
        },
        "names": result.names,
        "entropy": {kind: to_lists(entropies[kind]) for kind in kinds},
        "figures": [],
    }
    if output_dir is not None:
        patches = patch_triplet(dataset, analysis.patch_index, analysis.patch_size, run)
        write_outputs(payload, comparisons, patches, config, output_dir, analysis.patch_index)
    return payload


def write_outputs(
    payload: dict[str, Any],
    comparisons: Mapping[str, Mapping[str, Mapping[str, EntropyDistributions]]],
    patches: Mapping[str, torch.Tensor],
    config: FrequencyConfig,
    output_dir: str | os.PathLike,
    patch_index: int = 0,
) -> list[Path]:
    """Draw Fig. 1 (``patches`` of sample ``patch_index``) and Fig. 2 / 7 (``comparisons``) into
    ``output_dir``, add their names to ``payload["figures"]`` and write ``payload`` as ``analysis.json``;
    returns the paths written."""
    from deblur.analysis.figures import plot_entropy_distributions, plot_patch_bands, save_figure
    from deblur.utils.files import atomic_write_json

    output_dir = Path(output_dir)
    head = f"{payload['dataset']} {payload['split']}"
    n_pairs = payload["num_pairs"]
    title = f"{head}: sample {payload['names'][patch_index % n_pairs]}"
    written = [save_figure(plot_patch_bands(patches, config, title=title), output_dir / FIGURES["fig1"])]
    payload["figures"].append(FIGURES["fig1"])
    for name, comp in comparisons.items():
        first, second = COMPARISONS[name]
        title = f"{head} ({n_pairs} pairs, {payload.get('distinct_images', n_pairs)} distinct images): "
        title += f"{first} vs {second}"
        warning = "; ".join(payload.get("warnings", [])) or None
        figure = plot_entropy_distributions(comp, (first, second), title=title, warning=warning)
        written.append(save_figure(figure, output_dir / FIGURES[name]))
        payload["figures"].append(FIGURES[name])
    written.append(atomic_write_json(output_dir / "analysis.json", payload))
    return written


def format_summary(payload: Mapping[str, Any]) -> str:
    """A plain-text table of the JS divergences and mean entropies of an :func:`analyze` payload."""
    scales = payload["scales"]
    lines = [
        f"{payload['dataset']} {payload['split']}: {payload['num_pairs']} pairs "
        f"({payload.get('distinct_images', '?')} distinct images) on "
        f"{payload.get('device_name', payload['device'])}, {payload['timing']['images_per_s']:.1f} images/s"
        + (f"; network: {describe_options(payload['inference'])}" if payload.get("inference") else ""),
        *(f"  WARNING: {w}" for w in payload.get("warnings", [])),
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
