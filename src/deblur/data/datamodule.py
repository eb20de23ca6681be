"""The LightningDataModule: builds the configured dataset (``cfg.data``) and training augmentation
(``cfg.augment``) and serves loaders. Datasets follow :mod:`deblur.data.base`.

A training set too small for one full batch (the last incomplete batch is dropped) is refused at setup:
such a run would train 0 steps and still end "successfully".

With ``data.progressive`` set (:mod:`deblur.data.progressive`), training crops and batch sizes follow its
stages (``data.crop_size`` and ``data.batch_size`` are not used for training): the training set is built
with the largest stage crop (images smaller than it are refused at setup) and served by one loader whose
batches change size at the stages' steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from deblur.data.base import PairTransform
from deblur.data.on_disk import DATASET_BUILDERS
from deblur.data.progressive import DrawBatches, ProgressiveSampler, RunLayout, largest, parse_schedule
from deblur.data.samplers import EpochShuffleSampler, UnpaddedDistributedSampler
from deblur.data.validate import DatasetError


def _synthetic(cfg: dict[str, Any], split: str, transform: PairTransform | None) -> Dataset:
    from deblur.data.synthetic import BlurSpec, build_synthetic_dataset

    spec = BlurSpec() if cfg.get("noise_std") is None else BlurSpec(noise_std=cfg["noise_std"])
    train = split == "train"
    return build_synthetic_dataset(
        split,
        pairs_per_photo=cfg["pairs_per_photo"] if train else cfg["val_pairs_per_photo"],
        crop_size=cfg["crop_size"] if train else cfg.get("val_crop_size"),
        seed=cfg["seed"] if train else cfg["val_seed"],
        spec=spec,
        max_side=cfg.get("max_side"),
        transform=transform,
        repeats=cfg["repeats"] if train else 1,
    )


#: data.name -> builder(data_cfg, split, train_transform) -> Dataset
DATASETS: dict[str, Callable[[dict[str, Any], str, PairTransform | None], Dataset]] = {
    "synthetic": _synthetic,
    **DATASET_BUILDERS,  # gopro, hide, realblur_j, realblur_r, pairs, folder
}


class DeblurDataModule(L.LightningDataModule):
    """Train/val loaders for any dataset in :data:`DATASETS`; training pairs pass the augment pipeline."""

    def __init__(
        self, data: dict[str, Any], augment: dict[str, Any] | None = None, shuffle_seed: int = 0
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        name = data.get("name")
        if name not in DATASETS:
            raise ValueError(f"data.name={name!r} is not a known dataset; options: {sorted(DATASETS)}")
        self.cfg = data
        self.stages = parse_schedule(data.get("progressive"))  # None: fixed crop and batch size
        self.augment_cfg = augment or {"name": "none"}
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        build = DATASETS[self.cfg["name"]]
        if stage in (None, "fit") and self.train_set is None:
            from deblur.data.augment import make_pipeline

            train_set = self._build_train_set(build, make_pipeline(self.augment_cfg))
            self._check_one_batch(train_set)
            self.train_set = train_set
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = build(self.cfg, "val", None)

    def _build_train_set(self, build: Callable[..., Dataset], transform: PairTransform | None) -> Dataset:
        """The training set; with ``data.progressive``, built (and its image sizes checked) with the
        schedule's largest crop, an image too small for it named as too small for that stage's crop."""
        if self.stages is None:
            return build(self.cfg, "train", transform)
        index, crop = largest(self.stages, "crop_size")
        try:
            return build({**self.cfg, "crop_size": crop}, "train", transform)
        except ValueError as err:
            if "crop_size" not in str(err):
                raise
            where = f"data.progressive[{index}].crop_size={crop}, the schedule's largest crop"
            raise DatasetError(f"{err} (data.crop_size is {where})") from None

    def _check_one_batch(self, dataset: Dataset) -> None:
        """Raise :class:`DatasetError` naming the pair count and ``data.batch_size`` when ``dataset`` fills
        no full training batch on each rank."""
        trainer = getattr(self, "trainer", None)
        ranks = max(trainer.world_size, 1) if trainer is not None else 1
        batch, key = int(self.cfg["batch_size"]), "data.batch_size"
        if self.stages is not None:  # the largest batch of the schedule
            index, batch = largest(self.stages, "batch_size")
            key = f"data.progressive[{index}].batch_size"
        samples = len(dataset)
        if samples // ranks // batch > 0:
            return
        pairs = getattr(dataset, "pairs", None)
        repeats = int(getattr(dataset, "repeats", 1))
        count = len(pairs) if pairs is not None else samples
        what = f"{count} training pair(s)"
        if repeats > 1:
            what += f" x data.repeats={repeats} = {samples} samples"
        if self.cfg.get("on_bad_pair") == "skip":
            what += " (after data.on_bad_pair=skip left out the bad ones)"
        per_rank = f" on each of {ranks} devices" if ranks > 1 else ""
        root = f" (data.root={self.cfg['root']})" if self.cfg.get("root") else ""
        raise DatasetError(
            f"data={self.cfg['name']}: {what} fill no batch of {key}={batch}{per_rank}: training "
            f"would run 0 steps (an incomplete last batch is dropped). Lower {key}, raise "
            f"data.repeats, or add training pairs{root}."
        )

    def training_position(self) -> tuple[int, int] | None:
        """``(epoch, batches of it already trained)`` from the attached trainer's fit loop, or None without
        one. Read when an epoch's data iterator starts, also when Lightning creates it before restoring
        the epoch counters of a resumed run (the raw checkpointed progress is interpreted here: epoch =
        the epoch started last, done = the batches it processed; a finished epoch means the next one)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.train_set is None:
            return None
        fit_loop = trainer.fit_loop
        epoch = max(fit_loop.epoch_progress.current.started - 1, 0)
        done = fit_loop.epoch_loop.batch_progress.current.processed
        if done >= self._batches_per_epoch(trainer):
            return epoch + 1, 0
        return epoch, done

    def _batches_per_epoch(self, trainer: L.Trainer) -> int:
        """Training batches per epoch on one rank, after ``trainer.limit_train_batches``."""
        batch = self.cfg["batch_size"] if self.stages is None else self.stages[0].batch_size
        full = len(self.train_set) // max(trainer.world_size, 1) // batch
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            return min(full, limit)
        return int(full * (1.0 if limit is None else limit))

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        workers = self.cfg.get("num_workers", 0)
        trainer = getattr(self, "trainer", None)
        ranks, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = None
        if train:  # (shuffle_seed, epoch) order, per-draw seeds, resumable mid-epoch, sharded by rank
            seed = self.hparams.get("shuffle_seed", 0)
            sampler = EpochShuffleSampler(dataset, seed, ranks, rank, batch_size, self.training_position)
        elif ranks > 1:  # validation never padded across ranks
            sampler = UnpaddedDistributedSampler(dataset, ranks, rank)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=workers,
            pin_memory=self.cfg.get("pin_memory", False),
            persistent_workers=bool(self.cfg.get("persistent_workers", False)) and workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.stages is not None:
            return self._progressive_loader()
        return self._loader(self.train_set, self.cfg["batch_size"], train=True)

    def _progressive_loader(self) -> DataLoader:
        """One loader for every stage of ``data.progressive``: whole batches from :class:`ProgressiveSampler`
        (a ``DistributedSampler``: Lightning leaves it as it is under DDP), read by :class:`DrawBatches`."""
        trainer = getattr(self, "trainer", None)
        ranks, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

        def layout() -> RunLayout:
            if trainer is None:
                return RunLayout(len(sampler))
            return RunLayout(self._batches_per_epoch(trainer), int(trainer.accumulate_grad_batches))

        seed = self.hparams.get("shuffle_seed", 0)
        sampler = ProgressiveSampler(
            self.train_set, self.stages, seed, ranks, rank, self.training_position, layout
        )
        workers = self.cfg.get("num_workers", 0)
        return DataLoader(
            DrawBatches(self.train_set),
            batch_size=None,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.cfg.get("pin_memory", False),
            persistent_workers=bool(self.cfg.get("persistent_workers", False)) and workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.cfg.get("val_batch_size", 1), train=False)
