"""deblur-analyze (:func:`deblur.analysis.analyzer.analyze` and the command) on the built-in dataset, with and
without a checkpoint; the FrequencyGap callback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import ConfigCompositionException
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from deblur.analysis.analyzer import analyze
from deblur.analysis.callback import FrequencyGap, metric_name
from deblur.analysis.frequency import FrequencyConfig, band_entropies, compare_entropies
from deblur.checkpoints import load_model
from deblur.cli.analyze import main as analyze_command
from deblur.config.compose import compose
from deblur.config.inference_settings import InferenceSettings
from deblur.data.datamodule import DeblurDataModule
from deblur.data.synthetic import TRAIN_PHOTOS
from deblur.lit.restoration import RestorationModule
from deblur.paths import CONF_DIR
from tests.tiny import TINY_MSFS

#: a small built-in dataset: 3 validation pairs of 48x48
SMALL_DATA = ["data.max_side=128", "data.val_crop_size=48", "data.val_pairs_per_photo=1"]
#: the same for the library: the keys set on top of conf/data/synthetic.yaml
SMALL = {"name": "synthetic", "max_side": 128, "val_crop_size": 48, "val_pairs_per_photo": 1}
CPU = InferenceSettings(device="cpu")
SMALL_DATA_DICT = {
    "name": "synthetic", "seed": 0, "val_seed": 1234, "pairs_per_photo": 1, "val_pairs_per_photo": 1,
    "max_side": 128, "repeats": 1, "crop_size": 32, "val_crop_size": 48, "batch_size": 2, "val_batch_size": 2,
}
TINY_MODEL = TINY_MSFS
SCALES = ("1", "1/2", "1/4")


def compose_in(output_dir: Path, *overrides: str):
    return compose("analyze", [f"paths.output_dir={output_dir}", *overrides])


@pytest.fixture
def compose_analyze(tmp_path):
    return lambda *overrides: compose_in(tmp_path, *overrides)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[dict, Path]:
    """``deblur-analyze`` with its defaults: the built-in dataset's training split (the paper's split)."""
    output_dir = tmp_path_factory.mktemp("default")
    return analyze(output_dir=output_dir), output_dir


def tiny_module() -> RestorationModule:
    torch.manual_seed(0)
    return RestorationModule(model=TINY_MODEL, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-3})


def quiet_trainer(**kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    return L.Trainer(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real Lightning checkpoint of a tiny RestorationModule (attached by one validation)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    module = tiny_module()
    trainer = quiet_trainer(limit_val_batches=1)
    trainer.validate(module, datamodule=DeblurDataModule(data=SMALL_DATA_DICT), verbose=False)
    trainer.save_checkpoint(path)
    return path


# ------------------------------------------------------------------------------------------ command
def test_default_run_on_the_builtin_dataset_writes_json_and_figures(default_run):
    payload, tmp_path = default_run
    written = json.loads((tmp_path / "analysis.json").read_text())
    assert written["js_divergence"] == payload["js_divergence"]
    assert list(written["js_divergence"]) == ["sharp_vs_blurry"]
    table = written["js_divergence"]["sharp_vs_blurry"]
    assert set(table) == {"high", "low"} and all(set(table[band]) == set(SCALES) for band in table)
    assert all(0.0 <= table[band][scale] <= 1.0 for band in table for scale in SCALES)
    n = written["num_pairs"]
    # the default data config: every training photo times its pairs per photo, each pair once
    defaults = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml")
    assert written["split"] == "train" and len(written["names"]) == n
    assert n == len(TRAIN_PHOTOS) * defaults.pairs_per_photo
    # the paper's "larger scale, larger gap" (Sec. 3.1, Fig. 2) holds on the training split
    assert table["high"]["1"] > table["high"]["1/2"] > table["high"]["1/4"]
    for kind in ("sharp", "blurry"):
        assert all(len(written["entropy"][kind][band][scale]) == n for band in table for scale in SCALES)
    assert (tmp_path / "fig1_patch_bands.png").stat().st_size > 10_000
    assert (tmp_path / "fig2_sharp_vs_blurry.png").stat().st_size > 10_000
    assert not (tmp_path / "fig7_sharp_vs_deblurred.png").exists()
    assert written["timing"]["images_per_s"] > 0


def test_high_band_gap_exceeds_low_band_gap_at_full_scale_on_the_builtin_dataset(default_run):
    """MSFS-Net Sec. 3.1: blur changes the high-frequency part far more than the low-frequency part."""
    payload, _ = default_run
    js = payload["js_divergence"]["sharp_vs_blurry"]
    assert js["high"]["1"] > js["low"]["1"]
    mean = payload["entropy_mean"]
    assert mean["blurry"]["high"]["1"] < mean["sharp"]["high"]["1"]  # blur removes high-frequency detail


def test_checkpoint_adds_deblurred_images_and_fig7(compose_analyze, tmp_path, checkpoint, capsys):
    fp32 = ["device=cpu", "precision=fp32", "channels_last=false", "fold_batchnorm=false"]
    cfg = compose_analyze(*SMALL_DATA, "split=val", f"ckpt_path={checkpoint}", "analysis.batch_size=2", *fp32)
    value = analyze_command(cfg)  # the command's config keys reach the library
    assert "sharp_vs_deblurred high" in capsys.readouterr().out
    payload = json.loads((tmp_path / "analysis.json").read_text())
    assert value == payload["js_divergence"]["sharp_vs_blurry"]["high"]["1"]
    assert payload["figures"] == ["fig1_patch_bands.png", "fig2_sharp_vs_blurry.png",
                                  "fig7_sharp_vs_deblurred.png"]
    assert list(payload["js_divergence"]) == ["sharp_vs_blurry", "sharp_vs_deblurred"]
    table = payload["js_divergence"]["sharp_vs_deblurred"]
    assert all(0.0 <= table[band][scale] <= 1.0 for band in ("high", "low") for scale in SCALES)
    assert len(payload["entropy"]["deblurred"]["high"]["1/4"]) == payload["num_pairs"] == 3
    assert (tmp_path / "fig7_sharp_vs_deblurred.png").exists()
    # where the numbers were computed: the network's precision and layout, the device, torch
    assert payload["inference"]["precision"] == "fp32" and payload["inference"]["channels_last"] is False
    assert "(cpu" in payload["device_name"] and payload["torch"] == torch.__version__
    # the numbers are those of the network's outputs
    net, _ = load_model(checkpoint)
    data = DeblurDataModule(data=SMALL_DATA_DICT)
    data.setup("validate")
    samples = [data.val_set[i] for i in range(len(data.val_set))]  # (datasets wrap around: no iteration)
    sharp = torch.stack([s["sharp"] for s in samples])
    with torch.no_grad():
        pred = net(torch.stack([s["blurry"] for s in samples])).clamp(0, 1)
    expected = compare_entropies(band_entropies(sharp), band_entropies(pred), FrequencyConfig())
    assert table["high"]["1"] == pytest.approx(expected["high"]["1"].js, abs=1e-9)


def test_train_split_reads_whole_images_of_different_sizes_and_writes_nothing_without_output_dir(tmp_path):
    data = {"name": "synthetic", "max_side": 64}
    payload = analyze(data, "train", analysis={"max_images": 5, "batch_size": 4}, settings=CPU)
    assert payload["split"] == "train" and payload["num_pairs"] == 5
    assert len(set(payload["names"])) == 5 and payload["figures"] == []
    assert payload["settings"]["batch_size"] == 4 and payload["device"] == "cpu"
    assert not any(tmp_path.iterdir())


def test_settings_are_typed_and_checked(compose_analyze):
    with pytest.raises((ConfigCompositionException, ValidationError), match="sigma"):
        compose_analyze("analysis.sigma=abc")
    with pytest.raises(ValueError, match="split"):
        analyze(SMALL, "test")
    with pytest.raises(ValueError, match="downsample"):
        analyze(SMALL, analysis={"downsample": "bicubic"})
    with pytest.raises(ValueError, match="unknown analysis setting.*'sigmaa'"):
        analyze(SMALL, analysis={"sigmaa": 2.0})
    with pytest.raises(ValueError, match="unknown dataset name 'gopr'"):
        analyze("gopr")
    with pytest.raises(ValueError, match="data.root is not set"):
        analyze("gopro")
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        analyze(SMALL, ckpt_path="/nonexistent/x.ckpt", settings=CPU)


@pytest.mark.slow
def test_deblur_analyze_command_runs_from_the_shell(tmp_path):
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
    cmd = [sys.executable, "-m", "deblur.cli.analyze", *SMALL_DATA, f"hydra.run.dir={tmp_path}/run"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sharp_vs_blurry high" in result.stdout
    written = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert set(written["js_divergence"]["sharp_vs_blurry"]["low"]) == set(SCALES)
    assert (tmp_path / "run" / "fig2_sharp_vs_blurry.png").exists()


# ------------------------------------------------------------------------------------------ callback
def _count_forwards(module: RestorationModule) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    module.net.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    return outputs


def test_frequency_gap_logs_js_per_band_and_scale_next_to_psnr(tmp_path):
    module = tiny_module()
    forwards = _count_forwards(module)
    datamodule = DeblurDataModule(data=SMALL_DATA_DICT)  # 3 val images in batches of 2
    callback = FrequencyGap()
    trainer = quiet_trainer(logger=CSVLogger(tmp_path, name="csv"), callbacks=[callback])
    results = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    names = [metric_name(band, scale) for band in ("high", "low") for scale in SCALES]
    assert names[1] == "val/js_high_1_2" and names[5] == "val/js_low_1_4"
    for name in names + [metric_name("high", "1", "val/js_input_")]:
        assert 0.0 <= results[name] <= 1.0
    assert "val/psnr" in results
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert "val/js_high_1" in header and "val/psnr" in header
    assert len(forwards) == 2  # 2 batches; the callback reuses validation_step's returned prediction

    # the logged value is the JS between the entropy distributions of all outputs and all sharp images
    samples = [datamodule.val_set[i] for i in range(len(datamodule.val_set))]
    sharp = torch.stack([s["sharp"] for s in samples])
    with torch.no_grad():
        pred = module.net.eval()(torch.stack([s["blurry"] for s in samples])).clamp(0, 1)
    expected = compare_entropies(band_entropies(sharp), band_entropies(pred), FrequencyConfig())
    assert results["val/js_low_1"] == pytest.approx(expected["low"]["1"].js, abs=1e-6)


class _ReturnsNothing(RestorationModule):
    """A LightningModule whose validation_step returns nothing (as a user's own module may)."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)


def test_frequency_gap_reruns_the_network_without_returned_predictions_and_every_n_validations():
    torch.manual_seed(0)
    module = _ReturnsNothing(model=TINY_MODEL, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-3})
    forwards = _count_forwards(module)
    datamodule = DeblurDataModule(data=SMALL_DATA_DICT)
    callback = FrequencyGap(every_n_validations=2, log_input=False)
    trainer = quiet_trainer(callbacks=[callback])
    first = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert len(forwards) == 4  # 2 batches: the validation step's forward + the callback's own
    assert "val/js_high_1" in first and "val/js_input_high_1" not in first
    second = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert "val/js_high_1" not in second and "val/psnr" in second


