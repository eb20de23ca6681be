"""``deblur-eval``: a trained network on the benchmark test sets, scored as the papers score them.

    deblur-eval ckpt_path=run/checkpoints/last.ckpt datasets=[gopro,hide] \\
        roots.gopro=/data/GOPRO_Large roots.hide=/data/HIDE_dataset
    deblur-eval ckpt_path=w.pth model=msfs datasets=[realblur_j] roots.realblur_j=/data/RealBlur tile=512

Config: ``conf/eval.yaml`` (``ckpt_path``, ``datasets``, ``roots``, ``options``, ``protocols``, ``protocol``,
``crop_border``, ``test_y_channel``, ``metrics.lpips``, ``metrics.lpips_net``, ``metrics.lpips_weights``,
``save_images``, ``limit``, ``on_bad_pair``, ``score_workers``, ``blurry_baseline``) and
``conf/inference/default.yaml`` (``device``, ``tile``, speed options, ``tlc``, ``self_ensemble``). Writes
``<dataset>/{scores.csv,summary.json,summary.md}``, ``results.md`` and ``results.json`` into
``paths.output_dir`` (Hydra's run dir). The library: :func:`deblur.evaluation.evaluate`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.evaluation import evaluate, results_markdown
from deblur.paths import CONF_DIR

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@user_errors("deblur-eval")
def _hydra_main(cfg: DictConfig) -> dict[str, Any]:
    # the task; Hydra names the job (and its log file) after this module
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # ??? fails naming the key
    results = evaluate(
        plain["ckpt_path"],
        plain["datasets"],
        plain["roots"],
        model=plain.get("model"),
        protocols=plain["protocols"],
        protocol=plain.get("protocol"),
        crop_border=plain.get("crop_border", 0),
        test_y_channel=plain.get("test_y_channel", False),
        metrics=plain.get("metrics"),
        dataset_options=plain["options"],
        settings=InferenceSettings.from_config(plain),
        output_dir=plain["paths"]["output_dir"],
        save_images=plain["save_images"],
        limit=plain["limit"],
        on_bad_pair=plain["on_bad_pair"],
        score_workers=plain["score_workers"],
        blurry_baseline=plain["blurry_baseline"],
    )
    print(results_markdown(results), end="")
    print(f"wrote results.md, results.json and per-dataset scores to {plain['paths']['output_dir']}")
    return results


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-eval``; returns the ``results.json`` payload."""
    return run_command("deblur-eval", "eval", _hydra_main, cfg)


if __name__ == "__main__":
    main()
