"""The MSFS-Net authors' released files and init_from: every command's loader reads them, the wrong model
is refused naming model=msfs_public, and fine-tuning starts from a file's weights with a fresh step count."""

from __future__ import annotations

import pytest
import torch

from deblur.checkpoints import CheckpointError, load_model
from deblur.errors import UserError
from deblur.lit.restoration import RestorationModule
from deblur.models.msfs.public import public_key_map, public_model_config
from deblur.training import initialise_weights, train
from tests.integration.conftest import TINY_TRAIN
from tests.unit.test_msfs_public import _manifest


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    """A file in the released format: {'model': state dict with their key names (DataParallel prefix)}."""
    gen = torch.Generator().manual_seed(1)
    state = {}
    for key, shape, dtype in _manifest():
        random = torch.randn(shape, generator=gen)
        state[f"module.{key}"] = random if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
    path = tmp_path_factory.mktemp("released") / "model.pkl"
    torch.save({"model": state, "epoch": 3000}, path)
    return path, state


def test_load_model_converts_the_released_format_and_refuses_other_models(released_file):
    path, state = released_file
    net, cfg = load_model(path)
    assert {k: cfg[k] for k in public_model_config() if k != "csffm_init"} == {
        k: v for k, v in public_model_config().items() if k != "csffm_init"
    }
    ours = net.state_dict()
    for public, mine in list(public_key_map().items())[:: 97]:  # values land where the map says
        assert torch.equal(ours[mine].reshape(-1), state[f"module.{public}"].reshape(-1)), (public, mine)
    assert not net.training
    with pytest.raises(CheckpointError, match="model=msfs_public"):
        load_model(path, model="msfs")
    with pytest.raises(CheckpointError, match="model=msfs_public"):
        load_model(path, model="fddn_small", key="init_from")


def _tiny_model(compose_train) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_train(*TINY_TRAIN).model, resolve=True)


def test_init_from_sets_the_starting_weights_not_the_step_counter(compose_train, tmp_path):
    model = _tiny_model(compose_train)
    torch.manual_seed(123)
    source = RestorationModule(model=model, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-4})
    ckpt = tmp_path / "source.ckpt"
    saved = {"state_dict": source.state_dict(), "hyper_parameters": {"model": model}, "global_step": 77}
    torch.save(saved, ckpt)

    fresh = RestorationModule(model=model, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-4})
    initialise_weights(fresh, str(ckpt))
    for (name, a), b in zip(fresh.net.state_dict().items(), source.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    cfg = compose_train(
        *TINY_TRAIN, f"init_from={ckpt}", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "callbacks=none", "logger=none", "trainer.max_time=null",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["global_step"] == 2  # counted from zero, not from the source's 77


def test_convert_writes_a_native_checkpoint_and_never_the_input(released_file, tmp_path):
    from deblur.checkpoints import convert_checkpoint

    path, _ = released_file
    before = path.read_bytes()
    out, cfg = convert_checkpoint(path, tmp_path / "public.ckpt")
    assert cfg["skip_first_encoder_blocks"] is True
    direct, _ = load_model(path)
    native, native_cfg = load_model(out)  # no model= needed: the config travels with it
    assert native_cfg == cfg
    for (name, a), b in zip(direct.state_dict().items(), native.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(UserError, match="never written"):
        convert_checkpoint(path, path)
    assert path.read_bytes() == before


def test_eval_with_tlc_records_it_and_the_published_collector_reads_it(tmp_path):
    """deblur-eval with tlc.enabled on a tiny network and GoPro tree; the msfs_published collector's row."""
    import importlib.util
    import json

    from deblur.evaluation import evaluate
    from deblur.models.build import build_model
    from deblur.paths import REPO_ROOT
    from tests.unit.test_datasets import make_gopro

    root = make_gopro(tmp_path / "GOPRO_Large")
    model = {"width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1}
    weights = tmp_path / "w.pth"
    torch.save(build_model("msfs_small", **model).state_dict(), weights)
    tlc = {"enabled": True, "base_size": 24, "train_size": 16}
    settings = {"device": "cpu", "precision": "fp32", "tlc": tlc}
    out = tmp_path / "evals" / "tiny-tlc_true"
    from deblur.models.build import model_config

    tiny = model_config("msfs_small", **model)
    results = evaluate(weights, ["gopro"], {"gopro": root}, output_dir=out, model=tiny, settings=settings)
    assert results["tlc"] == {"enabled": True, "base_size": 24, "train_size": 16}
    assert json.loads((out / "results.json").read_text())["tlc"]["enabled"] is True
    assert "TLC: on" in (out / "results.md").read_text()

    script = REPO_ROOT / "experiments" / "msfs_published" / "collect.py"
    spec = importlib.util.spec_from_file_location("collect", script)
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    table = collect.collect(tmp_path / "evals").read_text()
    assert "| w.pth | on (24) |" in table and "MSFS-Net (paper" in table
    assert f"w.pth: fp32 on {results['device_name']} (torch {torch.__version__})" in table


def test_the_published_collector_marks_basicsr_cells_and_self_ensemble_rows():
    import importlib.util

    from deblur.paths import REPO_ROOT

    script = REPO_ROOT / "experiments" / "msfs_published" / "collect.py"
    spec = importlib.util.spec_from_file_location("collect", script)
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    basicsr = {"psnr": 30.0, "ssim": 0.9, "protocol": "basicsr", "crop_border": 4, "test_y_channel": True}
    cells = collect.row({"ckpt_path": "w.pth", "self_ensemble": True, "datasets": {"gopro": basicsr}})
    marked = "30.00 (basicsr (crop_border=4, test_y_channel=true))"
    assert cells[:4] == ["w.pth + self-ensemble x8", "off", marked, "0.9000"]
    plain = collect.row({"ckpt_path": "w.pth", "datasets": {"gopro": {**basicsr, "protocol": "gopro"}}})
    assert plain[:3] == ["w.pth", "off", "30.00"]
