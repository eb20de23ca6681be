"""Multi-scale frequency analysis of MSFS-Net Section 3.1 (Fig. 1, 2) and Section 4.2.1 (Fig. 7).

The paper splits images into a low- and a high-frequency part at scales 1, 1/2 and 1/4, computes the
Shannon entropy of every part of every image of a dataset, and compares the resulting *entropy
distributions* of sharp and blurry (Fig. 2) or sharp and deblurred (Fig. 7) images with the
Jensen-Shannon divergence. The paper does not say how; these are the choices made here, each a field
of :class:`FrequencyConfig` (the ``analysis`` node of ``conf/analyze.yaml``):

Band split (:func:`band_split`)
    ``low = gaussian_blur2d(x, sigma)`` (kornia, separable, kernel side ``2 * ceil(3 * sigma) + 1``,
    reflect borders; replicate on images too small to reflect), ``high = x - low``, so
    ``low + high == x`` up to float rounding. ``sigma`` (default 2.0) is in pixels *of the scale being
    split*: every scale keeps the same relative cut-off, as a pyramid does.

Scales (:func:`image_pyramid`)
    Scale 1 is the image; each next scale halves it. ``downsample="area"`` (default) averages 2x2 blocks
    (``avg_pool2d``, odd last rows/columns dropped), the ``pool(X, 2)`` of the paper's OctConv (Eq. 1-2)
    and OpenCV's ``INTER_AREA`` for a factor 2; ``"pyramid"`` uses kornia's ``pyrdown`` (5x5 Gaussian,
    then bilinear halving), the levels of ``kornia.geometry.transform.build_pyramid``.

Entropy (:func:`shannon_entropy`)
    Of the BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` by default (one number per image and part;
    ``luminance=False`` pools the values of all three channels into one histogram, as
    ``skimage.measure.shannon_entropy`` does on an RGB array). A histogram with ``bins`` equal bins
    (default 256): the low part is binned over [0, 1] (256 bins = one bin per 8-bit level); the signed
    high part over ``[-high_range, high_range]`` (default 0.5: with 256 bins the bins are as wide as
    the low part's, 1/256, so both parts are measured at the same resolution). Values outside a range
    go to its first or last bin. Entropy is in bits (base 2): 0 for a constant part, ``log2(bins)`` at
    most.

Entropy distributions (:func:`entropy_distributions`)
    The entropies of a set of images are turned into a probability vector over ``dist_bins`` (default
    100) equal cells shared by the two sets being compared, spanning both sets (plus three bandwidths
    either side). ``density="kde"`` (default) spreads each value with a Gaussian kernel of Scott's
    bandwidth ``std * n ** (-1 / 5)`` of its own set and integrates it over each cell (stable on small
    validation sets, and what the figures draw); ``density="hist"`` counts values per cell. The
    Jensen-Shannon divergence (:func:`js_divergence`, base 2, in [0, 1]) of the two vectors is the
    number reported per band and scale.

Everything is batched and vectorised in torch: one call per (band, scale) computes the histograms of
a whole batch (``bincount`` over an index offset by ``bins`` per image), on the device of the images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import pyrdown

#: The two frequency parts, in the order of the paper's figures ((a) high, (b) low).
BANDS: tuple[str, ...] = ("high", "low")
#: Image kinds an analysis may hold.
KINDS: tuple[str, ...] = ("sharp", "blurry", "deblurred")
DOWNSAMPLE_MODES = ("area", "pyramid")
DENSITY_METHODS = ("kde", "hist")


@dataclass
class FrequencyConfig:
    """Settings of the analysis (also the typed schema of ``analysis`` in ``conf/analyze.yaml``).

    sigma: std of the Gaussian low-pass, in pixels of each scale.
    bins: histogram bins of the entropy of one part of one image.
    high_range: the high part is binned over [-high_range, high_range] (the low part over [0, 1]).
    num_scales: 3 gives the paper's scales 1, 1/2, 1/4.
    downsample: "area" (2x2 mean) or "pyramid" (kornia pyrdown) between scales.
    luminance: entropy of the BT.601 luminance (True) or of the pooled RGB values (False).
    density: "kde" or "hist": how a set of entropies becomes a distribution for the JS divergence.
    dist_bins: cells of those distributions.
    """

    sigma: float = 2.0
    bins: int = 256
    high_range: float = 0.5
    num_scales: int = 3
    downsample: str = "area"
    luminance: bool = True
    density: str = "kde"
    dist_bins: int = 100

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number of pixels, got {self.sigma}")
        for name in ("bins", "num_scales", "dist_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.high_range) and self.high_range > 0):
            raise ValueError(f"high_range must be > 0, got {self.high_range}")
        if self.downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {self.downsample!r}")
        if self.density not in DENSITY_METHODS:
            raise ValueError(f"density must be one of {DENSITY_METHODS}, got {self.density!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> FrequencyConfig:
        """Build from a dict or DictConfig, ignoring keys that are not fields (batch sizes and so on)."""
        values = dict(values or {})
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def scales(self) -> tuple[str, ...]:
        return scale_names(self.num_scales)


def scale_names(num_scales: int = 3) -> tuple[str, ...]:
    """``("1", "1/2", "1/4")`` for 3 scales: the keys used in analysis.json."""
    return tuple("1" if k == 0 else f"1/{2**k}" for k in range(num_scales))


def scale_tag(scale: str) -> str:
    """A scale name usable in a metric name: ``"1/2" -> "1_2"``."""
    return scale.replace("/", "_")


# ------------------------------------------------------------------------------------------ band split
def gaussian_kernel_size(sigma: float) -> int:
    """Odd kernel side covering +-3 sigma: ``2 * ceil(3 * sigma) + 1``."""
    return 2 * math.ceil(3.0 * sigma) + 1


def band_split(x: torch.Tensor, sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> ``(low, high)``: Gaussian low-pass and the residual ``x - low`` (same shapes)."""
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"band_split needs a floating-point tensor, got {x.dtype}")
    k = gaussian_kernel_size(sigma)
    border = "reflect" if min(x.shape[-2:]) > k // 2 else "replicate"
    low = gaussian_blur2d(x, (k, k), (float(sigma), float(sigma)), border_type=border)
    return low, x - low


