"""The config tree composes for every option and rejects bad input with a message naming the key."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ValidationError

from deblur.config.choices import check_group_choices
from deblur.models.build import build_model
from deblur.paths import CONF_DIR

MSFS_ABLATIONS = ["msfs/full", "msfs/no_fsm", "msfs/no_csffm", "msfs/no_clm", "msfs/no_consistency"]


def test_default_is_msfs_small_on_the_builtin_dataset(compose_train):
    cfg = compose_train()
    assert cfg.model.name == "msfs" and cfg.loss.name == "msfs" and cfg.data.name == "synthetic"
    assert cfg.logger.csv._target_.endswith("CSVLogger")
    assert cfg.loss.lambda_high == 0.005 and cfg.loss.lambda_low == 0.005


@pytest.mark.parametrize(
    "ablation, fsm, csffm, lam_high, lam_low",
    [
        ("msfs/full", True, True, 0.005, 0.005),
        ("msfs/no_fsm", False, True, 0.0, 0.0),
        ("msfs/no_csffm", True, False, 0.005, 0.005),
        ("msfs/no_clm", True, True, 0.0, 0.005),
        ("msfs/no_consistency", True, True, 0.005, 0.0),
    ],
)
def test_table4_ablations_set_the_toggles(compose_train, ablation, fsm, csffm, lam_high, lam_low):
    cfg = compose_train(f"ablation={ablation}")
    assert (cfg.model.use_fsm, cfg.model.use_csffm) == (fsm, csffm)
    assert (cfg.loss.lambda_high, cfg.loss.lambda_low) == (lam_high, lam_low)
    assert cfg.ablation_name == ablation


def test_wrong_type_names_the_key(compose_train):
    with pytest.raises(ConfigCompositionException) as err:
        compose_train("model.width=abc")
    cause = err.value.__cause__
    assert isinstance(cause, ValidationError) and "model.width" in str(cause)


def test_trainer_and_data_types_are_checked(compose_train):
    with pytest.raises(ConfigCompositionException) as err:
        compose_train("data.batch_size=four")
    assert "data.batch_size" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose_train("trainer.max_steps=many")
    assert "trainer.max_steps" in str(err.value.__cause__)


def test_unknown_model_or_ablation_lists_the_options(compose_train):
    with pytest.raises(MissingConfigException) as err:
        compose_train("model=msfs_huge")
    assert "msfs_small" in str(err.value)
    # nested groups: Hydra names no options, deblur-train's pre-check lists them all
    with pytest.raises(ValueError) as err:
        check_group_choices(["seed=1", "-m", "ablation=msfs/full,msfs/no_everything"], CONF_DIR)
    message = str(err.value)
    assert "msfs/no_everything" in message and "msfs/no_csffm" in message and "fddn/no_fsb" in message
    check_group_choices(["ablation=msfs/full,fddn/no_fdb", "model.width=8", "debug=fdr"], CONF_DIR)


def test_unknown_model_name_in_code_lists_the_options():
    with pytest.raises(ValueError, match="options"):
        build_model({"name": "unet"})


def test_impossible_width_fails_at_construction_naming_the_value(compose_train):
    cfg = compose_train("model.width=5")
    with pytest.raises(ValueError, match="5"):
        build_model(cfg.model)


def test_msfs_paper_recipe_composes(compose_train):
    cfg = compose_train("experiment=msfs_gopro", "data.root=/data/GOPRO_Large")
    assert cfg.data.name == "gopro" and cfg.data.root == "/data/GOPRO_Large"
    assert cfg.model.width == 64 and cfg.model.decoder_blocks == 30
    assert cfg.optim.lr == 1e-4 and list(cfg.optim.betas) == [0.9, 0.9] and cfg.optim.eps == 1e-8
    assert cfg.optim.scheduler.name == "step" and cfg.optim.scheduler.step_size == 500
    assert cfg.optim.scheduler.gamma == 0.5
    assert cfg.trainer.max_epochs == 3000 and cfg.data.batch_size == 4
    # an ablation on top of the recipe
    cfg = compose_train("experiment=msfs_gopro", "ablation=msfs/no_clm")
    assert cfg.loss.lambda_high == 0.0 and cfg.model.width == 64
    assert cfg.ablation_name == "msfs/no_clm"  # the recipe must not overwrite the ablation's name


def test_fddn_paper_recipe_composes(compose_train):
    cfg = compose_train("experiment=fddn_gopro", "data.root=/data/GOPRO_Large")
    assert cfg.model.name == "fddn" and cfg.model.num_fdb == 16 and cfg.model.ratio == 0.5
    assert cfg.loss.name == "fddn" and cfg.loss.lambda_perceptual == 0.1 and cfg.loss.pretrained
    assert cfg.optim.lr == 1e-3 and cfg.optim.scheduler.name == "linear"
    assert cfg.optim.scheduler.start_epoch == 500 and cfg.optim.scheduler.end_epoch == 2500
    assert cfg.optim.scheduler.min_lr == 1e-7
    literal = compose_train("experiment=fddn_gopro", "optim=fddn_literal").optim.scheduler
    assert literal.name == "linear_decrement" and literal.decrement == 1e-7 and literal.start_epoch == 500
    assert cfg.trainer.max_epochs == 2500 and cfg.augment.name == "fddn"
    cfg = compose_train("experiment=fddn_gopro", "ablation=fddn/no_fsb")
    assert cfg.ablation_name == "fddn/no_fsb" and cfg.model.variant == "no_fsb" and cfg.model.num_fdb == 16


@pytest.mark.parametrize("variant", ["full", "no_distillation", "no_fsb", "no_fdb"])
def test_table5_ablations_select_fddn(compose_train, variant):
    cfg = compose_train(f"ablation=fddn/{variant}")
    assert cfg.model.name == "fddn" and cfg.loss.name == "fddn" and cfg.model.variant == variant
    assert cfg.model.num_fdb == 16
    # the command line's preset wins over the ablation's model choice
    assert compose_train(f"ablation=fddn/{variant}", "model=fddn_small").model.num_fdb == 4


def test_training_speed_is_as_configured_or_chosen_where_left_open(compose_train):
    from deblur.training import training_speed

    assert training_speed(compose_train("speed=fixed")) == (True, "32-true")  # the fixed rule, no timing
    tiny = ["data.crop_size=32", "data.batch_size=2"]  # below the probe's minimum size: the fixed rule
    assert training_speed(compose_train(*tiny)) == (True, "32-true")
    assert training_speed(compose_train("channels_last=false", "trainer.precision=bf16-mixed")) == (
        False, "bf16-mixed",
    )  # fmt: skip
    chosen = training_speed(compose_train("channels_last=null", "trainer.precision=auto", "speed=fixed"))
    assert chosen[1] in ("32-true", "bf16-mixed") and isinstance(chosen[0], bool)
