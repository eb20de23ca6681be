"""Progressive patch training (data.progressive): the schedule's checks, the step -> stage and batch ->
stream mapping, the sampler's batches (sizes, crops, every sample once per pass, resumable anywhere) and
the datamodule's loader."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from deblur.config.checks import check_train_config
from deblur.data.base import InMemoryPairDataset
from deblur.data.datamodule import DeblurDataModule
from deblur.data.progressive import (
    DrawBatches,
    ProgressiveSampler,
    RunLayout,
    Stage,
    parse_schedule,
    progressive_record,
    schedule_problems,
    stage_at,
    stream_position,
)
from deblur.data.samplers import EpochShuffleSampler, draw_seed
from deblur.data.validate import DatasetError
from deblur.errors import UserError

RESTORMER = [
    {"step": 0, "crop_size": 128, "batch_size": 8},
    {"step": 92000, "crop_size": 160, "batch_size": 5},
    {"step": 156000, "crop_size": 192, "batch_size": 4},
    {"step": 204000, "crop_size": 256, "batch_size": 2},
    {"step": 240000, "crop_size": 320, "batch_size": 1},
    {"step": 276000, "crop_size": 384, "batch_size": 1},
]
FIRST = RESTORMER[0]
STAGES = [Stage(0, 16, 2), Stage(3, 24, 1), Stage(5, 20, 3)]


def _stage(step, crop_size, batch_size) -> dict:
    return {"step": step, "crop_size": crop_size, "batch_size": batch_size}


def test_a_good_schedule_passes_and_parses():
    assert schedule_problems(None) == [] and parse_schedule(None) is None
    assert schedule_problems(RESTORMER) == []
    stages = parse_schedule(RESTORMER)
    assert stages[1] == Stage(92000, 160, 5)
    assert stage_at(stages, 0) == stage_at(stages, 91999) == stages[0]
    assert stage_at(stages, 92000) == stages[1] and stage_at(stages, 10**6) == stages[5]


@pytest.mark.parametrize(
    ("schedule", "line"),
    [
        ([{"step": 1, "crop_size": 8, "batch_size": 1}], "data.progressive[0].step=1: 0 (the first stage"),
        ([*RESTORMER[:2], {"step": 92000, "crop_size": 8, "batch_size": 1}],
         "data.progressive[2].step=92000: an optimizer step after data.progressive[1].step=92000"),
        ([FIRST, _stage(-3, 8, 1)], "data.progressive[1].step=-3: an integer"),
        ([FIRST, _stage(5, 0, 1)], "data.progressive[1].crop_size=0: an integer >= 1"),
        ([FIRST, _stage(5, 8, 0)], "data.progressive[1].batch_size=0: an integer >= 1"),
        ([{"step": 0, "crop_size": "big", "batch_size": 1}], "data.progressive[0].crop_size='big'"),
        ([{"step": 0, "crop_size": 8.5, "batch_size": 1}], "data.progressive[0].crop_size=8.5"),
        ([{"step": 0, "crop_size": 8, "batch_size": True}], "data.progressive[0].batch_size=True"),
        ([{"step": 0, "crop_size": 8}], "data.progressive[0].batch_size is missing"),
        ([{**_stage(0, 8, 1), "crop": 3}], "data.progressive[0].crop=3: not a key of a stage"),
        ([5], "data.progressive[0]=5: a stage"),
        ([], "data.progressive=[]: a list of stages"),
        ("128", "data.progressive='128': a list of stages"),
    ],
)  # fmt: skip
def test_bad_values_name_the_stage_and_key(schedule, line):
    problems = schedule_problems(schedule)
    assert len(problems) == 1 and problems[0].startswith(line), problems
    with pytest.raises(UserError, match=line.split(":")[0].replace("[", r"\[").replace("]", r"\]")):
        parse_schedule(schedule)


def test_the_train_config_check_reports_them_with_the_other_data_keys():
    cfg = {"data": {"batch_size": 0, "progressive": [{"step": 0, "crop_size": 0, "batch_size": 2}]}}
    with pytest.raises(UserError) as caught:
        check_train_config(cfg)
    assert "data.batch_size=0" in str(caught.value)
    assert "data.progressive[0].crop_size=0: an integer >= 1 (pixels)" in str(caught.value)


def _brute_force_positions(stages, layout, epochs):
    """Stream position of every batch, counted batch by batch (the closed form's reference)."""
    positions, position = [], 0
    for epoch in range(epochs):
        for batch in range(layout.epoch_batches):
            positions.append(position)
            position += stage_at(stages, layout.step(epoch, batch)).batch_size
    return positions


@pytest.mark.parametrize(("epoch_batches", "accumulate"), [(3, 1), (4, 1), (5, 2), (6, 4), (1, 3)])
def test_stream_position_counts_every_earlier_batch(epoch_batches, accumulate):
    layout = RunLayout(epoch_batches, accumulate)
    expected = _brute_force_positions(STAGES, layout, epochs=5)
    assert [stream_position(STAGES, layout, b) for b in range(len(expected))] == expected
    # Lightning steps the optimizer every `accumulate` batches and on each epoch's last batch
    assert layout.step(1, 0) == layout.epoch_steps == -(-epoch_batches // accumulate)


def _dataset(count: int, size: int = 32) -> InMemoryPairDataset:
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),) * 2 + (f"p{i}",) for i in range(count)]
    return InMemoryPairDataset(pairs, crop_size=8, random_crop=True)


def _run(sampler: ProgressiveSampler, epochs: int) -> list[list[tuple[int, int, int]]]:
    batches = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches += list(sampler)
    return batches