# ------------------------------------------------------------------------------------------ few images
def test_max_images_takes_distinct_photos_and_few_of_them_are_flagged(tmp_path, caplog, monkeypatch):
    """Two samples of the validation split were two blurs of one photo (JS ~0.99, an artefact); now they
    are two photos, and an analysis of fewer than MIN_DISTINCT_IMAGES photos says so everywhere."""
    import deblur.analysis.figures as figures
    from deblur.analysis.sample_size import MIN_DISTINCT_IMAGES

    drawn = []
    original = figures.plot_entropy_distributions
    monkeypatch.setattr(figures, "plot_entropy_distributions",
                        lambda *a, **k: drawn.append(k.get("warning")) or original(*a, **k))
    data = {"name": "synthetic", "max_side": 128, "val_crop_size": 48}  # 4 pairs of each of 3 photos
    with caplog.at_level("WARNING", logger="deblur.analysis.analyzer"):
        payload = analyze(data, "val", analysis={"max_images": 2}, settings=CPU, output_dir=tmp_path)
    assert [name.rsplit("_", 1)[0] for name in payload["names"]] == ["astronaut", "coffee"]
    assert payload["distinct_images"] == 2 and payload["min_distinct_images"] == MIN_DISTINCT_IMAGES == 16
    (warning,) = payload["warnings"]
    assert "only 2 distinct image(s) (minimum 16)" in warning
    assert warning in caplog.text
    assert json.loads((tmp_path / "analysis.json").read_text())["warnings"] == [warning]
    assert drawn == [warning]  # written on fig2


