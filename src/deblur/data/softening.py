"""How much a paired augmentation softens the sharp target, measured on real photos.

A geometric transform that resamples the image (rotation, lens distortion, crop-and-resize) low-pass
filters the sharp target as well as the blurry input: training on such pairs teaches the network softer
outputs. This module measures it through the training data path itself: ``PairDataset`` cuts a window
(``PairAugment.margin``), the pipeline runs, the centred crop is kept; the high-frequency energy of that
sharp crop is divided by the energy of the same window's centred crop without augmentation.

* ``laplacian_energy``: mean squared 4-neighbour Laplacian (the highest frequencies weigh most);
* ``difference_energy``: mean squared horizontal plus vertical neighbour difference.

A ratio of 1 means untouched fine detail, 0.5 half its energy gone. Each scene transform is measured alone
at ``p = 1`` (what it does when it fires) and the whole pipeline as configured (what training sees on
average). ``python -m deblur.data.softening [--config conf/augment/fddn.yaml]`` prints the markdown table of
docs/augmentation.md.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deblur.data.augment import PairAugment, _to_plain, make_pipeline
from deblur.data.base import InMemoryPairDataset
from deblur.utils.seeding import derive_seed

#: Real photographs bundled with scikit-image (``deblur.data.synthetic.load_photo``) the table averages over.
MEASURE_PHOTOS: tuple[str, ...] = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left", "rocket")

_INTERPOLATIONS = {0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "Lanczos-4"}


def laplacian_energy(image: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of an HxWxC float image over its interior pixels and channels."""
    f = np.asarray(image, dtype=np.float64)
    lap = 4 * f[1:-1, 1:-1] - f[:-2, 1:-1] - f[2:, 1:-1] - f[1:-1, :-2] - f[1:-1, 2:]
    return float(np.mean(lap**2))


def difference_energy(image: np.ndarray) -> float:
    """Mean squared vertical plus mean squared horizontal neighbour difference of an HxWxC float image."""
    f = np.asarray(image, dtype=np.float64)
    return float(np.mean(np.diff(f, axis=0) ** 2) + np.mean(np.diff(f, axis=1) ** 2))


