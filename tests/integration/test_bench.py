"""deblur-bench on tiny networks: it writes bench.json with the documented keys and bench.md, and its
analysis baseline agrees with deblur.analysis (so the speed-up compares equal work)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from deblur.bench.benchmark import run
from deblur.bench.pipeline import plain_band_entropies
from deblur.bench.report import strict_json
from deblur.paths import CONF_DIR

TINY_BENCH = [
    "presets=[msfs_small,fddn_small,fddn_small+no_fsb,nafnet_small]", "timed=[msfs_small,nafnet_small]",
    "model_overrides=['model.width=8']",
    "mac_sizes=[[32,32]]", "forward.size=32", "forward.batch=2", "forward.hd=[24,40]", "train_step.size=32",
    "train_step.batch=2", "timing.warmup=0", "timing.repeats=1", "peak.widths=[8]", "peak.size=16",
    "peak.repeats=1", "loader.batches=2", "loader.num_workers=0", "analysis.images=2", "analysis.size=32",
    "analysis.repeats=1", "tiling.size=[80,96]", "tiling.tile=48", "tiling.overlap=8",
    "precision_run.overrides=[" + ",".join(f"'{o}'" for o in (
        "model=msfs_small", "debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1", "data.crop_size=32", "data.val_crop_size=32", "data.pairs_per_photo=1",
        "data.repeats=1", "data.val_pairs_per_photo=1")) + "]",
    "targets_preset=msfs_small",
    # the probe runs on the tiny inputs too (min_pixels=0); the GPU tables are forced on, on the CPU
    "speed.min_pixels=0", "speed.budget_s=0.5",
    "gpu.enabled=true", "gpu.size=32", "gpu.batches=[2]", "gpu.compile=false", "gpu.max_batch.start=1",
    "gpu.max_batch.limit=2", "+gpu.recipes.tiny={preset:msfs_small,epochs:2,pairs:10,batch:2}",
]  # fmt: skip

#: the key paths the README's performance section documents
DOCUMENTED = [
    "machine.device",
    "peak.best.gflops",
    "peak.fp32_nchw.gflops",
    "peak.bf16_channels_last.gflops",
    "models.msfs_small.params",
    "models.msfs_small.size_mb",
    "models.msfs_small.gmacs_32x32",
    "models.msfs_small.forward.ms",
    "models.msfs_small.forward.images_per_s",
    "models.msfs_small.forward.gflops",
    "models.msfs_small.forward.fraction_of_peak",
    "models.msfs_small.forward.psnr_vs_fp32",
    "models.msfs_small.forward.peak_memory_mib",
    "models.msfs_small.forward.options.precision",
    "models.msfs_small.forward.default_vs_best",
    "models.msfs_small.forward.default_vs_best_spread",
    "models.msfs_small.forward.default_vs_best_min",
    "models.msfs_small.forward.probe.decisions",
    "models.msfs_small.forward_options.fp32.times_ms",
    "models.msfs_small.forward.best_option",
    "models.msfs_small.forward.probe.source",
    "models.msfs_small.forward.probe.times_ms",
    "models.msfs_small.forward_options.fp32.min_ms",
    "models.msfs_small.forward_options.fp32.ms",
    "models.msfs_small.forward_options.bf16_channels_last.psnr_vs_fp32",
    "models.msfs_small.forward_hd.ms",
    "models.msfs_small.re_encode.speedup",
    "models.msfs_small.train_step.fp32.samples_per_s",
    "models.msfs_small.train_step.bf16-mixed.samples_per_s",
    "models.msfs_small.train_step_nchw.fp32.samples_per_s",
    "models.msfs_small.train_step.default_vs_best",
    "models.msfs_small.train_step.default_vs_best_spread",
    "models.msfs_small.train_step.default.probe.decisions",
    "models.msfs_small.train_step.default.precision",
    "models.msfs_small.train_step.default.channels_last",
    "models.msfs_small.train_step.default.probe.source",
    "models.msfs_small.train_gmacs_32x32",
    "models.fddn_small.size_mb",
    "models.nafnet_small.forward.fraction_of_peak",
    "models.nafnet_small.forward.default_vs_best",
    "models.nafnet_small.train_step.fp32.fraction_of_peak",
    "models.nafnet_small.train_step.default_vs_best",
    "models.nafnet_small.train_gmacs_32x32",
    "models.fddn_small+no_fsb.gmacs_32x32",
    "loader.samples_per_s",
    "loader.ratio",
    "analysis.speedup",
    "tiling.tiled.peak_memory_mib",
    "tiling.untiled.peak_memory_mib",
    "precision_run.psnr_difference_db",
    "targets.forward_fraction_of_peak.met",
    "targets.forward_default_vs_best.met",
    "targets.train_step_default_vs_best.per_preset.msfs_small",
    "gpu.presets.msfs_small.forward.2.samples_per_s",
    "gpu.presets.msfs_small.forward.2.fraction_of_bf16_peak",
    "gpu.presets.msfs_small.forward.2.peak_memory_mib",
    "gpu.presets.msfs_small.train_step.2.samples_per_s",
    "gpu.presets.msfs_small.train_step.2.options.precision",
    "gpu.presets.msfs_small.max_batch.forward.batch",
    "gpu.presets.msfs_small.max_batch.train_step.batch",
    "gpu.recipes.tiny.hours_1_gpu",
    "gpu.recipes.tiny.hours_8_gpus_linear",
]


def _get(tree: dict, path: str):
    node = tree
    for key in path.split("."):
        assert isinstance(node, dict) and key in node, f"bench.json lacks {path} (at {key!r})"
        node = node[key]
    return node


def test_bench_writes_every_documented_key(tmp_path):
    cache = tmp_path / "speed.json"
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("bench", overrides=[*TINY_BENCH, f"output={tmp_path}", f"speed.cache={cache}"])
    run(cfg)
    result = json.loads((tmp_path / "bench.json").read_text())
    for path in DOCUMENTED:
        _get(result, path)
    assert "error" not in result["loader"] and "error" not in result["precision_run"]
    assert "error" not in result["gpu"]["presets"]["msfs_small"]
    small = result["models"]["msfs_small"]
    # the default is one of the timed rows, so the fastest row can be no slower than it
    assert 0 < small["forward"]["default_vs_best"] <= 1 and 0 < small["train_step"]["default_vs_best"] <= 1
    assert small["forward"]["probe"]["source"] in ("probe", "cache")
    assert small["forward_options"]["fp32"]["runs"] >= 1
    recipe = result["gpu"]["recipes"]["tiny"]
    assert recipe["steps_per_epoch_1_gpu"] == 5 and recipe["steps_per_epoch_8_gpus"] == 0  # 10 pairs
    assert result["targets"]["analysis"]["met"] is None  # information only
    entries = json.loads(cache.read_text())["entries"]  # the probe's choices, remembered
    kinds = {entry["kind"] for entry in entries.values()}
    assert kinds == {"inference", "training"}
    markdown = (tmp_path / "bench.md").read_text()
    assert "Defaults against the fastest tested option" in markdown and "## GPU tables" in markdown
    small = result["models"]["msfs_small"]
    assert small["params"] == sum(p.numel() for p in _tiny_msfs().parameters())
    assert (
        small["forward"]["fraction_of_peak"] > 0 and small["forward_options"]["fp32"]["psnr_vs_fp32"] is None
    )
    assert "forward" not in result["models"]["fddn_small"]  # counted, not timed
    assert "| msfs_small |" in (tmp_path / "bench.md").read_text()
    # NAFNet is timed like the other presets, its train step with its own loss (PSNR)
    nafnet = result["models"]["nafnet_small"]
    assert nafnet["model"]["name"] == "nafnet" and "error" not in nafnet["train_step"]
    assert 0 < nafnet["forward"]["default_vs_best"] <= 1 and 0 < nafnet["train_step"]["default_vs_best"] <= 1
    row = next(line for line in markdown.splitlines() if line.startswith("| nafnet_small |"))
    assert "no paper row" in row


def _tiny_msfs():
    from omegaconf import OmegaConf

    from deblur.bench.benchmark import compose_train
    from deblur.models.build import build_model

    cfg = compose_train(["model=msfs_small", "model.width=8"])
    return build_model(OmegaConf.to_container(cfg.model, resolve=True))


def test_plain_analysis_loop_matches_the_batched_analysis():
    from deblur.analysis.frequency import band_entropies

    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(0.5, 0.2, (40, 48, 3)), 0, 1)
    ours = band_entropies(torch.from_numpy(image).permute(2, 0, 1)[None])
    plain = plain_band_entropies(image)
    for band in ("high", "low"):
        for k, scale in enumerate(("1", "1/2", "1/4")):
            key = scale if scale in ours[band] else list(ours[band])[k]
            assert float(ours[band][key][0]) == pytest.approx(plain[band][k], abs=0.02), (band, scale)


def test_strict_json_has_no_infinity():
    assert strict_json({"a": [float("inf"), 1.0], "b": {"c": float("nan")}}) == {
        "a": [None, 1.0],
        "b": {"c": None},
    }


def test_nafnet_presets_compose_with_their_psnr_loss_and_have_no_ablations():
    from deblur.bench import networks
    from deblur.bench.benchmark import compose_train

    assert networks.preset_overrides("nafnet_small") == ["model=nafnet_small"]
    assert networks.preset_overrides("fddn_small+no_fsb") == ["model=fddn_small", "ablation=fddn/no_fsb"]
    with pytest.raises(ValueError, match="'nafnet' has no ablations"):
        networks.preset_overrides("nafnet+no_fsm")  # was composed as the MSFS ablation msfs/no_fsm
    model_cfg, loss_cfg = networks.preset_configs("nafnet_small", compose_train)
    assert model_cfg["name"] == "nafnet" and loss_cfg["name"] == "psnr"
    # the published 17.11 M stands beside our count of model=nafnet (counted on the meta device)
    counted = networks.count(networks.preset_configs("nafnet", compose_train)[0], [])
    assert round(counted["params_m"], 2) == networks.PAPER_FIGURES["nafnet"]["params_m"] == 17.11


def test_full_bench_times_every_paper_preset_including_nafnet():
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("bench")
    assert {"msfs", "fddn", "nafnet", "nafnet_small"} <= set(cfg.timed) <= set(cfg.presets)