def downsample(x: torch.Tensor, mode: str = "area") -> torch.Tensor:
    """Halve (N, C, H, W): ``"area"`` 2x2 means (floor sizes) or ``"pyramid"`` kornia ``pyrdown``."""
    if min(x.shape[-2:]) < 2:
        raise ValueError(f"cannot halve an image of size {tuple(x.shape[-2:])}")
    if mode == "area":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    if mode == "pyramid":
        return pyrdown(x)
    raise ValueError(f"downsample mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}")


def image_pyramid(x: torch.Tensor, num_scales: int = 3, mode: str = "area") -> list[torch.Tensor]:
    """``[x, x at 1/2, x at 1/4, ...]`` (``num_scales`` levels)."""
    levels = [x]
    for _ in range(num_scales - 1):
        levels.append(downsample(levels[-1], mode))
    return levels


def to_luminance(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) BT.601 luminance; a 1-channel input is returned as it is."""
    if x.shape[-3] == 1:
        return x
    return rgb_to_grayscale(x)


# ------------------------------------------------------------------------------------------ entropy
def _default_range(x: torch.Tensor) -> tuple[float, float]:
    if x.dtype == torch.bool:
        return 0.0, 2.0
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        if info.bits == 8:  # uint8 / int8: one bin per level with bins=256
            return float(info.min), float(info.max) + 1.0
        return float(x.min()), float(x.max()) + 1.0
    return 0.0, 1.0


def batched_histogram(x: torch.Tensor, bins: int, value_range: tuple[float, float]) -> torch.Tensor:
    """(N, ...) -> (N, bins) int64 counts of each sample's values in ``bins`` equal bins over
    ``value_range``; values outside the range count in the first or last bin. One ``bincount`` call
    for the whole batch."""
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must have lo < hi, got {value_range}")
    n = x.shape[0]
    flat = x.reshape(n, -1)
    if flat.is_floating_point():
        flat = flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat
        if not torch.isfinite(flat.sum()):  # one pass; NaN and inf propagate into the sum
            raise ValueError("cannot take the entropy of NaN or infinite values")
    else:
        flat = flat.to(torch.float64)
    # bin of each value, clipped to the end bins, plus ``bins`` x the sample's index: one bincount for all
    position = torch.sub(flat, lo).mul_(bins / (hi - lo)).floor_().clamp_(0, bins - 1)
    index = position.to(torch.int64 if n * bins >= 2**31 else torch.int32)
    index += torch.arange(n, device=x.device, dtype=index.dtype).unsqueeze(1) * bins
    return torch.bincount(index.reshape(-1), minlength=n * bins).view(n, bins)


def entropy_of_counts(counts: torch.Tensor) -> torch.Tensor:
    """(..., bins) counts -> (...) Shannon entropy in bits (``0 log 0 = 0``)."""
    counts = counts.to(torch.float64)
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1.0)
    return -torch.special.xlogy(p, p).sum(-1) / math.log(2.0)


def shannon_entropy(
    x: torch.Tensor | np.ndarray,
    bins: int = 256,
    *,
    value_range: tuple[float, float] | None = None,
    batched: bool = False,
) -> torch.Tensor:
    """Histogram-based Shannon entropy in bits.

    ``x``: any tensor or array. ``batched=False`` (default): one entropy of all its values (a 0-d
    tensor), like ``skimage.measure.shannon_entropy``; ``batched=True``: ``x`` is (N, ...) and the
    result is (N,), one entropy per sample, from one vectorised histogram call.

    The values are counted in ``bins`` equal bins over ``value_range`` (values outside go to the end
    bins). Default range: [0, 1] for floating point images; [0, 256) for 8-bit integers, so that with
    256 bins every 8-bit level is its own bin (the entropy then equals scikit-image's, which counts the
    distinct values; so does ``x / 255`` as float); [min, max + 1) for other integer types. A constant
    input has entropy 0; values spread equally over all bins give ``log2(bins)``. Computed in float64,
    returned as float64.
    """
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    x = torch.as_tensor(x)
    if x.numel() == 0:
        raise ValueError("cannot take the entropy of an empty input")
    if not batched:
        x = x.reshape(1, -1)
    elif x.ndim < 1 or x[0].numel() == 0:
        raise ValueError(f"batched=True needs an (N, ...) input with samples, got shape {tuple(x.shape)}")
    if value_range is None:
        value_range = _default_range(x)
    entropy = entropy_of_counts(batched_histogram(x, int(bins), value_range))
    return entropy if batched else entropy[0]


def band_entropies(
    images: torch.Tensor, config: FrequencyConfig | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """(N, C, H, W) images in [0, 1] -> ``{band: {scale: (N,) entropies in bits}}`` (float64).

    Luminance (if ``config.luminance``) -> pyramid -> band split -> batched entropy per part.
    """
    config = config or FrequencyConfig()
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    x = images.float()
    if config.luminance:
        x = to_luminance(x)
    out: dict[str, dict[str, torch.Tensor]] = {band: {} for band in BANDS}
    ranges = {"low": (0.0, 1.0), "high": (-config.high_range, config.high_range)}
    levels = image_pyramid(x, config.num_scales, config.downsample)
    for scale, level in zip(config.scales, levels, strict=True):
        low, high = band_split(level, config.sigma)
        for band, part in (("high", high), ("low", low)):
            out[band][scale] = shannon_entropy(part, config.bins, value_range=ranges[band], batched=True)
    return out


class EntropyCollector:
    """Accumulates :func:`band_entropies` of batches per image kind (sharp, blurry, deblurred)."""

    def __init__(self, config: FrequencyConfig | None = None) -> None:
        self.config = config or FrequencyConfig()
        self._parts: dict[str, dict[str, dict[str, list[torch.Tensor]]]] = {}

    def add(self, kind: str, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Add a batch of images of ``kind``; returns its entropies."""
        result = band_entropies(images, self.config)
        store = self._parts.setdefault(kind, {band: {s: [] for s in self.config.scales} for band in BANDS})
        for band, per_scale in result.items():
            for scale, values in per_scale.items():
                store[band][scale].append(values.detach())
        return result

    @property
    def kinds(self) -> list[str]:
        return list(self._parts)

    def count(self, kind: str) -> int:
        if kind not in self._parts:
            return 0
        return sum(v.numel() for v in self._parts[kind][BANDS[0]][self.config.scales[0]])

    def values(self, kind: str) -> dict[str, dict[str, torch.Tensor]]:
        """``{band: {scale: (n,) entropies}}`` of every image of ``kind`` added so far."""
        if kind not in self._parts:
            raise KeyError(f"no {kind!r} images were added; have {self.kinds}")
        return {
            band: {s: torch.cat(chunks) for s, chunks in per_scale.items()}
            for band, per_scale in self._parts[kind].items()
        }

    def reset(self) -> None:
        self._parts.clear()


