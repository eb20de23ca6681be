"""A timed trial of speed candidates: interleaved rounds (:func:`deblur.speed.timing.time_rounds`) until the
decision rule (:func:`deblur.speed.rule.decide`) is clear of the noise, or the budget is spent.

:func:`interleaved_probe` is what both probes (:mod:`deblur.speed.inference_probe`,
:mod:`deblur.speed.training_probe`) time their candidates with:

* each candidate is called once as a warm-up (an exception rejects it, with its message; the inference
  probe's timer also rejects a candidate whose output is below its tolerance);
* then up to :data:`ROUNDS` rounds, each calling every remaining candidate once (interleaved, rotating
  the order, so that a noisy neighbour slows all of them alike); a candidate more than
  :data:`DROP_FACTOR` x slower than the fastest of its group in the first round is not timed further, but
  the fastest exact one always stays as the base for a result-changing one (warm-ups are not used for
  this, their one-time costs differ between candidates);
* stopping after the round that passes ``budget_s`` (at least :data:`MIN_ROUNDS` rounds, or one when the
  warm-ups alone took :data:`LONG_WARMUP` budgets and no result-changing candidate is left); while the
  decision is still marginal, rounds go on up to :data:`ROUNDS`, for at most as long again as the first
  ones took.

The timing function is an argument (``time_once``), so that tests can inject times.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from deblur.speed.rule import EXACT_MARGIN, TOLERANCE_MARGIN, Decision, decide
from deblur.speed.timing import Rounds, time_rounds

C = TypeVar("C", bound=Hashable)

#: inputs with fewer pixels (N x H x W) are not probed: the fixed rule is used
MIN_PROBE_PIXELS = 128 * 128
#: the probe's example input is centre-cropped to at most this many pixels a side
MAX_PROBE_SIDE = 256
#: seconds of timed rounds after which the probe stops (it always times at least one round)
BUDGET_S = 3.0
#: the most timed rounds per stage, and the fewest (whatever the budget) when there are several candidates
#: (at least 3, so that the spread of the per-round ratios is measured: :mod:`deblur.speed.rule`); past
#: the budget, rounds go on (up to ROUNDS) only while the decision is marginal
ROUNDS = 7
MIN_ROUNDS = 3
#: when the warm-up calls alone took more than this many budgets, one timed round is the fewest
LONG_WARMUP = 5.0
#: a candidate more than this many times slower than the fastest in the first timed round is not timed further
DROP_FACTOR = 2.0
#: the least gain for an option within its tolerance (channels_last, fold_batchnorm); smaller gains are
#: ties, settled for the most exact candidate (:data:`deblur.speed.rule.TOLERANCE_MARGIN`)
TIE_MARGIN = TOLERANCE_MARGIN


@dataclass
class Trial(Generic[C]):
    """What :func:`interleaved_probe` measured: the winner, each candidate's timed runs and warm-up (s),
    and the candidates left out with the reason."""

    best: C
    runs: dict[C, list[float]]
    warmup: dict[C, float]
    rejected: dict[C, str]
    rounds: list[dict[C, float]] = field(default_factory=list)
    decision: Decision[C] | None = None

    def figures(self, candidate: C) -> dict[str, float | None]:
        """The candidate's times for a record: ``min_ms``, ``median_ms``, ``runs``, ``warmup_ms``."""
        runs, warmup = self.runs[candidate], self.warmup.get(candidate)
        return {
            "min_ms": min(runs) * 1e3,
            "median_ms": statistics.median(runs) * 1e3,
            "runs": len(runs),
            "warmup_ms": None if warmup is None else warmup * 1e3,
        }


def interleaved_probe(
    candidates: Sequence[C],
    time_once: Callable[[C], float],
    *,
    rounds: int = ROUNDS,
    budget_s: float = BUDGET_S,
    drop_factor: float = DROP_FACTOR,
    tie_margin: float = TIE_MARGIN,
    changes_results: Callable[[C], bool] | None = None,
    exact_margin: float = EXACT_MARGIN,
) -> Trial[C]:
    """Time ``candidates`` (most exact first) with ``time_once(candidate) -> seconds of one call``.

    One warm-up call each (an exception rejects the candidate, with its message), then up to ``rounds``
    rounds calling every remaining candidate once, the order rotated each round. Candidates more than
    ``drop_factor`` times slower than the fastest of their group in the first round are not timed further
    (:func:`_keep_timing`). Stops after the round in which ``budget_s`` seconds (counted from the first
    warm-up) have passed and the decision is not marginal, but not before :data:`MIN_ROUNDS` rounds (one
    when a single candidate is left, or when the warm-ups alone took :data:`LONG_WARMUP` budgets and no
    result-changing candidate is left: calls of seconds each, where one round costs enough). The winner is
    :func:`deblur.speed.rule.decide` of the timed rounds: per-round ratios against the most exact
    candidate; ``tie_margin`` is the least gain for candidates within their tolerance, ``exact_margin``
    (and the spread of the ratios) for those where ``changes_results(candidate)`` is true (default: none).
    Raises RuntimeError when every candidate was rejected.
    """
    if not candidates:
        raise ValueError("interleaved_probe needs at least one candidate")
    changes = changes_results or (lambda c: False)
    plan = _ProbePlan(rounds, budget_s, drop_factor, changes, tie_margin, exact_margin)
    record = time_rounds(candidates, time_once, plan, reject_errors=True)
    timed = [c for c in record.first if c not in record.rejected and record.runs(c)]
    if not timed:
        raise RuntimeError(f"every speed candidate failed: {record.rejected}")
    table = [{c: t for c, t in row.items() if c in timed} for row in record.table]
    decision = decide(timed, table, changes, tolerance_margin=tie_margin, exact_margin=exact_margin)
    return Trial(
        best=decision.choice, runs={c: record.runs(c) for c in timed}, warmup=record.first,
        rejected=record.rejected, rounds=table, decision=decision,
    )  # fmt: skip


