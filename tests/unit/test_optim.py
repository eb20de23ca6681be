"""Learning-rate schedules of the optim group: the papers' readings, checked on hand values."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from deblur.lit.optim import build_optimizer, lr_curve, lr_factor_fn
from deblur.paths import CONF_DIR


def _factor(cfg, base_lr=1e-3, total=100, per_epoch=10):
    fn, interval = lr_factor_fn(cfg, base_lr, lambda: total, lambda: per_epoch)
    return fn, interval


def test_msfs_step_schedule_halves_every_500_epochs():
    fn, interval = _factor({"name": "step", "step_size": 500, "gamma": 0.5})
    assert interval == "epoch"
    assert [fn(e) for e in (0, 499, 500, 999, 1000, 2999)] == [1, 1, 0.5, 0.5, 0.25, 0.5**5]


def _preset(name: str) -> dict:
    node = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "optim" / f"{name}.yaml"), resolve=True)
    node.pop("defaults", None)
    return node


GOPRO_STEPS = 2103 // 4  # GoPro's training pairs at batch 4, last incomplete batch dropped


def test_fddn_default_is_linear_from_epoch_500_to_1e_7_at_epoch_2500():
    optim = _preset("fddn")
    fn, interval = _factor(optim["scheduler"], base_lr=optim["lr"], per_epoch=GOPRO_STEPS)
    assert interval == "step" and optim["lr"] == 1e-3

    def lr(epoch: float) -> float:
        return 1e-3 * fn(round(epoch * GOPRO_STEPS))

    assert lr(0) == lr(250) == lr(499.99) == lr(500) == 1e-3  # constant before epoch 500
    assert lr(1500) == pytest.approx((1e-3 + 1e-7) / 2, rel=1e-9)  # 5.0005e-4, half way
    assert lr(1000) == pytest.approx(1e-3 - 0.25 * (1e-3 - 1e-7), rel=1e-9)
    assert lr(2500) == pytest.approx(1e-7, rel=1e-9)
    assert lr(3000) == pytest.approx(1e-7, rel=1e-9)  # held at min_lr after end_epoch
    # updated at every step, not per epoch
    assert fn(1500 * GOPRO_STEPS + 1) < fn(1500 * GOPRO_STEPS)


def test_linear_without_end_epoch_ends_with_the_run():
    cfg = {"name": "linear", "start_epoch": 2, "end_epoch": None, "min_lr": 0.0}
    fn, _ = _factor(cfg, base_lr=1.0, total=100, per_epoch=10)  # decays over steps 20 .. 100
    assert fn(20) == 1.0 and fn(60) == pytest.approx(0.5) and fn(100) == 0.0
    with pytest.raises(ValueError, match="optim.scheduler.end_epoch"):
        _factor({"name": "linear", "start_epoch": 500, "end_epoch": 500})


def test_fddn_literal_subtracts_1e_7_per_step_after_epoch_500_floored():
    optim = _preset("fddn_literal")
    fn, interval = _factor(optim["scheduler"], base_lr=optim["lr"], per_epoch=GOPRO_STEPS)
    assert interval == "step"
    start = 500 * GOPRO_STEPS
    assert fn(start) == 1.0 and fn(start - 1) == 1.0
    for steps in (1, 1000, 5000):
        assert fn(start + steps) * 1e-3 == pytest.approx(1e-3 - 1e-7 * steps)
    # the floor (min_lr 1e-6) is reached after (1e-3 - 1e-6) / 1e-7 = 9990 steps, ~19 epochs
    assert fn(start + 9990) * 1e-3 == pytest.approx(1e-6)
    assert fn(start + 10**7) * 1e-3 == pytest.approx(1e-6)


def test_lr_curve_samples_the_schedule():
    optim = _preset("fddn")
    curve = lr_curve(optim, epochs=2500, steps_per_epoch=GOPRO_STEPS, every=GOPRO_STEPS)
    assert len(curve) == 2500 and curve[0] == curve[500] == 1e-3
    assert curve[1500] == pytest.approx(5.0005e-4)
    assert lr_curve({"lr": 1.0, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}}, 2, 3) == [
        1.0,
        1.0,
        1.0,
        0.5,
        0.5,
        0.5,
    ]


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
