"""``deblur-analyze``: entropy distributions of the low/high-frequency parts of a dataset at scales 1, 1/2
and 1/4, and their Jensen-Shannon divergences (MSFS-Net Section 3.1, Fig. 1, 2; Section 4.2.1, Fig. 7).

    deblur-analyze                                          # built-in dataset, val split
    deblur-analyze ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # + deblurred images, Fig. 7
    deblur-analyze data=gopro data.root=data/GOPRO_Large split=train device=cuda analysis.batch_size=16
    deblur-analyze analysis.sigma=3 analysis.bins=128 analysis.max_images=200

Config: ``conf/analyze.yaml`` (``data``, ``split``, ``ckpt_path``, ``analysis.*``) and
``conf/inference/default.yaml`` (``device``, speed options, ``tile``, ``tlc``, ``self_ensemble``). Writes
``analysis.json``, ``fig1_patch_bands.png``, ``fig2_sharp_vs_blurry.png`` (and
``fig7_sharp_vs_deblurred.png``) into ``paths.output_dir`` (Hydra's run dir). The library:
:func:`deblur.analysis.analyzer.analyze`.
"""

from __future__ import annotations

import math
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.analysis.analyzer import analyze, format_summary
from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.paths import CONF_DIR

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
@user_errors("deblur-analyze")
def _hydra_main(cfg: DictConfig) -> float:
    # the task; Hydra names the job (and its log file) after this module
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # ??? fails naming the key
    payload = analyze(
        plain["data"],
        plain["split"],
        ckpt_path=plain.get("ckpt_path"),
        analysis=plain["analysis"],
        settings=InferenceSettings.from_config(plain),
        output_dir=plain["paths"]["output_dir"],
    )
    print(format_summary(payload))
    print(f"  outputs: {plain['paths']['output_dir']}")
    value = payload["js_divergence"]["sharp_vs_blurry"]["high"][payload["scales"][0]]
    return value if math.isfinite(value) else float("nan")


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-analyze``; returns the full-scale high-band JS (sharp vs blurry)."""
    return run_command("deblur-analyze", "analyze", _hydra_main, cfg)


if __name__ == "__main__":
    main()