def test_entropy_figure_writes_the_warning_and_enough_images_give_none():
    from deblur.analysis.figures import plot_entropy_distributions
    from deblur.analysis.sample_size import sample_size_warning

    assert sample_size_warning(16) is None and "only 15" in sample_size_warning(15)
    a, b = {"high": {"1": torch.rand(5)}}, {"high": {"1": torch.rand(5) + 1}}
    fig = plot_entropy_distributions(compare_entropies(a, b), warning="too few")
    assert [t.get_text() for t in fig.texts if "too few" in t.get_text()] == ["WARNING: too few"]
    assert not plot_entropy_distributions(compare_entropies(a, b)).texts


def test_live_val_js_input_equals_deblur_analyze_on_the_validation_split():
    """One definition: the FrequencyGap callback's blurry-vs-sharp numbers are deblur-analyze split=val's."""
    datamodule = DeblurDataModule(data=SMALL_DATA_DICT)
    with pytest.warns(UserWarning, match="distinct image"):  # 3 validation photos
        logged = quiet_trainer(callbacks=[FrequencyGap()]).validate(tiny_module(), datamodule=datamodule,
                                                                    verbose=False)[0]
    offline = analyze(SMALL_DATA_DICT, "val", analysis={"batch_size": 2}, settings=CPU)
    for band in ("high", "low"):
        for scale in SCALES:
            expected = offline["js_divergence"]["sharp_vs_blurry"][band][scale]
            assert logged[metric_name(band, scale, "val/js_input_")] == pytest.approx(expected, abs=1e-6)
