"""The notebooks (jupytext py:percent sources in notebooks/) execute end to end on small data.

Each source is converted to a notebook in a temporary folder and run with nbclient in a fresh kernel;
parameters reach it through DEBLUR_NB_* environment variables. Nothing is written into notebooks/.
"""

import csv
import json
import math
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from deblur.data.datamodule import DeblurDataModule
from deblur.paths import REPO_ROOT
from tests.integration.test_analyze import SMALL_DATA, SMALL_DATA_DICT, quiet_trainer, tiny_module

NOTEBOOKS = REPO_ROOT / "notebooks"
#: seconds one cell may take (the whole budget of these tests is well under a minute)
CELL_TIMEOUT = 120


def run_notebook(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Convert notebooks/<name>.py and execute it in ``workdir``; the executed .ipynb is kept there."""
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    finally:
        nbformat.write(notebook, workdir / f"{name}.ipynb")
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def count_images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for cell in notebook.cells for o in cell.get("outputs", []))


def test_frequency_analysis_notebook_reproduces_fig_1_2_7(tmp_path, monkeypatch):
    ckpt = tmp_path / "tiny.ckpt"  # a real Lightning checkpoint of a tiny network
    trainer = quiet_trainer(limit_val_batches=1)
    trainer.validate(tiny_module(), datamodule=DeblurDataModule(data=SMALL_DATA_DICT), verbose=False)
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "analysis"
    monkeypatch.setenv("DEBLUR_NB_OVERRIDES", " ".join(SMALL_DATA))
    monkeypatch.setenv("DEBLUR_NB_CKPT", str(ckpt))
    monkeypatch.setenv("DEBLUR_NB_OUTPUT_DIR", str(out))
    notebook = run_notebook("frequency_analysis", tmp_path)
    payload = json.loads((out / "analysis.json").read_text())
    assert set(payload["js_divergence"]) == {"sharp_vs_blurry", "sharp_vs_deblurred"}
    for name in ("fig1_patch_bands.png", "fig2_sharp_vs_blurry.png", "fig7_sharp_vs_deblurred.png"):
        assert (out / name).exists()
    text = outputs_text(notebook)
    assert "sharp_vs_deblurred" in text and "high-band JS > low-band JS" in text
    assert count_images(notebook) >= 4  # Fig. 1, 2, 7 and the mean-entropy plot


def _fake_run(folder: Path, model: str, ablation: str | None, psnr: float, ssim: float, config: dict) -> None:
    folder.mkdir(parents=True)
    params = 1_000_000 if model == "msfs" else 2_000_000
    payload = {
        "val/psnr": psnr, "val/ssim": ssim, "val/psnr_input": 25.0, "val/ssim_input": 0.80,
        "model": model, "ablation": ablation, "parameters": params, "size_mb": params * 4 / 2**20,
        "config": {"model": {"name": model, **config.get("model", {})}, "loss": config.get("loss", {})},
    }
    (folder / "metrics.json").write_text(json.dumps(payload, allow_nan=True))


def test_ablation_results_notebook_builds_table_4_and_5(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    on = {"lambda_high": 0.005, "lambda_low": 0.005}

    def msfs(fsm: bool, csffm: bool, loss: dict) -> dict:
        return {"model": {"use_fsm": fsm, "use_csffm": csffm}, "loss": loss}

    _fake_run(sweep / "0_full", "msfs", "msfs/full", 28.0, 0.90, msfs(True, True, on))
    _fake_run(sweep / "1_full_seed2", "msfs", "msfs/full", 28.4, 0.92, msfs(True, True, on))
    _fake_run(sweep / "2_no_fsm", "msfs", "msfs/no_fsm", 27.0, 0.88,
              msfs(False, True, {"lambda_high": 0.0, "lambda_low": 0.0}))
    _fake_run(sweep / "3_no_clm", "msfs", "msfs/no_clm", 27.8, 0.895,
              msfs(True, True, {"lambda_high": 0.0, "lambda_low": 0.005}))
    # a diverged run
    _fake_run(sweep / "4_no_csffm", "msfs", "msfs/no_csffm", math.nan, math.nan, msfs(True, False, on))
    _fake_run(sweep / "nested" / "5_full", "fddn", "fddn/full", 27.5, 0.89, {"model": {"variant": "full"}})
    _fake_run(sweep / "6_fddn_no_fsb", "fddn", "fddn/no_fsb", 27.1, 0.87, {"model": {"variant": "no_fsb"}})
    (sweep / "7_broken").mkdir()
    (sweep / "7_broken" / "metrics.json").write_text("{not json")
    out = tmp_path / "tables"
    monkeypatch.setenv("DEBLUR_NB_SWEEP_DIR", str(sweep))
    monkeypatch.setenv("DEBLUR_NB_OUTPUT_DIR", str(out))
    notebook = run_notebook("ablation_results", tmp_path)

    table4 = (out / "table4_msfs.md").read_text()
    assert "| ablation | FSM | CSFFM | CLM | Consistency | PSNR (dB) | SSIM |" in table4
    assert "| msfs/no_fsm | ✗ | ✓ | ✗ | ✗ | 27.00 | 0.8800 |" in table4
    assert "| msfs/no_clm | ✓ | ✓ | ✗ | ✓ |" in table4
    assert "28.20 ± 0.28" in table4  # two seeds of the full model averaged
    assert table4.index("msfs/no_fsm") < table4.index("msfs/full")  # full model last, as in the paper
    assert "n/a" in table4  # the diverged run is shown, not hidden
    table5 = (out / "table5_fddn.md").read_text()
    assert "Model Size (MB)" in table5 and "| fddn/no_fsb | ✓ | ✗ | ✗ |" in table5
    with open(out / "ablation_runs.csv", newline="", encoding="utf-8") as handle:
        rows = {row["ablation"]: row for row in csv.DictReader(handle)}
    assert rows["msfs/full"]["runs"] == "2" and float(rows["msfs/full"]["val/psnr"]) == pytest.approx(28.2)
    assert (out / "ablation_bars.png").stat().st_size > 10_000
    assert "skipping" in outputs_text(notebook)  # the broken metrics.json is reported
    assert count_images(notebook) == 1
