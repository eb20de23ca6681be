"""``deblur-predict``: deblur your own images with a trained network (docs/predict.md).

    deblur-predict ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt input=photos/ output=deblurred/
    deblur-predict ckpt_path=weights.pth model=msfs input='shots/*.jpg' output=out tile=512 tile_overlap=32

Keys: ``conf/predict.yaml`` and the shared ``conf/inference/default.yaml`` (tile, device, speed options,
TLC, self_ensemble). The work is :func:`deblur.prediction.predict_images`.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.config.inference_settings import InferenceSettings
from deblur.paths import CONF_DIR
from deblur.prediction import PredictionIncomplete, predict_images

register_configs()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Deblur ``cfg.input`` into ``cfg.output`` as configured; returns the summary."""
    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") is not None else None
    return predict_images(
        str(cfg.ckpt_path),  # '???' fails here naming the key
        str(cfg.input),
        str(cfg.output),
        model=model,
        settings=InferenceSettings.from_config(cfg),
        recursive=bool(cfg.recursive),
        overwrite=bool(cfg.overwrite),
        allow_inplace=bool(cfg.allow_inplace),
        on_error=str(cfg.on_error),
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
@user_errors("deblur-predict")
def _hydra_main(cfg: DictConfig) -> None:
    # the task; Hydra names the job (and its log file) after this module
    try:
        result = run(cfg)
    except PredictionIncomplete as err:
        print(f"deblur-predict: {err}", file=sys.stderr)
        sys.exit(1)
    kept = f"; kept {len(result['kept'])} existing" if result["kept"] else ""
    print(f"deblurred {len(result['written'])} image(s) into {result['output']}{kept}")


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-predict``."""
    return run_command("deblur-predict", "predict", _hydra_main, cfg)


if __name__ == "__main__":
    main()
