"""The speed probe's decision rule: which of several timed candidates to use, so that timing noise never
changes results.

Pure (timings in, a :class:`Decision` out), so that tests feed it synthetic timings; the probe
(:func:`deblur.speed.trial.interleaved_probe`) and the bench (``default_vs_best``) call it.

Input: the candidates, most exact first, and the timed *rounds*: each round a ``{candidate: seconds}`` of
calls made side by side (interleaved), so that a noisy neighbour slows a round's calls alike.

* Two candidates are compared by their per-round ratios (:func:`paired`): ``gain`` = the median over rounds
  of ``t_base / t_candidate`` minus 1 (0.10: the candidate took 10 % less time); ``spread`` = the robust
  standard deviation of those ratios (1.4826 x their median absolute deviation, so that one outlier round
  does not decide; infinite with fewer than two shared rounds: noise unmeasured).
* Candidates that do not change results beyond their stated tolerance (memory format, BatchNorm folding:
  ``changes_results(c)`` false) are compared with the most exact one; the one with the largest gain wins
  when that gain is at least ``tolerance_margin`` (:data:`TOLERANCE_MARGIN`), else the most exact stays.
* Candidates that change results (bf16: ``changes_results(c)`` true) are then compared with that winner;
  one is taken only when its gain is clear of the noise: at least ``exact_margin`` (:data:`EXACT_MARGIN`)
  in its *worst* round (:func:`worst_ratio`: every round; with 5 or more rounds, one round in four may be
  disturbed). A gain inside the noise (e.g. +5 % median, but slower in one of 3 rounds), or one measured
  in a single round, keeps the exact option.
* A decision is *marginal* when the deciding comparison of either group has ``|gain|`` within
  :data:`MARGINAL_SPREADS` x its spread, or a median gain enough for a result-changing option whose worst
  round was not; the probe times more rounds then, and its cache re-checks a marginal choice once instead
  of trusting it forever.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

C = TypeVar("C", bound=Hashable)

#: the least gain (fraction of the exact candidate's time) for an option within its tolerance
TOLERANCE_MARGIN = 0.03
#: the least gain for an option that changes results (bf16); it must also clear the spread
EXACT_MARGIN = 0.05
#: a deciding comparison with |gain| within this many spreads is marginal (re-checked when cached)
MARGINAL_SPREADS = 2.0
#: the median absolute deviation times this estimates the standard deviation (of normal noise)
MAD_SCALE = 1.4826


def paired(rounds: Sequence[Mapping[Any, float]], base: Any, candidate: Any) -> tuple[float, float, int]:
    """``(gain, spread, n)`` of ``candidate`` against ``base`` over the ``n`` rounds that timed both:
    gain = median of ``t_base / t_candidate`` - 1, spread = :data:`MAD_SCALE` x the median absolute
    deviation of those ratios (``inf`` when ``n < 2``; ``gain`` is ``nan`` when ``n == 0``)."""
    ratios = [r[base] / r[candidate] for r in rounds if base in r and candidate in r and r[candidate] > 0]
    if not ratios:
        return math.nan, math.inf, 0
    median = statistics.median(ratios)
    spread = MAD_SCALE * statistics.median(abs(q - median) for q in ratios) if len(ratios) > 1 else math.inf
    return median - 1.0, spread, len(ratios)


def worst_ratio(rounds: Sequence[Mapping[Any, float]], base: Any, candidate: Any) -> float:
    """The candidate's worst per-round ``t_base / t_candidate`` over the rounds that timed both, leaving out
    the ``(n - 1) // 4`` worst (none with up to 4 rounds, one with 5 to 8): a disturbed round among
    several does not veto a gain seen in all the others. ``nan`` without shared rounds."""
    ratios = sorted(
        r[base] / r[candidate] for r in rounds if base in r and candidate in r and r[candidate] > 0
    )
    return ratios[(len(ratios) - 1) // 4] if ratios else math.nan


@dataclass(frozen=True)
class Comparison(Generic[C]):
    """``candidate`` against ``base``: its ``gain``, ``spread``, ``rounds`` (see :func:`paired`), the
    ``needed`` gain, whether it was needed in the worst round (``strict``, :func:`worst_ratio`; ``worst``:
    that round's gain) and whether it ``passed``."""

    candidate: C
    base: C
    gain: float
    spread: float
    rounds: int
    needed: float
    strict: bool
    passed: bool
    worst: float = math.nan

    @property
    def marginal(self) -> bool:
        """|gain| within :data:`MARGINAL_SPREADS` x the spread (always so for an unmeasured spread), or, for
        a strict comparison, a median gain that is enough while the worst round's is not (the rounds
        disagree: more of them may settle it)."""
        disagree = self.strict and not self.passed and self.gain >= self.needed
        return disagree or not abs(self.gain) >= MARGINAL_SPREADS * self.spread

    def as_dict(self, label: Callable[[C], str] = str) -> dict[str, Any]:
        return {
            "candidate": label(self.candidate), "base": label(self.base), "gain": _num(self.gain),
            "spread": _num(self.spread), "worst": _num(self.worst), "rounds": self.rounds,
            "needed": self.needed, "strict": self.strict, "passed": self.passed, "marginal": self.marginal,
        }  # fmt: skip


def _num(value: float) -> float | None:
    """JSON-safe: inf / nan as None."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Decision(Generic[C]):
    """The choice, the deciding comparisons (one per group that had rivals: within-tolerance options,
    then result-changing ones) and every comparison made. ``margin`` / ``spread``: those of the last
    deciding comparison (the precision decision when there was one); 0 / 0 when there was no rival."""

    choice: C
    deciding: tuple[Comparison[C], ...]
    comparisons: tuple[Comparison[C], ...]

    @property
    def margin(self) -> float:
        return self.deciding[-1].gain if self.deciding else 0.0

    @property
    def spread(self) -> float:
        return self.deciding[-1].spread if self.deciding else 0.0

    @property
    def marginal(self) -> bool:
        return any(c.marginal for c in self.deciding)

    def as_dict(self, label: Callable[[C], str] = str) -> dict[str, Any]:
        return {
            "choice": label(self.choice), "margin": _num(self.margin), "spread": _num(self.spread),
            "marginal": self.marginal, "deciding": [c.as_dict(label) for c in self.deciding],
        }  # fmt: skip


def _compare(
    rounds: Sequence[Mapping[C, float]], base: C, candidate: C, needed: float, strict: bool
) -> Comparison[C]:
    gain, spread, n = paired(rounds, base, candidate)
    worst = worst_ratio(rounds, base, candidate) - 1.0
    passed = n > 0 and gain >= needed and (not strict or (n >= 2 and worst >= needed))
    return Comparison(candidate, base, gain, spread, n, needed, strict, passed, worst)


def _best(base: C, comparisons: list[Comparison[C]]) -> tuple[C, Comparison[C] | None]:
    """The passing candidate with the largest gain (else ``base``) and the deciding comparison: that one,
    or when none passed the one with the largest gain."""
    if not comparisons:
        return base, None
    measured = [c for c in comparisons if c.rounds > 0]
    top = max(measured or comparisons, key=lambda c: c.gain if c.rounds else -math.inf)
    passing = [c for c in comparisons if c.passed]
    if passing:
        top = max(passing, key=lambda c: c.gain)
        return top.candidate, top
    return base, top


def decide(
    candidates: Sequence[C],
    rounds: Sequence[Mapping[C, float]],
    changes_results: Callable[[C], bool] = lambda c: False,
    *,
    tolerance_margin: float = TOLERANCE_MARGIN,
    exact_margin: float = EXACT_MARGIN,
) -> Decision[C]:
    """Choose among ``candidates`` (most exact first; those timed in no round are ignored) from the timed
    ``rounds`` (``[{candidate: seconds}, ...]``, one dict per interleaved round); see the module doc.

    ``changes_results(c)``: whether ``c`` gives results outside the tolerance of the first candidate's
    (e.g. bf16 against fp32); the first candidate is always the exact reference.
    Raises ValueError when no candidate was timed.
    """
    timed = [c for c in candidates if any(c in r for r in rounds)]
    if not timed:
        raise ValueError("decide needs at least one timed candidate")
    exact, *others = timed
    within = [c for c in others if not changes_results(c)]
    outside = [c for c in others if changes_results(c)]
    first = [_compare(rounds, exact, c, tolerance_margin, False) for c in within]
    choice, deciding_first = _best(exact, first)
    second = [_compare(rounds, choice, c, exact_margin, True) for c in outside]
    choice, deciding_second = _best(choice, second)
    deciding = tuple(c for c in (deciding_first, deciding_second) if c is not None)
    return Decision(choice, deciding, tuple(first + second))


def describe_decisions(decisions: Sequence[Mapping[str, Any]]) -> str:
    """``"; gains: fp32, channels_last +8.0 % +/- 2.1 % vs fp32 (taken), ..."``: the deciding comparisons
    of recorded decisions (:meth:`Decision.as_dict`), for a log line; empty without any."""

    def pct(v: float | None, sign: str = "+") -> str:
        return "?" if v is None else f"{100 * v:{sign}.1f} %"

    parts = [
        f"{c['candidate']} {pct(c['gain'])} +/- {pct(c['spread'], '')} vs {c['base']}"
        f" ({'taken' if c['passed'] else 'not taken'}{', marginal' if c['marginal'] else ''})"
        for d in decisions for c in d.get("deciding", [])
    ]  # fmt: skip
    return f"; gains: {'; '.join(parts)}" if parts else ""