def test_batches_follow_the_stages_and_use_each_sample_once_per_pass():
    sampler = ProgressiveSampler(range(7), STAGES, seed=4)  # 3 batches of 2 per epoch
    assert len(sampler) == 3 and isinstance(sampler, DistributedSampler)  # Lightning leaves it under DDP
    batches = _run(sampler, epochs=3)
    assert [len(b) for b in batches] == [2, 2, 2, 1, 1, 3, 3, 3, 3]
    assert [b[0][2] for b in batches] == [16, 16, 16, 24, 24, 20, 20, 20, 20]
    draws = [d for b in batches for d in b]  # 20 draws: passes of 7 from permutations (seed, pass)
    plain = EpochShuffleSampler(range(7), seed=4)
    for number in range(2):
        assert [i for i, _, _ in draws[7 * number : 7 * number + 7]] == plain.order(number)
    assert all(s == draw_seed(4, q // 7, i) for q, (i, s, _) in enumerate(draws))


def test_a_resumed_epoch_continues_with_the_batches_of_an_uninterrupted_run():
    layout = RunLayout(3, 1)
    full = _run(ProgressiveSampler(range(7), STAGES, seed=4, layout=lambda: layout), epochs=4)
    for epoch in range(4):
        for done in range(3):
            resumed = ProgressiveSampler(range(7), STAGES, seed=4, position=lambda e=epoch, d=done: (e, d),
                                         layout=lambda: layout)  # fmt: skip
            assert list(resumed) == full[3 * epoch + done : 3 * epoch + 3], (epoch, done)


def test_limited_epochs_and_accumulation_map_batches_to_their_optimizer_step():
    # 2 batches per epoch (limit_train_batches), an optimizer step every 2 batches: epoch e = step e
    layout = RunLayout(2, 2)
    batches = _run(ProgressiveSampler(range(9), STAGES, seed=0, layout=lambda: layout), epochs=6)
    assert [len(b) for b in batches] == [2] * 6 + [1] * 4 + [3] * 2


def test_ranks_draw_disjoint_shards():
    shards = [_run(ProgressiveSampler(range(8), STAGES, num_replicas=2, rank=r), epochs=1) for r in range(2)]
    indices = [[i for b in shard for i, _, _ in b] for shard in shards]
    assert len(indices[0]) == len(indices[1]) == 4 and not set(indices[0]) & set(indices[1])


def test_draw_batches_crop_each_batch_to_its_stage():
    dataset = _dataset(7)
    sampler = ProgressiveSampler(dataset, STAGES, seed=1)
    batches = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        loader = DataLoader(DrawBatches(dataset), batch_size=None, sampler=sampler)
        batches += [tuple(b["blurry"].shape) for b in loader]
    assert batches[:6] == [(2, 3, 16, 16)] * 3 + [(1, 3, 24, 24)] * 2 + [(3, 3, 20, 20)]
    one = dataset[(2, 77, 24)]
    assert one["blurry"].shape == (3, 24, 24) and torch.equal(one["blurry"], dataset[(2, 77, 24)]["blurry"])


def _datamodule(stages, pairs: int, world_size: int = 1) -> DeblurDataModule:
    dm = DeblurDataModule(data={"name": "pairs", "batch_size": 4, "progressive": stages})
    dm.train_set = _dataset(pairs)
    loop = SimpleNamespace(
        epoch_progress=SimpleNamespace(current=SimpleNamespace(started=1)),
        epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=SimpleNamespace(processed=0))),
    )
    dm.trainer = SimpleNamespace(fit_loop=loop, limit_train_batches=1.0, world_size=world_size, global_rank=0,
                                 accumulate_grad_batches=1)  # fmt: skip
    return dm


def test_the_datamodule_serves_the_stages_from_one_loader():
    schedule = [s._asdict() for s in STAGES]
    dm = _datamodule(schedule, pairs=7)
    loader = dm.train_dataloader()
    assert len(loader) == 3  # epoch = one pass at the first stage's batch size (7 // 2), not data.batch_size
    assert [tuple(b["blurry"].shape) for b in loader] == [(2, 3, 16, 16)] * 3


def test_the_largest_batch_must_fit_each_rank_naming_its_stage():
    dm = _datamodule([s._asdict() for s in STAGES], pairs=5, world_size=2)
    with pytest.raises(DatasetError, match=r"data.progressive\[2\].batch_size=3 on each of 2 devices"):
        dm._check_one_batch(dm.train_set)


def test_metrics_record_the_stages_and_the_last_one_trained():
    schedule = [s._asdict() for s in STAGES]
    assert progressive_record({"progressive": None}, 10) == {}
    record = progressive_record({"progressive": schedule}, 5)["progressive"]  # steps 0..4 trained
    assert record == {"stages": schedule, "stage_at_end": 1, "crop_size": 24, "batch_size": 1}


def test_an_image_smaller_than_the_largest_stage_crop_is_refused_at_setup_naming_the_stage():
    data = {"name": "synthetic", "crop_size": 32, "val_crop_size": 32, "batch_size": 2, "pairs_per_photo": 1,
            "val_pairs_per_photo": 1, "max_side": 96, "repeats": 1, "seed": 0, "val_seed": 1,
            "progressive": [_stage(0, 32, 2), _stage(9, 80, 1)]}  # fmt: skip
    dm = DeblurDataModule(data=data)
    stage = r"data.progressive\[1\].crop_size=80, the schedule's largest crop"
    with pytest.raises(DatasetError, match=rf"crop_size=80 is larger than the train pair .*{stage}"):
        dm.setup("fit")