class _WindowOnly:
    """Identity transform that asks ``PairDataset`` for the same window as a pipeline (the reference)."""

    def __init__(self, margin: int) -> None:
        self._margin = margin

    def margin(self, size: int) -> int:
        return self._margin

    def __call__(self, blurry: np.ndarray, sharp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return blurry, sharp


@dataclass(frozen=True)
class Ratios:
    """Per-draw ratios (augmented / unaugmented) of the sharp crop's high-frequency energy."""

    laplacian: np.ndarray
    difference: np.ndarray


def energy_ratios(
    pipeline: PairAugment, photos: Sequence[str], crop_size: int, draws: int, seed: int = 0
) -> Ratios:
    """Ratios of ``draws`` training draws per photo: ``pipeline`` on a photo paired with itself, through
    ``PairDataset``'s window, transform and centre crop, against the same window without the pipeline."""
    from deblur.data.synthetic import load_photo

    margin = pipeline.margin(crop_size)
    lap, dif = [], []
    for p_index, name in enumerate(photos):
        photo = load_photo(name)
        pairs = [(photo, photo, name)]
        augmented = InMemoryPairDataset(pairs, crop_size=crop_size, random_crop=True, transform=pipeline)
        reference = InMemoryPairDataset(
            pairs, crop_size=crop_size, random_crop=True, transform=_WindowOnly(margin)
        )
        for draw in range(draws):
            item = (0, derive_seed(seed, p_index, draw))
            out = augmented[item]["sharp"].permute(1, 2, 0).numpy()
            ref = reference[item]["sharp"].permute(1, 2, 0).numpy()
            lap.append(laplacian_energy(out) / laplacian_energy(ref))
            dif.append(difference_energy(out) / difference_energy(ref))
    return Ratios(np.asarray(lap), np.asarray(dif))


@dataclass(frozen=True)
class TransformSoftening:
    """One scene transform measured alone at p = 1; ``p`` is its configured probability."""

    name: str
    p: float
    interpolation: str
    ratios: Ratios

    @property
    def laplacian(self) -> float:
        return float(self.ratios.laplacian.mean())

    @property
    def expected_loss(self) -> float:
        """``p * (1 - mean Laplacian ratio)``, positive for softening: its share of the pipeline's loss."""
        return self.p * (1.0 - self.laplacian)


@dataclass(frozen=True)
class SofteningReport:
    transforms: list[TransformSoftening]
    pipeline: Ratios
    margin: int
    crop_size: int
    photos: tuple[str, ...]
    draws: int
    pipeline_draws: int

    @property
    def expected_loss(self) -> float:
        """Sum over the scene transforms of ``p * max(0, 1 - mean Laplacian ratio)``: the pipeline's
        expected loss of Laplacian energy to first order, gains (snow) not offsetting losses."""
        return sum(max(0.0, row.expected_loss) for row in self.transforms)

    @property
    def pipeline_laplacian(self) -> float:
        """Mean Laplacian ratio over the pipeline's draws as configured."""
        return float(self.pipeline.laplacian.mean())

    @property
    def pipeline_softening(self) -> float:
        """Mean of ``min(ratio, 1)``: the energy lost, with gains (snow) not offsetting losses."""
        return float(np.minimum(self.pipeline.laplacian, 1.0).mean())


def _single(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config with only scene transform ``name``, at p = 1, and no capture section."""
    kwargs = dict(cfg["scene"][name] or {})
    kwargs["p"] = 1.0
    return {"name": f"{cfg.get('name', '')}:{name}", "seed": cfg.get("seed", 0), "scene": {name: kwargs}}


def measure_softening(
    cfg: Any,
    photos: Sequence[str] = MEASURE_PHOTOS,
    crop_size: int = 192,
    draws: int = 16,
    pipeline_draws: int = 64,
    seed: int = 0,
) -> SofteningReport:
    """Measure every scene transform of the ``augment`` config ``cfg`` alone (``draws`` per photo, at
    p = 1) and the pipeline as configured (``pipeline_draws`` per photo; 0 skips it) on ``photos`` with
    ``crop_size`` crops. Capture transforms never touch the target and are not measured alone."""
    cfg = copy.deepcopy(_to_plain(cfg))
    cfg.pop("defaults", None)
    rows = []
    for name in cfg.get("scene") or {}:
        pipeline = make_pipeline(_single(cfg, name))
        transform = pipeline.scene.transforms[0]
        flag = getattr(transform, "interpolation", None)
        interpolation = "-" if flag is None else _INTERPOLATIONS.get(flag, str(flag))
        rows.append(
            TransformSoftening(
                name=name,
                p=float((cfg["scene"][name] or {}).get("p", 0.5)),
                interpolation=interpolation,
                ratios=energy_ratios(pipeline, photos, crop_size, draws, seed),
            )
        )
    full = make_pipeline(cfg)
    empty = Ratios(np.ones(0), np.ones(0))
    pipeline = energy_ratios(full, photos, crop_size, pipeline_draws, seed + 1) if pipeline_draws else empty
    return SofteningReport(
        rows, pipeline, full.margin(crop_size), crop_size, tuple(photos), draws, pipeline_draws
    )


def format_report(report: SofteningReport) -> str:
    """Markdown table of a :class:`SofteningReport` (the one in docs/augmentation.md)."""
    lines = [
        "| scene transform | p | interpolation | Laplacian ratio when applied: mean (min) | "
        "pixel-difference ratio when applied | p x (1 - Laplacian ratio) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.transforms:
        lap = row.ratios.laplacian
        lines.append(
            f"| `{row.name}` | {row.p:g} | {row.interpolation} | {lap.mean():.3f} ({lap.min():.3f}) | "
            f"{row.ratios.difference.mean():.3f} | {row.expected_loss:+.4f} |"
        )
    net = sum(r.expected_loss for r in report.transforms)
    lines.append(f"| **sum** (losses only) | | | | | {net:+.4f} ({report.expected_loss:+.4f}) |")
    n = len(report.photos)
    text = "\n".join(lines)
    text += (
        f"\n\nCrop {report.crop_size}, window margin {report.margin} px, photos: {', '.join(report.photos)}; "
        f"{report.draws} draws per photo and transform"
    )
    if report.pipeline_draws:
        text += (
            f", {report.pipeline_draws} per photo for the pipeline ({report.pipeline_draws * n} draws).\n\n"
            f"Pipeline as configured: mean Laplacian ratio {report.pipeline_laplacian:.3f}, mean "
            f"pixel-difference ratio {report.pipeline.difference.mean():.3f}, mean of min(Laplacian "
            f"ratio, 1) {report.pipeline_softening:.3f}; "
            f"{np.mean(report.pipeline.laplacian < 0.99):.0%} of the draws lose more than 1 %."
        )
    return text + "\n"


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - documentation table
    from omegaconf import OmegaConf

    from deblur.paths import CONF_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONF_DIR / "augment" / "fddn.yaml"), help="augment YAML")
    parser.add_argument("--crop-size", type=int, default=192)
    parser.add_argument("--draws", type=int, default=16, help="draws per photo and transform")
    parser.add_argument("--pipeline-draws", type=int, default=64, help="draws per photo, whole pipeline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = OmegaConf.load(args.config)
    report = measure_softening(
        cfg, MEASURE_PHOTOS, args.crop_size, args.draws, args.pipeline_draws, args.seed
    )
    print(format_report(report), end="")


if __name__ == "__main__":  # pragma: no cover
    main()
