"""Learning-rate schedules of the optim group: the papers' readings, checked on hand values."""

import math

import pytest
import torch

from deblur.lit.optim import build_optimizer, lr_factor_fn


def _factor(cfg, base_lr=1e-3, total=100, per_epoch=10):
    fn, interval = lr_factor_fn(cfg, base_lr, lambda: total, lambda: per_epoch)
    return fn, interval


def test_msfs_step_schedule_halves_every_500_epochs():
    fn, interval = _factor({"name": "step", "step_size": 500, "gamma": 0.5})
    assert interval == "epoch"
    assert [fn(e) for e in (0, 499, 500, 999, 1000, 2999)] == [1, 1, 0.5, 0.5, 0.25, 0.5**5]


def test_fddn_linear_decrement_subtracts_per_step_after_start_epoch():
    cfg = {"name": "linear_decrement", "decrement": 1e-7, "start_epoch": 500, "min_lr": 1e-6}
    fn, interval = _factor(cfg, base_lr=1e-3, per_epoch=10)
    assert interval == "step"
    start = 500 * 10
    assert fn(start) == 1.0 and fn(start - 1) == 1.0
    assert fn(start + 1000) * 1e-3 == pytest.approx(1e-3 - 1000 * 1e-7)
    assert fn(start + 10**7) * 1e-3 == pytest.approx(1e-6)  # floored at min_lr


def test_cosine_warms_up_then_decays_to_min_lr():
    fn, _ = _factor({"name": "cosine", "warmup_steps": 10, "min_lr": 1e-5}, base_lr=1e-3, total=110)
    assert fn(0) == pytest.approx(0.1) and fn(9) == pytest.approx(1.0)
    assert fn(60) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert fn(110) == pytest.approx(0.01)


def test_unknown_names_list_the_options():
    with pytest.raises(ValueError, match="linear_decrement"):
        _factor({"name": "poly"})
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "sgd", "lr": 0.1})


def test_adam_uses_the_configured_betas():
    opt = build_optimizer(
        [torch.nn.Parameter(torch.zeros(1))], {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.9]}
    )
    assert opt.param_groups[0]["betas"] == (0.9, 0.9) and opt.param_groups[0]["lr"] == 1e-4
