"""Compose the real config tree in-process (no subprocess) for fast end-to-end checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from deblur.config import register_configs
from deblur.paths import CONF_DIR
from tests.tiny import TINY_MSFS, model_overrides

#: overrides that make a training run tiny: small crops, few pairs, no workers
TINY_TRAIN = [
    *model_overrides(TINY_MSFS),
    "data.crop_size=32",
    "data.val_crop_size=32",
    "data.pairs_per_photo=1",
    "data.val_pairs_per_photo=1",
    "data.max_side=96",
    "data.repeats=1",
    "data.batch_size=2",
    "data.val_batch_size=2",
]


@pytest.fixture
def compose_train(tmp_path) -> Callable[..., DictConfig]:
    """compose_train(*overrides, config_name="train") -> the composed config, writing under tmp_path."""
    register_configs()

    def _compose(*overrides: str, config_name: str = "train") -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=[f"paths.output_dir={tmp_path}", *overrides])

    return _compose
