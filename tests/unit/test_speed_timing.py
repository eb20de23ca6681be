"""The one interleaved timing engine (deblur.speed.timing): the speed probe and deblur-bench call their
candidates in the same rotated order, and the bench's figures come from its rounds (a fake clock)."""

from __future__ import annotations

import time

import pytest
import torch

from deblur.speed.timing import Rounds, time_call, time_interleaved, time_rounds
from deblur.speed.trial import interleaved_probe

CPU = torch.device("cpu")
#: warm-ups in order, then round r starting from the r-th candidate
ROTATED = ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_the_probe_and_the_bench_interleave_alike():
    probe_calls: list[str] = []

    def time_once(name: str) -> float:
        probe_calls.append(name)
        return 1.0

    trial = interleaved_probe(["a", "b", "c"], time_once, rounds=3, budget_s=60.0)
    bench_calls: list[str] = []
    calls = {name: (lambda name=name: bench_calls.append(name)) for name in "abc"}
    timings = time_interleaved(calls, CPU, warmup=1, repeats=3)
    assert probe_calls == bench_calls == ROTATED
    assert len(trial.rounds) == 3 and all(t.runs == 3 for t in timings.values())


class FakeClock:
    """``time.perf_counter`` that moves only when a timed call ``advance``s it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def test_bench_figures_are_the_rounds_median_and_min(clock):
    durations = iter([9.0, 1.0, 3.0, 2.0, 4.0, 5.0])  # warm-up, then 5 rounds

    def call() -> str:
        clock.advance(next(durations))
        return "out"

    t = time_call(call, CPU, warmup=1, repeats=5, long_call_s=60.0)
    assert t.times == [1.0, 3.0, 2.0, 4.0, 5.0] and t.runs == 5
    assert (t.seconds, t.min_seconds, t.warmup_seconds, t.result) == (3.0, 1.0, 9.0, "out")


def test_a_long_first_call_gets_long_repeats_and_warmup_0_times_it(clock):
    durations = iter([6.0, 6.0, 6.0, 6.0])

    def call() -> None:
        clock.advance(next(durations))

    t = time_call(call, CPU, warmup=0, repeats=5, long_call_s=5.0, long_repeats=2)
    assert t.runs == 3 and t.warmup_seconds is None  # at least 3 rounds, the first call one of them
    assert len(list(durations)) == 1  # 3 calls made, not 5


class FakeMemory:
    entered: list[torch.device] = []

    def __init__(self, device: torch.device) -> None:
        self.device, self.mib, self.kind = device, 0.0, ""

    def __enter__(self) -> FakeMemory:
        FakeMemory.entered.append(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.mib, self.kind = 12.5, "fake"


def test_memory_is_measured_around_each_first_call_only():
    FakeMemory.entered = []
    timings = time_interleaved({"x": lambda: None, "y": lambda: None}, CPU, repeats=3, memory=FakeMemory)
    assert FakeMemory.entered == [CPU, CPU]
    assert all((t.peak_mib, t.memory_kind) == (12.5, "fake") for t in timings.values())


def test_the_engine_rejects_failing_candidates_only_when_asked():
    def time_once(name: str) -> float:
        if name == "broken":
            raise RuntimeError("no such kernel\nmore")
        return 1.0

    def two_rounds(r: int, record: Rounds[str]) -> list[str]:
        return ["ok", "broken"] if r < 2 else []

    record = time_rounds(["ok", "broken"], time_once, two_rounds, reject_errors=True)
    assert record.rejected == {"broken": "RuntimeError: no such kernel"}
    assert record.runs("ok") == [1.0, 1.0] and record.runs("broken") == []
    with pytest.raises(RuntimeError, match="no such kernel"):
        time_rounds(["ok", "broken"], time_once, two_rounds)
