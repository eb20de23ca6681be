"""``deblur-score``: score a folder of predictions against a folder of ground truth.

    deblur-score pred_dir=results/gopro gt_dir=/data/GOPRO_Large     # the test split's sharp images
    deblur-score pred_dir=results/realblur_j gt_dir=/data/RealBlur dataset=realblur_j protocol=realblur
    deblur-score pred_dir=other_method/ gt_dir=sharp_images/         # any two folders
    deblur-score pred_dir=out/ gt_dir=sharp/ protocol=basicsr crop_border=4 test_y_channel=true

Config: ``conf/score.yaml`` (``pred_dir``, ``gt_dir``, ``dataset``, ``protocol``, ``on_missing``,
``recursive``, ``num_workers``, ``blurry_baseline``, and ``crop_border`` / ``test_y_channel`` for
``protocol=basicsr``; ``metrics.lpips``, ``metrics.lpips_net``, ``metrics.lpips_weights``). Writes
``scores.csv``, ``summary.json`` and ``summary.md`` into ``paths.output_dir`` (Hydra's run dir); the
inputs are only read. The library: :func:`deblur.metrics.scoring.score_folders`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.metrics.scoring import score_folders, summary_markdown
from deblur.paths import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="score")
@user_errors("deblur-score")
def _hydra_main(cfg: DictConfig) -> dict[str, Any]:
    # the task; Hydra names the job (and its log file) after this module
    _, summary = score_folders(
        str(cfg.pred_dir),  # '???' fails here with Hydra's message naming the key
        str(cfg.gt_dir),
        protocol=cfg.protocol,
        recursive=cfg.recursive,
        on_missing=cfg.on_missing,
        num_workers=cfg.num_workers,
        output_dir=cfg.paths.output_dir,
        dataset=cfg.get("dataset"),
        blurry_baseline=cfg.get("blurry_baseline", False),
        crop_border=cfg.get("crop_border", 0),
        test_y_channel=cfg.get("test_y_channel", False),
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True) if cfg.get("metrics") else None,
    )
    print(summary_markdown(summary), end="")
    print(f"wrote scores.csv, summary.json, summary.md to {cfg.paths.output_dir}")
    return summary


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-score``; returns the summary."""
    return run_command("deblur-score", "score", _hydra_main, cfg)


if __name__ == "__main__":
    main()
