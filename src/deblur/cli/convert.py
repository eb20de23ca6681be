"""``deblur-convert``: save the weights of any accepted file (e.g. the MSFS-Net authors' ``model.pkl``) as a
native checkpoint that every command reads without ``model=``.

    deblur-convert ckpt_path=model.pkl output=msfs_gopro_public.ckpt

The work is :func:`deblur.checkpoints.convert_checkpoint`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import convert_checkpoint, describe_model
from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.paths import CONF_DIR

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="convert")
@user_errors("deblur-convert")
def _hydra_main(cfg: DictConfig) -> None:
    # the task; Hydra names the job (and its log file) after this module
    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") is not None else None
    path, model_cfg = convert_checkpoint(str(cfg.ckpt_path), str(cfg.output), model=model)
    print(f"wrote {path}: model {describe_model(model_cfg)}")


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-convert``."""
    return run_command("deblur-convert", "convert", _hydra_main, cfg)


if __name__ == "__main__":
    main()
