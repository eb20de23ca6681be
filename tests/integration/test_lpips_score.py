"""``metrics.lpips`` in ``deblur-score`` and ``deblur-eval`` (configs composed in-process), without network:
the backbone is a state dict this test makes (random AlexNet features, torchvision's key names and shapes),
given as ``metrics.lpips_weights``. The values are checked against torchmetrics' own functional LPIPS
loading the same file; missing, unreadable or absent weights are one user error naming the key."""

from __future__ import annotations

import csv
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity

from deblur.cli.eval import main as eval_command
from deblur.cli.score import main as score_command
from deblur.config.compose import compose
from deblur.errors import UserError
from deblur.metrics.lpips_score import LpipsScorer
from deblur.metrics.scoring import score_folders
from tests.integration.test_predict_eval import TINY_MODEL
from tests.integration.test_score_basicsr import noisy_photo_folders
from tests.tiny import save_tiny_checkpoint
from tests.unit.test_datasets import make_gopro

ALEX_FILE = Path(torchvision.models.AlexNet_Weights.DEFAULT.url).name  # alexnet-owt-7be5be79.pth


@pytest.fixture(scope="module")
def alex_weights(tmp_path_factory) -> Path:
    """A torchvision AlexNet state dict with random features (the classifier, unused by LPIPS, zero)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(s, generator=gen) * 0.05 if k.startswith("features") else torch.zeros(s)
        for k, s in shapes.items()
    }
    path = tmp_path_factory.mktemp("lpips") / "my_alexnet.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty torch hub cache and every download failing as without network."""

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty_hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield
    torch.hub.set_dir(previous)


def _torchmetrics_lpips(weights: Path, hub: Path, pred: np.ndarray, gt: np.ndarray) -> float:
    """torchmetrics' functional LPIPS (alex), its backbone read from ``weights`` placed in a hub cache."""
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / ALEX_FILE).symlink_to(weights)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        x, y = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0 for a in (pred, gt))
        return float(learned_perceptual_image_patch_similarity(x, y, net_type="alex", normalize=True))
    finally:
        torch.hub.set_dir(previous)


