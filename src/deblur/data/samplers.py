"""Samplers that make training resumable at any step and distributed validation exact.

* :class:`EpochShuffleSampler` (training): a random order drawn from ``(seed, epoch)`` only, sharded across
  DDP ranks, yielding *draws* ``(index, draw_seed)``. The dataset seeds the sample's random crop and
  augmentation from ``draw_seed`` (see :meth:`deblur.data.base.PairDataset.__getitem__`), so what a sample
  looks like depends on ``(seed, epoch, index)`` only: not on ``data.num_workers``, the number of ranks or
  on whatever ran before. With a ``position`` source (the datamodule passes the trainer's loop progress)
  an epoch that is resumed mid-way skips the batches it already trained, without loading them.
* :class:`UnpaddedDistributedSampler` (evaluation): rank ``r`` of ``w`` gets indices ``r, r + w, r + 2w,
  ...`` with no padding, so a validation set whose size is not a multiple of ``w`` is scored with every
  sample once (``DistributedSampler`` repeats samples to even the shards out). Metrics reduce across
  ranks in torchmetrics, which handles uneven shards.

Both subclass ``DistributedSampler`` so that Lightning leaves them as they are under DDP (it only wraps
samplers that are not distributed ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized

import torch
from torch.utils.data import DistributedSampler

from deblur.utils.seeding import derive_seed

#: ``(index, draw_seed)``: what :class:`EpochShuffleSampler` yields and ``PairDataset`` accepts
Draw = tuple[int, int]

#: ``() -> (epoch, batches of that epoch already trained)``, or None outside training
PositionSource = Callable[[], "tuple[int, int] | None"]


def draw_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s random crop and augmentation in ``epoch`` (a 32-bit integer)."""
    return derive_seed(seed, epoch, index)


class EpochShuffleSampler(DistributedSampler):
    """Training order: a permutation of ``range(len(dataset))`` seeded by ``seed + epoch``, sharded.

    Rank ``r`` of ``w`` takes positions ``r, r + w, ...`` of the permutation cut to a multiple of ``w``
    (every rank gets ``len(dataset) // w`` draws; the tail of the permutation is left out, a different
    one every epoch). Yields :data:`Draw` tuples ``(index, draw_seed(seed, epoch, index))``.

    ``position`` (optional): called when an epoch's iteration starts; returns ``(epoch, done)``, the epoch
    to draw and the number of batches of ``batch_size`` it has already trained; the first ``done *
    batch_size`` draws are skipped. It overrides ``set_epoch`` (Lightning may create a worker iterator
    before it sets the epoch of a resumed run). ``len()`` is always the full epoch.
    """

    def __init__(
        self,
        dataset: Sized,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        batch_size: int = 1,
        position: PositionSource | None = None,
    ) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"EpochShuffleSampler: rank {rank} of {num_replicas} replicas is not valid")
        if len(dataset) < num_replicas:
            raise ValueError(
                f"EpochShuffleSampler: {len(dataset)} samples cannot be shared by {num_replicas} ranks"
            )
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = int(batch_size)
        self.position = position

    def order(self, epoch: int) -> list[int]:
        """The indices this rank draws in ``epoch``, in order (before any skip)."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        permutation = torch.randperm(len(self.dataset), generator=generator).tolist()
        kept = permutation[: self.num_samples * self.num_replicas]
        return kept[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[Draw]:
        epoch, done = self.epoch, 0
        where = self.position() if self.position is not None else None
        if where is not None:
            epoch, done = where
        for index in self.order(epoch)[done * self.batch_size :]:
            yield index, draw_seed(self.seed, epoch, index)

    def __len__(self) -> int:
        return self.num_samples


class UnpaddedDistributedSampler(DistributedSampler):
    """In-order shards without padding (evaluation only)."""

    def __init__(self, dataset: Sized, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.indices = list(range(rank, len(dataset), num_replicas))
        self.num_samples = len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples
