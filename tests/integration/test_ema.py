"""EMA of the weights (``ema.decay``, issue 21 item 1): checked, off by default, Lightning's
``EMAWeightAveraging`` when on; validation, checkpoints, ``load_model`` and ``init_from`` get the averaged
weights, ``metrics.json`` the decay. (Exact resume with EMA: tests/integration/test_resume.py.)"""

from __future__ import annotations

import csv
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from omegaconf import OmegaConf

from deblur.checkpoints import load_model
from deblur.config.checks import check_train_config
from deblur.data.datamodule import DeblurDataModule
from deblur.errors import UserError
from deblur.lit.ema import ema_callbacks
from deblur.lit.restoration import RestorationModule
from deblur.training import initialise_weights, train
from tests.integration.conftest import TINY_TRAIN

#: tiny runs with BatchNorm (MSFS-Net's norm: batch; msfs_small has none), so buffers are averaged too
RUN = ["debug=limit", "logger=csv", "trainer.deterministic=true", "callbacks.frequency_gap=null",
       *TINY_TRAIN, "model.norm=batch", "trainer.max_epochs=null"]  # fmt: skip


def _ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("decay", ["1", "0", "1.5", "-0.1", "abc", "true", "nan"])
def test_a_decay_outside_0_1_is_one_message_naming_ema_decay(compose_train, decay):
    expected = r"^ema\.decay=.*: a number between 0 and 1 \(exclusive\), e\.g\. 0\.999, or null \(no EMA\)$"
    with pytest.raises(UserError, match=expected):
        check_train_config(compose_train(f"ema.decay={decay}"))
    with pytest.raises(UserError, match=r"^ema\.foo: not a key of ema \(keys: decay\)$"):
        check_train_config(compose_train("+ema.foo=1"))
    check_train_config(compose_train("ema.decay=0.999"))


def test_ema_with_a_sharded_strategy_is_refused(compose_train):
    check_train_config(compose_train("ema.decay=0.999", "strategy=ddp"))
    check_train_config(compose_train("strategy=fsdp"))
    sharded = r"^ema\.decay=0\.999: .* does not support sharded models \(strategy=fsdp\)"
    with pytest.raises(UserError, match=sharded):
        check_train_config(compose_train("ema.decay=0.999", "strategy=fsdp"))


def test_a_bad_decay_from_the_command_line_exits_2_before_anything_is_built(tmp_path, monkeypatch, capsys):
    from deblur.cli import train as cli

    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["deblur-train", "ema.decay=1.5", f"hydra.run.dir={run}"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "deblur-train: error: ema.decay=1.5: a number between 0 and 1 (exclusive), e.g. 0.999, "
        "or null (no EMA)"
    )
    assert not (run / "checkpoints").exists()


def test_off_by_default_no_callback_on_with_lightnings_ema(compose_train):
    # (that train() adds them to its Trainer: the runs below, whose checkpoints hold the callback's state)
    cfg = compose_train()
    assert cfg.ema.decay is None and ema_callbacks(cfg) == []
    (on,) = ema_callbacks(compose_train("ema.decay=0.99"))
    assert isinstance(on, EMAWeightAveraging) and on.decay == 0.99


def test_the_average_is_the_ema_of_the_raw_weights_and_every_reader_gets_it(compose_train, tmp_path):
    decay = 0.5
    ema = [*RUN, "trainer.val_check_interval=1", f"ema.decay={decay}"]  # validated after every step
    one = train(compose_train(*ema, "trainer.max_steps=1", f"paths.output_dir={tmp_path}/one"))
    two = train(compose_train(*ema, "trainer.max_steps=2", f"paths.output_dir={tmp_path}/two"))
    off = ["ema.decay=null", "trainer.max_steps=2", f"paths.output_dir={tmp_path}/plain"]
    plain = train(compose_train(*ema, *off))
    assert plain["ema_decay"] is None and plain["val/psnr"] != two["val/psnr"]
    assert one["ema_decay"] == two["ema_decay"] == decay  # metrics.json records the decay
    first, last = _ckpt(tmp_path / "one/checkpoints/last.ckpt"), _ckpt(tmp_path / "two/checkpoints/last.ckpt")
    # the first update copies the weights; the second is decay * average + (1 - decay) * weights
    w1, w2, avg = first["current_model_state"], last["current_model_state"], last["state_dict"]
    assert all(torch.equal(first["state_dict"][k], w1[k]) for k in w1)
    assert avg.keys() == w2.keys() and int(last["averaging_state"]["n_averaged"]) == 2
    for k, v in avg.items():
        if v.is_floating_point():  # weights and BatchNorm's running statistics
            assert torch.allclose(v, decay * w1[k] + (1 - decay) * w2[k], atol=1e-7), k
    assert any("running_var" in k for k in avg)
    assert any(not torch.equal(avg[k], w2[k]) for k in avg if k.endswith("weight"))
    # the raw weights trained exactly as without EMA (the validation at step 1 swapped them back)
    rows = csv.DictReader((tmp_path / "two/csv/metrics.csv").open())
    assert len([r for r in rows if r.get("val/psnr")]) == 2  # after step 1 and after step 2
    without = _ckpt(tmp_path / "plain/checkpoints/last.ckpt")
    assert "current_model_state" not in without and "WeightEMA" not in without["callbacks"]
    assert last["callbacks"]["WeightEMA"] == {"latest_update_step": 2, "decay": decay}
    assert all(torch.equal(without["state_dict"][k], w2[k]) for k in w2)

    # best-*.ckpt, load_model (predict, eval, analyze) and init_from read the averaged weights
    (best,) = (tmp_path / "two/checkpoints").glob("best-*.ckpt")
    assert all(torch.equal(_ckpt(best)["state_dict"][k], avg[k]) for k in avg)
    net, _ = load_model(tmp_path / "two/checkpoints/last.ckpt")
    averaged_net = {k[4:]: v for k, v in avg.items() if k.startswith("net.")}
    assert all(torch.equal(t, averaged_net[k]) for k, t in net.state_dict().items())
    cfg = compose_train(*RUN)
    module = RestorationModule(model=dict(last["hyper_parameters"]["model"]), loss={"name": "l1"},
                               optim={"name": "adam"})  # fmt: skip
    initialise_weights(module, str(tmp_path / "two/checkpoints/last.ckpt"))
    assert all(torch.equal(t, averaged_net[k]) for k, t in module.net.state_dict().items())

    # the final validation (metrics.json) scored the averaged weights
    data = OmegaConf.to_container(cfg.data, resolve=True)
    datamodule = DeblurDataModule(data=data, augment=None, shuffle_seed=int(cfg.seed))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=cfg.trainer.limit_val_batches, accelerator="cpu")  # fmt: skip
    (scores,) = trainer.validate(module.eval(), datamodule=datamodule, verbose=False)
    assert scores["val/psnr"] == pytest.approx(two["val/psnr"], abs=1e-5)


def test_a_resume_says_a_changed_decay_and_refuses_ema_off(tmp_path, caplog):
    from deblur.lit.ema import check_ema_resume

    ema = {"state_dict": {}, "current_model_state": {}, "averaging_state": {}}
    ours = tmp_path / "ours.ckpt"
    torch.save({**ema, "callbacks": {"WeightEMA": {"latest_update_step": 4, "decay": 0.9}}}, ours)
    lightnings = tmp_path / "lightning.ckpt"  # Lightning's own callback does not record the decay
    torch.save({**ema, "callbacks": {"EMAWeightAveraging": {"latest_update_step": 4}}}, lightnings)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "callbacks": {}}, plain)
    on, off = OmegaConf.create({"ema": {"decay": 0.99}}), OmegaConf.create({"ema": {"decay": None}})
    with caplog.at_level("WARNING", logger="deblur.lit.ema"):
        check_ema_resume(ours, on)
    assert f"ema.decay=0.99: the averaged weights of {ours} were made with ema.decay=0.9" in caplog.text
    check_ema_resume(plain, on)
    check_ema_resume(plain, off)
    check_ema_resume(lightnings, on)
    with pytest.raises(UserError, match=r"resume with ema\.decay=<the decay it was trained with> to "):
        check_ema_resume(lightnings, off)
    with pytest.raises(UserError, match=r"or start a new run from its averaged weights with init_from="):
        check_ema_resume(ours, OmegaConf.create({}))
