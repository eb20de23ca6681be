"""Shared test settings: tiny threads budget, deterministic seeds."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
# the speed probe's cache: one file per test session, never the user's ~/.cache (subprocesses inherit it)
os.environ.setdefault(
    "DEBLUR_SPEED_CACHE", os.path.join(tempfile.mkdtemp(prefix="deblur-speed-cache-"), "speed.json")
)
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_hydra_config_left_behind():
    """A test that runs a command in-process leaves Hydra's global HydraConfig set; the next test would
    read its choices (model_preset) and its run mode. Each test starts without one."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