# ------------------------------------------------------------------------------------------ divergence
def js_divergence(
    p: torch.Tensor | np.ndarray | Sequence[float], q: torch.Tensor | np.ndarray | Sequence[float]
) -> torch.Tensor:
    """Jensen-Shannon divergence in bits (base 2, so in [0, 1]) between distributions over the last dim.

    ``p`` and ``q`` are non-negative weights (counts or probabilities; each is normalised to sum 1)
    of the same shape ``(..., K)``; leading dimensions are batched. ``JS = KL(p || m) / 2 + KL(q || m) / 2``
    with ``m = (p + q) / 2``: 0 for equal distributions, 1 for disjoint supports; equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``. Computed in float64.
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64, device=p.device)
    if p.shape != q.shape or p.ndim == 0:
        raise ValueError(
            f"p and q must have the same non-scalar shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    if (p < 0).any() or (q < 0).any() or not (torch.isfinite(p).all() and torch.isfinite(q).all()):
        raise ValueError("distributions must be finite and non-negative")
    p_sum, q_sum = p.sum(-1, keepdim=True), q.sum(-1, keepdim=True)
    if (p_sum == 0).any() or (q_sum == 0).any():
        raise ValueError("a distribution has zero total mass")
    p, q = p / p_sum, q / q_sum
    m = 0.5 * (p + q)
    # xlogy(p, p / m) is 0 where p == 0; where p > 0, m > 0
    kl_pm = torch.special.xlogy(p, p / torch.where(m > 0, m, 1.0)).sum(-1)
    kl_qm = torch.special.xlogy(q, q / torch.where(m > 0, m, 1.0)).sum(-1)
    return (0.5 * (kl_pm + kl_qm) / math.log(2.0)).clamp(0.0, 1.0)


def scott_bandwidth(values: torch.Tensor) -> float:
    """Scott's rule ``std * n ** (-1/5)`` (0 for a single value or a constant set)."""
    n = values.numel()
    if n < 2:
        return 0.0
    return float(values.double().std()) * n ** (-0.2)