class _ProbePlan(Generic[C]):
    """:func:`interleaved_probe`'s rounds, a plan for :func:`~deblur.speed.timing.time_rounds`: called
    before round ``r`` with the rounds so far, it names the candidates to time (none: stop)."""

    def __init__(
        self, rounds: int, budget_s: float, drop_factor: float, changes: Callable[[C], bool],
        tie_margin: float, exact_margin: float,
    ) -> None:  # fmt: skip
        self.rounds, self.budget_s, self.drop_factor = rounds, budget_s, drop_factor
        self.changes, self.tie_margin, self.exact_margin = changes, tie_margin, exact_margin
        self.start = time.perf_counter()
        self.timing: list[C] = []
        self.most = 1
        self.fewest = min(MIN_ROUNDS, rounds)
        self.long = False
        # timed seconds of the first `fewest` rounds; the extra rounds take at most as much again
        self.first_rounds_s = math.inf

    def __call__(self, r: int, record: Rounds[C]) -> list[C]:
        if r == 0:
            self.timing = [c for c in record.first if c not in record.rejected]
            self.most = max(int(self.rounds), 1) if len(self.timing) > 1 else 1
            # calls of seconds each (warm-ups past LONG_WARMUP x the budget): one timed round may be all
            # there is, unless an option that changes results is still in play (its gain must be measured
            # against the noise)
            self.long = time.perf_counter() - self.start > LONG_WARMUP * self.budget_s
            return self.timing
        self.timing = [c for c in self.timing if c not in record.rejected]
        if not self.timing:
            return []
        if r == 1:  # far slower in a timed run (after the warm-up's one-time costs): not timed further
            self.timing = _keep_timing(self.timing, record.table[0], self.changes, self.drop_factor)
            if self.long and not any(self.changes(c) for c in self.timing):
                self.fewest = 1
        timed_s = record.timed_s()
        self.first_rounds_s = timed_s if r == self.fewest else self.first_rounds_s
        over = time.perf_counter() - self.start > self.budget_s
        if len(self.timing) < 2 or (r >= self.fewest and over and (
            self.fewest == 1 or timed_s > 2 * self.first_rounds_s or self._settled(record.table)
        )):  # fmt: skip
            return []
        return self.timing if r < self.most else []

    def _settled(self, table: list[dict[C, float]]) -> bool:
        """Whether the decision on the candidates still timed is clear of the noise (not marginal)."""
        rounds = [{c: t for c, t in row.items() if c in self.timing} for row in table]
        decision = decide(
            self.timing, rounds, self.changes, tolerance_margin=self.tie_margin,
            exact_margin=self.exact_margin,
        )  # fmt: skip
        return not decision.marginal


def _keep_timing(
    timing: list[C], first: Mapping[C, float], changes: Callable[[C], bool], drop_factor: float
) -> list[C]:
    """The candidates timed after the first round: not those more than ``drop_factor`` x slower than the
    fastest of their group (within tolerance of the exact one / changing results). Each group's fastest
    stays, whatever one (possibly disturbed) round says: the fastest exact one as the base that a
    result-changing candidate's per-round gain is measured against."""
    exact = [c for c in timing if not changes(c)]
    others = [c for c in timing if changes(c)]
    keep = set()
    for group in (exact, others):
        if group:
            quickest = min(first[c] for c in group)
            keep |= {c for c in group if first[c] <= drop_factor * quickest}
    return [c for c in timing if c in keep]


def precision_changes(exact: Any) -> Callable[[Any], bool]:
    """``changes_results`` of :func:`interleaved_probe`: a candidate in another precision than ``exact``
    (bf16 against fp32) changes results beyond the other options' tolerance."""
    return lambda candidate: candidate.precision != exact.precision
