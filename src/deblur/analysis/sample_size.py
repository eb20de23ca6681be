"""How many distinct images a JS divergence of entropy distributions needs before it means anything.

The divergence compares two *distributions* of per-image entropies, estimated from the images at hand
(:func:`deblur.analysis.frequency.entropy_distributions`). With few images the estimate is mostly noise:
two sets drawn from one and the same distribution (no difference at all) give, with the defaults (Gaussian
KDE, Scott bandwidth, 100 cells; 1000 draws of normal sets of ``n`` values each), a median JS of

=====  ======  =====  =====  =====  =====  =====
n      4       8      12     16     24     32
=====  ======  =====  =====  =====  =====  =====
JS     0.148   0.076  0.057  0.045  0.033  0.030
p90    0.397   0.196  0.137  0.114  0.074  0.062
=====  ======  =====  =====  =====  =====  =====

(``p90``: the 90th percentile). :data:`MIN_DISTINCT_IMAGES` = 16 is the smallest of these sizes whose
median noise floor is below 0.05; below it an analysis warns. Two sets of *one* image each are disjoint
whatever they show, so their JS is close to 1: the ~0.99 of two crops of one photo is this artefact.

"Distinct" counts source photos (:meth:`deblur.data.base.PairDataset.source`): several blurs or crops of
one photo repeat its sharp image and add no new scene.
"""

from __future__ import annotations

#: Fewer distinct source images than this: the divergences are flagged (log, result, figure).
MIN_DISTINCT_IMAGES = 16


def sample_size_warning(distinct: int, minimum: int = MIN_DISTINCT_IMAGES) -> str | None:
    """A one-line warning when ``distinct`` source images are fewer than ``minimum``; None otherwise."""
    if distinct >= minimum:
        return None
    return (
        f"only {distinct} distinct image(s) (minimum {minimum}): JS divergences of so few images are "
        f"dominated by sampling noise (two sets of 8 images drawn from one distribution already give "
        f"~0.08; 1 image per set gives ~1)"
    )