@dataclass
class EntropyDistributions:
    """Two entropy sets on shared cells: ``edges`` (K + 1,), ``p`` and ``q`` (K,) summing to 1, ``js``."""

    edges: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    js: float

    @property
    def centers(self) -> torch.Tensor:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def densities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``p`` and ``q`` divided by the cell width (probability densities per bit, for plotting)."""
        width = self.edges[1:] - self.edges[:-1]
        return self.p / width, self.q / width


def _cell_masses(values: torch.Tensor, edges: torch.Tensor, bandwidth: float) -> torch.Tensor:
    values = values.double().reshape(-1)
    if bandwidth > 0:
        z = (edges.unsqueeze(0) - values.unsqueeze(1)) / (bandwidth * math.sqrt(2.0))
        cdf = 0.5 * (1.0 + torch.erf(z))  # (n, K + 1)
        mass = (cdf[:, 1:] - cdf[:, :-1]).sum(0)
    else:
        k = edges.numel() - 1
        idx = torch.bucketize(values, edges[1:-1], right=True).clamp(0, k - 1)
        mass = torch.bincount(idx, minlength=k).double()
    return mass / mass.sum()


def entropy_distributions(
    a: torch.Tensor | Sequence[float],
    b: torch.Tensor | Sequence[float],
    dist_bins: int = 100,
    density: str = "kde",
) -> EntropyDistributions:
    """Two sets of entropies -> their distributions on ``dist_bins`` shared cells and their JS divergence.

    The cells span both sets (widened by three bandwidths each side for ``"kde"``). ``"kde"``: each value
    is a Gaussian of its set's Scott bandwidth, integrated over the cells (a set whose bandwidth is 0,
    one value or all equal, falls back to counting, like ``"hist"``); ``"hist"``: counts per cell.
    """
    if density not in DENSITY_METHODS:
        raise ValueError(f"density must be one of {DENSITY_METHODS}, got {density!r}")
    a = torch.as_tensor(a, dtype=torch.float64).detach().cpu().reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).detach().cpu().reshape(-1)
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError("both entropy sets need at least one value")
    both = torch.cat([a, b])
    lo, hi = float(both.min()), float(both.max())
    ha, hb = (scott_bandwidth(a), scott_bandwidth(b)) if density == "kde" else (0.0, 0.0)
    pad = 3.0 * max(ha, hb)
    if hi - lo + 2 * pad <= 1e-9:
        pad = 0.5  # every value equal: one central cell holds all the mass
    edges = torch.linspace(lo - pad, hi + pad, dist_bins + 1, dtype=torch.float64)
    p, q = _cell_masses(a, edges, ha), _cell_masses(b, edges, hb)
    return EntropyDistributions(edges=edges, p=p, q=q, js=float(js_divergence(p, q)))


def compare_entropies(
    a: Mapping[str, Mapping[str, torch.Tensor]],
    b: Mapping[str, Mapping[str, torch.Tensor]],
    config: FrequencyConfig | None = None,
) -> dict[str, dict[str, EntropyDistributions]]:
    """``{band: {scale: entropies}}`` x2 -> ``{band: {scale: EntropyDistributions}}`` (``.js``: the JS)."""
    config = config or FrequencyConfig()
    return {
        band: {scale: entropy_distributions(a[band][scale], b[band][scale], config.dist_bins, config.density)
               for scale in a[band]}
        for band in BANDS
        if band in a
    }


def js_table(comparison: Mapping[str, Mapping[str, EntropyDistributions]]) -> dict[str, dict[str, float]]:
    """``{band: {scale: EntropyDistributions}}`` -> ``{band: {scale: js}}`` (the analysis.json layout)."""
    return {band: {scale: d.js for scale, d in per_scale.items()} for band, per_scale in comparison.items()}


def to_lists(entropies: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, list[float]]]:
    """``{band: {scale: tensor}}`` -> plain JSON-ready lists."""
    return {
        band: {s: [float(v) for v in t.cpu().tolist()] for s, t in per_scale.items()}
        for band, per_scale in entropies.items()
    }


def iter_band_scale(config: FrequencyConfig) -> Iterable[tuple[str, str]]:
    """``(band, scale)`` pairs in the figures' order."""
    for band in BANDS:
        for scale in config.scales:
            yield band, scale