def _folders(root: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    return noisy_photo_folders(root, count=2, seed=5, noise=12, row_step=50, col=100)


def _score(tmp_path: Path, pred_dir: Path, gt_dir: Path, *overrides: str):
    out = tmp_path / "out"
    cfg = compose(
        "score", [f"pred_dir='{pred_dir}'", f"gt_dir='{gt_dir}'", f"paths.output_dir='{out}'", *overrides]
    )
    return out, cfg


def test_score_command_lpips_column_equals_torchmetrics(tmp_path, alex_weights, no_network):
    pred_dir, gt_dir, pairs = _folders(tmp_path / "data")
    out, cfg = _score(
        tmp_path, pred_dir, gt_dir, "metrics.lpips=true", f"metrics.lpips_weights='{alex_weights}'"
    )
    hub_before = torch.hub.get_dir()
    summary = score_command(cfg)
    assert torch.hub.get_dir() == hub_before  # the hub dir is only borrowed while the network is built
    assert summary["lpips_net"] == "alex"
    with (out / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["name", "psnr", "ssim", "ssim_per_channel", "lpips"]
    values = []
    for row in rows:
        pred, gt = pairs[row["name"]]
        expected = _torchmetrics_lpips(alex_weights, tmp_path / f"hub_{row['name']}", pred, gt)
        assert expected > 0 and float(row["lpips"]) == pytest.approx(expected, rel=1e-6, abs=1e-9)
        values.append(expected)
    written = json.loads((out / "summary.json").read_text())
    assert written["lpips"] == pytest.approx(np.mean(values), rel=1e-6) and written["lpips_net"] == "alex"
    table = (out / "summary.md").read_text()
    assert "| LPIPS |" in table.splitlines()[2] and "LPIPS: torchmetrics, net alex" in table


def test_eval_lpips_column_in_results_md(tmp_path, alex_weights, no_network):
    ckpt = save_tiny_checkpoint(tmp_path / "last.ckpt", TINY_MODEL)
    gopro = make_gopro(tmp_path / "GOPRO_Large", h=40, w=48)
    out = tmp_path / "eval"
    cfg = compose("eval", [f"ckpt_path={ckpt}", "datasets=[gopro]", f"roots.gopro={gopro}", "limit=1",
                           "device=cpu", "metrics.lpips=true", f"metrics.lpips_weights={alex_weights}",
                           f"paths.output_dir={out}"])  # fmt: skip
    results = eval_command(cfg)
    assert results["lpips_net"] == "alex" and results["datasets"]["gopro"]["lpips"] > 0
    header = (out / "gopro" / "scores.csv").read_text().splitlines()[0]
    assert header == "name,psnr,ssim,ssim_per_channel,lpips"
    table = (out / "results.md").read_text()
    assert "| SSIM (per-channel) | LPIPS |" in table and "LPIPS: torchmetrics, net alex" in table


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("missing", "metrics.lpips_weights does not exist"),
        ("garbage", "cannot be read as a weights file"),
        ("wrong", "is not a state dict of torchvision's alexnet"),
        (None, "could not be downloaded (URLError"),
    ],
)
def test_bad_or_absent_weights_exit_2_naming_the_key(tmp_path, capsys, no_network, weights, message):
    pred_dir, gt_dir, _ = _folders(tmp_path / "data")
    path = tmp_path / f"{weights}.pth"
    if weights == "garbage":
        path.write_bytes(b"not a torch file")
    elif weights == "wrong":
        torch.save({"features.0.weight": torch.zeros(3, 3)}, path)
    overrides = ["metrics.lpips=true"] + ([f"metrics.lpips_weights='{path}'"] if weights else [])
    out, cfg = _score(tmp_path, pred_dir, gt_dir, *overrides)
    with pytest.raises(SystemExit) as exit_info:
        score_command(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "metrics.lpips_weights" in err and "Traceback" not in err
    assert not (out / "scores.csv").exists()


def test_lpips_config_and_image_size_errors(alex_weights, tmp_path):
    pred_dir, gt_dir, _ = _folders(tmp_path / "data")
    bad_nodes = [
        ({"lpips": "yes"}, "metrics.lpips must be true or false"),
        ({"lpips": True, "lpips_net": "squeezy"}, "metrics.lpips_net must be one of alex, vgg"),
        ({"lpips_weight": "x"}, "metrics.lpips_weight is not a key"),
    ]
    for bad, message in bad_nodes:
        with pytest.raises(UserError, match=message):
            score_folders(pred_dir, gt_dir, metrics=bad)
    scorer = LpipsScorer("alex", alex_weights)
    small = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(UserError, match=r"at least 31x31 pixels; tiny.png is 32x24 \(WxH\)"):
        scorer(small, small, what="tiny.png")


def test_eval_blurry_input_row_gets_basicsr_settings_and_its_own_lpips(tmp_path, alex_weights, no_network):
    """The blurry-input row is scored under the same protocol settings as the network's row, and its LPIPS
    is the blurry image's own (the two jobs of one pair share a name until they are split)."""
    ckpt = save_tiny_checkpoint(tmp_path / "last.ckpt", TINY_MODEL)
    gopro = make_gopro(tmp_path / "GOPRO_Large", h=40, w=48)
    out = tmp_path / "eval"
    cfg = compose("eval", [f"ckpt_path={ckpt}", "datasets=[gopro]", f"roots.gopro={gopro}",
                           "device=cpu", "metrics.lpips=true", f"metrics.lpips_weights={alex_weights}",
                           "protocol=basicsr", "crop_border=4", "blurry_baseline=true",
                           f"paths.output_dir={out}"])  # fmt: skip
    summary = eval_command(cfg)["datasets"]["gopro"]
    blurry = summary["blurry_input"]
    _, expected = score_folders(gopro / "test", gopro, "basicsr", blurry_baseline=True, crop_border=4)
    assert blurry["psnr"] == expected["psnr"] and blurry["count"] == expected["count"]
    written = json.loads((out / "gopro" / "blurry_input" / "summary.json").read_text())
    assert written["crop_border"] == 4 and written["protocol"] == "basicsr"
    per_image = (out / "gopro" / "blurry_input" / "scores.csv").read_text().splitlines()
    assert "lpips" in per_image[0].split(",")
    assert not any(line.startswith("(blurry input)") for line in per_image[1:])
    assert blurry["lpips"] != summary["lpips"] and blurry["psnr"] != summary["psnr"]
    lines = (out / "results.md").read_text().splitlines()
    row = next(line for line in lines if "blurry input (baseline)" in line)
    assert row.count("|") == 8  # 7 cells: the LPIPS column too


def test_tables_say_lpips_is_not_aligned_or_cropped_as_psnr_ssim_are():
    from deblur.evaluation import results_markdown
    from deblur.metrics.scoring import summary_markdown

    base = {"psnr": 30.0, "ssim": 0.9, "count": 2, "pred_dir": "p", "gt_dir": "g", "lpips": 0.1,
            "lpips_net": "alex"}  # fmt: skip
    realblur = summary_markdown({**base, "protocol": "realblur"})
    assert "net alex (lower = closer), on the prediction as written, not ECC-aligned" in realblur
    cropped = {**base, "protocol": "basicsr", "crop_border": 4, "test_y_channel": False}
    assert "crop_border / test_y_channel not applied" in summary_markdown(cropped)
    gopro = {**base, "protocol": "gopro", "ssim_per_channel": 0.8}
    for plain in (gopro, {**cropped, "crop_border": 0}):
        assert "(lower = closer)\n" in summary_markdown(plain) + "\n"
    datasets = {"realblur_j": {**base, "protocol": "realblur"}, "gopro": gopro}
    results = {"ckpt_path": "c", "model": {"name": "msfs"}, "tile": None, "lpips_net": "alex",
               "datasets": datasets}  # fmt: skip
    table = results_markdown(results)
    assert "LPIPS on RealBlur-J, on the prediction as written, not ECC-aligned" in table
    assert "LPIPS on GoPro" not in table
