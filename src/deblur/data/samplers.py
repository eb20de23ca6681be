"""Samplers that make runs resumable and distributed validation exact.

* :class:`EpochShuffleSampler`: a random order drawn from ``(seed, epoch)`` only, so a run resumed at an
  epoch boundary sees the same order as an uninterrupted run (the default ``RandomSampler`` draws its order
  from the global RNG, i.e. from whatever happened before).
* :class:`UnpaddedDistributedSampler`: rank ``r`` of ``w`` gets indices ``r, r + w, r + 2w, ...`` with no
  padding, so a validation set whose size is not a multiple of ``w`` is scored with every sample once
  (``DistributedSampler`` repeats samples to even the shards out). Metrics reduce across ranks in
  torchmetrics, which handles uneven shards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import DistributedSampler, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(len(data_source))`` seeded by ``seed + epoch`` (Lightning calls
    ``set_epoch`` at the start of every epoch, also after a resume)."""

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        self.data_source = data_source
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())

    def __len__(self) -> int:
        return len(self.data_source)


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
