"""Frequency analysis of MSFS-Net Section 3.1 / 4.2.1: band split, entropy, Jensen-Shannon divergence.

``shannon_entropy`` and ``js_divergence`` are the public numerical core; :mod:`deblur.analysis.frequency`
documents every choice (low-pass, scales, binning, distributions). Figures live in
:mod:`deblur.analysis.figures`, the validation callback in :mod:`deblur.analysis.callback` (imported
lazily: it needs Lightning) and a whole analysis of a dataset in :mod:`deblur.analysis.analyzer`.
"""

from deblur.analysis.frequency import (
    BANDS,
    EntropyCollector,
    EntropyDistributions,
    FrequencyConfig,
    band_entropies,
    band_split,
    compare_entropies,
    entropy_distributions,
    image_pyramid,
    js_divergence,
    js_table,
    scale_names,
    shannon_entropy,
)

__all__ = [
    "BANDS",
    "EntropyCollector",
    "EntropyDistributions",
    "FrequencyConfig",
    "band_entropies",
    "band_split",
    "compare_entropies",
    "entropy_distributions",
    "image_pyramid",
    "js_divergence",
    "js_table",
    "scale_names",
    "shannon_entropy",
]
