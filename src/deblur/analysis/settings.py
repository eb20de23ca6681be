"""Settings of a frequency-analysis run: the ``analysis`` node of ``conf/analyze.yaml`` (typed schema)."""

from __future__ import annotations

from dataclasses import dataclass

from deblur.analysis.frequency import FrequencyConfig
from deblur.config.registry import register_schema


@dataclass
class AnalyzeSettings(FrequencyConfig):
    """The ``analysis`` node of ``conf/analyze.yaml``: :class:`FrequencyConfig` plus how to run it.

    batch_size: images per vectorised step (and per network forward).
    num_workers: DataLoader workers reading the dataset (null: ``data.num_workers``).
    max_images: analyse only N pairs (null: all), one pair of every source photo before a second pair of
        any (:func:`deblur.data.base.distinct_first`): N distinct photos where the split has them. Fewer
        than :data:`deblur.analysis.sample_size.MIN_DISTINCT_IMAGES` (16) distinct photos are flagged.
    crop_size: training split only: crop side, cropped as the dataset crops training pairs (null:
        whole images); the validation split keeps ``data.val_crop_size``.
    patch_index, patch_size: the sample and centre-crop side shown in Fig. 1.
    """

    batch_size: int = 8
    num_workers: int | None = None
    max_images: int | None = None
    crop_size: int | None = None
    patch_index: int = 0
    patch_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "patch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"analysis.{name} must be >= 1, got {getattr(self, name)}")
        if (self.num_workers is not None and self.num_workers < 0) or self.patch_index < 0:
            raise ValueError("analysis.num_workers and analysis.patch_index must be >= 0")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"analysis.max_images must be >= 1 or null, got {self.max_images}")


register_schema("analysis", "analysis_schema", AnalyzeSettings)  # the types of deblur-analyze's analysis.*
