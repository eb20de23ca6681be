"""Progressive patch training (``data.progressive``): crop and batch size change at given optimizer steps.

The schedule is a list of stages, each ``{step, crop_size, batch_size}``: from optimizer step ``step`` on
(``trainer.global_step`` while the batch is trained), training batches are ``batch_size`` random crops of
``crop_size`` pixels (``batch_size`` per device, as ``data.batch_size``). The first stage starts at step 0
and steps increase strictly. Restormer's recipe (iterations 92k, 64k, 48k, 36k, 36k, 24k with patches 128
to 384 and batches 8, 5, 4, 2, 1, 1 per GPU) is ``[{step: 0, crop_size: 128, batch_size: 8}, {step: 92000,
crop_size: 160, batch_size: 5}, ...]``.

How the loader follows the steps without restarting (no dataloader reload, no epoch restart):

* :class:`ProgressiveSampler` yields whole batches: lists of draws ``(index, draw_seed, crop_size)``; the
  dataset (:class:`DrawBatches` over a :class:`deblur.data.base.PairDataset`) loads and stacks them, so
  one DataLoader serves every stage, with workers prefetching ahead: each batch's stage is computed from
  its position in the run, never read from the trainer while it is loaded.
* Training samples form one stream per rank: pass ``p`` is the rank's share of the permutation drawn
  from ``(seed, p)`` (as :class:`deblur.data.samplers.EpochShuffleSampler` draws epoch ``p``), and the
  batches take their samples from the stream one after the other, whatever their size. Every sample is
  used once per pass; a batch may straddle two passes. The sample at stream position ``q`` depends on
  ``(seed, q)`` only, and the stream position of a batch on the schedule and the batch's number in the
  run, so a resumed run (its position read from the trainer's loop progress, as for the plain sampler)
  draws exactly the batches an uninterrupted run draws.
* An *epoch* of a progressive run is a fixed number of batches (the batches of one pass at the first
  stage's batch size): Lightning's epoch length, validation interval and progress bar stay as for a plain
  run. With a smaller batch size later, an epoch covers less than a pass (the stream goes on across epochs).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from typing import Any, NamedTuple

from torch.utils.data import Dataset, default_collate

from deblur.data.samplers import EpochShuffleSampler, PositionSource, draw_seed

#: the keys of one stage
STAGE_KEYS = ("step", "crop_size", "batch_size")

#: ``(index, draw_seed, crop_size)``: what :class:`ProgressiveSampler` yields per sample
CropDraw = tuple[int, int, int]


class Stage(NamedTuple):
    """From optimizer step ``step`` on: ``batch_size`` crops of ``crop_size`` x ``crop_size`` per device."""

    step: int
    crop_size: int
    batch_size: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def schedule_problems(value: Any, prefix: str = "data.progressive") -> list[str]:
    """``key=value: expectation`` lines for a bad ``data.progressive`` (empty when it is good or null).

    Each stage must be a mapping with exactly ``step``, ``crop_size``, ``batch_size``: integers, steps
    strictly increasing from 0, crop and batch sizes >= 1. Problems name ``data.progressive[i].<key>``."""
    if value is None:
        return []
    example = "[{step: 0, crop_size: 128, batch_size: 8}, {step: 92000, crop_size: 160, batch_size: 5}]"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        stages = "a list of stages {step, crop_size, batch_size}"
        return [f"{prefix}={_shown(value)}: {stages}, e.g. {example}, or null (off)"]
    lines: list[str] = []
    previous: int | None = None
    for i, stage in enumerate(value):
        at = f"{prefix}[{i}]"
        if not isinstance(stage, Mapping):
            lines.append(f"{at}={_shown(stage)}: a stage {{step: N, crop_size: N, batch_size: N}}")
            previous = None
            continue
        for key in sorted(set(stage) - set(STAGE_KEYS)):
            keys = ", ".join(STAGE_KEYS)
            lines.append(f"{at}.{key}={_shown(stage[key])}: not a key of a stage; keys: {keys}")
        for key in STAGE_KEYS:
            if key not in stage or stage[key] in (None, "???"):
                lines.append(f"{at}.{key} is missing: every stage sets {', '.join(STAGE_KEYS)}")
        step = stage.get("step")
        if "step" in stage and step not in (None, "???"):
            if i == 0 and step != 0:
                lines.append(f"{at}.step={_shown(step)}: 0 (the first stage starts the run)")
            elif not _is_int(step) or step < 0:
                lines.append(f"{at}.step={_shown(step)}: an integer >= 0 (an optimizer step)")
            elif previous is not None and step <= previous:
                lines.append(f"{at}.step={step}: an optimizer step after {prefix}[{i - 1}].step={previous}")
        previous = step if _is_int(step) else None
        for key, what in (("crop_size", "pixels"), ("batch_size", "samples per device")):
            size = stage.get(key)
            if key in stage and size not in (None, "???") and (not _is_int(size) or size < 1):
                lines.append(f"{at}.{key}={_shown(size)}: an integer >= 1 ({what})")
    return lines


def config_problems(cfg: Any) -> list[str]:
    """The problem lines of a composed ``deblur-train`` config's ``data.progressive``
    (:func:`schedule_problems`); declared as a config check in :mod:`deblur.components`."""
    return schedule_problems((cfg.get("data") or {}).get("progressive"))


def parse_schedule(value: Any) -> list[Stage] | None:
    """The stages of ``data.progressive`` (None when null). Raises ``UserError`` listing its problems."""
    if value is None:
        return None
    problems = schedule_problems(value)
    if problems:
        from deblur.errors import UserError

        raise UserError("\n".join(problems))
    return [Stage(int(s["step"]), int(s["crop_size"]), int(s["batch_size"])) for s in value]


def stage_index(stages: Sequence[Stage], step: int) -> int:
    """The index of the stage optimizer step ``step`` trains in (the last one starting at or before it)."""
    return bisect.bisect_right([s.step for s in stages], step) - 1


def stage_at(stages: Sequence[Stage], step: int) -> Stage:
    """The stage optimizer step ``step`` trains in."""
    return stages[stage_index(stages, step)]


def largest(stages: Sequence[Stage], key: str) -> tuple[int, int]:
    """``(index, value)`` of the stage with the largest ``crop_size`` / ``batch_size`` (the first such)."""
    values = [getattr(s, key) for s in stages]
    index = values.index(max(values))
    return index, values[index]


class RunLayout(NamedTuple):
    """How the run's batches map to optimizer steps: ``epoch_batches`` batches per epoch (after
    ``trainer.limit_train_batches``), an optimizer step every ``accumulate`` batches and at the end of
    each epoch (as Lightning steps on an epoch's last, possibly incomplete, accumulation)."""

    epoch_batches: int
    accumulate: int = 1

    @property
    def epoch_steps(self) -> int:
        return -(-self.epoch_batches // self.accumulate)

    def step(self, epoch: int, batch: int) -> int:
        """The optimizer step trained by batch ``batch`` of ``epoch``."""
        return epoch * self.epoch_steps + batch // self.accumulate

    def batches_before(self, step: int) -> int:
        """Batches of the run trained before optimizer step ``step``'s first batch."""
        epochs, rest = divmod(step, self.epoch_steps)
        return epochs * self.epoch_batches + rest * self.accumulate


def stream_position(stages: Sequence[Stage], layout: RunLayout, batches: int) -> int:
    """Samples (per rank) the first ``batches`` batches of the run take from the stream."""
    total = 0
    for i, stage in enumerate(stages):
        start = min(layout.batches_before(stage.step), batches)
        end = batches if i + 1 == len(stages) else min(layout.batches_before(stages[i + 1].step), batches)
        total += stage.batch_size * max(end - start, 0)
    return total


class ProgressiveSampler(EpochShuffleSampler):
    """Training batches of the size and crop of their step's stage: yields lists of :data:`CropDraw`.

    ``len()`` is the batches of one epoch (one pass at the first stage's batch size); ``layout`` (called
    when an epoch's iteration starts; default: ``len()`` batches per epoch, no accumulation) says how the
    run's batches map to optimizer steps; ``position`` as for :class:`EpochShuffleSampler`.
    """

    def __init__(
        self,
        dataset: Sized,
        stages: Sequence[Stage],
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        position: PositionSource | None = None,
        layout: Callable[[], RunLayout] | None = None,
    ) -> None:
        super().__init__(dataset, seed, num_replicas, rank, stages[0].batch_size, position)
        self.stages = list(stages)
        self.layout = layout
        self._pass: tuple[int, list[int]] = (-1, [])

    def _draw(self, position: int, crop_size: int) -> CropDraw:
        """The sample at stream ``position`` of this rank, cropped to ``crop_size``."""
        number, offset = divmod(position, self.num_samples)
        if self._pass[0] != number:
            self._pass = (number, self.order(number))
        index = self._pass[1][offset]
        return index, draw_seed(self.seed, number, index), crop_size

    def __iter__(self) -> Iterator[list[CropDraw]]:  # type: ignore[override]
        epoch, done = self.epoch, 0
        where = self.position() if self.position is not None else None
        if where is not None:
            epoch, done = where
        layout = self.layout() if self.layout is not None else RunLayout(len(self))
        first = epoch * layout.epoch_batches
        position = stream_position(self.stages, layout, first + done)
        for batch in range(done, layout.epoch_batches):
            stage = stage_at(self.stages, layout.step(epoch, batch))
            yield [self._draw(position + k, stage.crop_size) for k in range(stage.batch_size)]
            position += stage.batch_size

    def __len__(self) -> int:
        return self.num_samples // self.batch_size


class DrawBatches(Dataset):
    """``dataset`` read a batch at a time: item = a list of draws -> the collated batch (each draw passed
    to ``dataset[draw]``; a :class:`deblur.data.base.PairDataset` crops a ``(index, seed, crop_size)``
    draw to its ``crop_size``). Used with ``DataLoader(batch_size=None, sampler=ProgressiveSampler)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, draws: list[CropDraw]) -> dict[str, Any]:
        return default_collate([self.dataset[draw] for draw in draws])


def progressive_record(data: Mapping[str, Any], step: int) -> dict[str, Any]:
    """``{"progressive": {"stages": [...], "stage_at_end": i, "crop_size": c, "batch_size": b}}`` for a
    run that ended at optimizer step ``step`` (recorded in metrics.json); ``{}`` when ``data.progressive``
    is null."""
    stages = parse_schedule(data.get("progressive"))
    if stages is None:
        return {}
    # the last batch trained belongs to step - 1
    index = stage_index(stages, max(step - 1, 0))
    return {
        "progressive": {
            "stages": [s._asdict() for s in stages],
            "stage_at_end": index,
            "crop_size": stages[index].crop_size,
            "batch_size": stages[index].batch_size,
        }
    }
