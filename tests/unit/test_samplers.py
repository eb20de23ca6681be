"""Training draws: order from (seed, epoch), sharding across ranks, mid-epoch skips, per-draw seeding of
crops and augmentation (independent of workers and of the global RNG), and the datamodule's reading of
Lightning's loop progress at a resume."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, DistributedSampler

from deblur.data.augment import make_pipeline
from deblur.data.base import InMemoryPairDataset
from deblur.data.datamodule import DeblurDataModule
from deblur.data.samplers import EpochShuffleSampler, draw_seed
from deblur.paths import CONF_DIR


def _pairs(count: int, size: int = 24) -> list:
    rng = np.random.default_rng(0)
    shape = (size, size, 3)
    return [
        (rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8), f"p{i}")
        for i in range(count)
    ]


def test_draws_are_a_seeded_permutation_with_per_draw_seeds():
    sampler = EpochShuffleSampler(range(10), seed=5)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10))
    assert all(s == draw_seed(5, 0, i) for i, s in first)
    assert list(EpochShuffleSampler(range(10), seed=5)) == first  # nothing but (seed, epoch) decides
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for i, _ in second] != [i for i, _ in first]
    assert draw_seed(5, 0, 3) != draw_seed(5, 1, 3) != draw_seed(6, 1, 3)
    assert isinstance(sampler, DistributedSampler)  # so Lightning does not wrap it under DDP


def test_ranks_get_disjoint_equal_shards_of_one_permutation():
    shards = [list(EpochShuffleSampler(range(11), seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    indices = [i for shard in shards for i, _ in shard]
    assert len(set(indices)) == 9  # disjoint; 2 of the 11 left out this epoch
    whole = EpochShuffleSampler(range(11), seed=1).order(0)
    assert [i for i, _ in shards[1]] == whole[:9][1::3]
    with pytest.raises(ValueError, match="rank 3 of 3"):
        EpochShuffleSampler(range(11), num_replicas=3, rank=3)


def test_position_source_skips_the_batches_already_trained_and_keeps_the_length():
    sampler = EpochShuffleSampler(range(12), seed=2, batch_size=3, position=lambda: (1, 2))
    assert [i for i, _ in sampler] == sampler.order(1)[6:]
    assert len(sampler) == 12
    sampler.position = lambda: None  # outside training: set_epoch decides
    assert [i for i, _ in sampler] == sampler.order(0)


def test_a_draw_fixes_crop_and_augmentation_whatever_the_global_rng():
    fddn = OmegaConf.load(CONF_DIR / "augment" / "fddn.yaml")  # the 11 transforms, scene and capture
    fddn.pop("defaults", None)
    pipeline = make_pipeline(fddn)
    dataset = InMemoryPairDataset(_pairs(2, 40), crop_size=16, random_crop=True, transform=pipeline)
    torch.manual_seed(0)
    np.random.seed(0)
    a = dataset[(1, 1234)]
    for _ in range(3):
        dataset[0]  # the stream path moves the global and the pipeline's generators
    torch.manual_seed(99)
    b = dataset[(1, 1234)]
    assert torch.equal(a["blurry"], b["blurry"]) and torch.equal(a["sharp"], b["sharp"])
    c = dataset[(1, 4321)]
    assert not torch.equal(a["blurry"], c["blurry"])


def test_batches_do_not_depend_on_the_number_of_workers():
    dataset = InMemoryPairDataset(
        _pairs(4), repeats=2, crop_size=16, random_crop=True, transform=make_pipeline({"name": "flip_rot",
        "scene": {"horizontal_flip": {"p": 0.5}, "vertical_flip": {"p": 0.5}}}))  # fmt: skip

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochShuffleSampler(dataset, seed=3)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=workers, drop_last=True)
        return [b["blurry"] for b in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 4 and all(torch.equal(x, y) for x, y in zip(serial, parallel, strict=True))


def _datamodule_at(epoch_started: int, batches_processed: int, limit=1.0, world_size=1):
    dm = DeblurDataModule(data={"name": "pairs", "batch_size": 2})
    dm.train_set = range(20)  # 10 batches per epoch on one rank
    loop = SimpleNamespace(
        epoch_progress=SimpleNamespace(current=SimpleNamespace(started=epoch_started)),
        epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=SimpleNamespace(processed=batches_processed))),
    )  # fmt: skip
    dm.trainer = SimpleNamespace(fit_loop=loop, limit_train_batches=limit, world_size=world_size)
    return dm


@pytest.mark.parametrize(
    ("started", "processed", "limit", "world", "expected"),
    [
        (0, 0, 1.0, 1, (0, 0)),  # a fresh run
        (2, 4, 1.0, 1, (1, 4)),  # stopped after 4 batches of epoch 1
        (2, 10, 1.0, 1, (2, 0)),  # stopped at the end of epoch 1: the next epoch, from its start
        (2, 3, 3, 1, (2, 0)),  # limit_train_batches=3: the epoch ended after 3
        (2, 3, 1.0, 2, (1, 3)),  # 2 ranks: 5 batches per rank and epoch
        (2, 5, 1.0, 2, (2, 0)),
    ],
)
def test_training_position_reads_the_loop_progress(started, processed, limit, world, expected):
    assert _datamodule_at(started, processed, limit, world).training_position() == expected


def test_no_position_without_a_trainer():
    dm = DeblurDataModule(data={"name": "pairs", "batch_size": 2})
    assert dm.training_position() is None
