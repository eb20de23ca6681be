"""Every experiment= preset runs (a fast_dev_run on the built-in data, at a tiny width on the CPU), not
only composes: the recipe's optimiser, schedule, augmentation and loss are wired together for real."""

from __future__ import annotations

import pytest

from deblur.paths import CONF_DIR
from deblur.training import train

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
#: what stays of a paper recipe on a CPU test: the built-in data, tiny crops and widths, fp32 on the CPU
ON_THE_CPU = [
    "data=synthetic", "data.crop_size=32", "data.val_crop_size=32", "data.batch_size=2", "data.max_side=96",
    "data.pairs_per_photo=1", "data.val_pairs_per_photo=1", "data.repeats=1", "debug=fdr",
    "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true", "trainer.benchmark=null",
]  # fmt: skip
TINY = {
    "msfs": ["model.width=8", "model.encoder_blocks=1", "model.latent_blocks=1", "model.decoder_blocks=1",
             "model.reduction=4"],
    "fddn": ["model.width=4", "model.num_fdb=1", "model.cca_reduction=4", "model.rcab_reduction=4",
             "loss.pretrained=false"],
    "nafnet": ["model=nafnet_small"],
}  # fmt: skip


def test_there_are_presets():
    assert {"msfs_gopro", "fddn_gopro", "nafnet_gopro"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_experiment_preset_trains_a_fast_dev_run(preset, compose_train):
    family = preset.split("_")[0]
    cfg = compose_train(f"experiment={preset}", *ON_THE_CPU, *TINY[family])
    assert cfg.model.name == family
    payload = train(cfg)
    assert payload["model"] == family and payload["global_step"] == 1


def test_nafnet_gopro_is_the_authors_recipe(compose_train):
    from deblur.config.checks import check_train_config
    from deblur.lit.optim import lr_factor_fn

    cfg = compose_train("experiment=nafnet_gopro", "data.root=/data")
    check_train_config(cfg)
    assert cfg.model.width == 32 and list(cfg.model.encoder_blocks) == [1, 1, 1, 28]
    assert cfg.loss.name == "psnr"
    optim = cfg.optim
    assert (optim.name, optim.lr, optim.weight_decay, list(optim.betas)) == ("adamw", 1e-3, 1e-3, [0.9, 0.9])
    factor, interval = lr_factor_fn(optim.scheduler, optim.lr, lambda: 1, lambda: 1)
    assert interval == "step" and factor(0) == 1.0
    assert factor(100_000) * optim.lr == pytest.approx((1e-3 + 1e-7) / 2)
    assert factor(200_000) * optim.lr == pytest.approx(1e-7)
    assert (cfg.data.crop_size, cfg.data.batch_size, cfg.trainer.max_steps) == (256, 32, 200_000)
    assert cfg.augment.name == "flip_rot"
