"""``deblur-convert``: save the weights of any accepted file (e.g. the MSFS-Net authors' ``model.pkl``) as a
native checkpoint that every command reads without ``model=``.

    deblur-convert ckpt_path=model.pkl output=msfs_gopro_public.ckpt

The work is :func:`deblur.checkpoints.convert_checkpoint`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.checkpoints import convert_checkpoint, describe_model
from deblur.cli.common import user_errors
from deblur.config import register_configs
from deblur.paths import CONF_DIR

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="convert")
@user_errors("deblur-convert")
def main(cfg: DictConfig) -> None:
    """Console entry point ``deblur-convert``."""
    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") is not None else None
    path, model_cfg = convert_checkpoint(str(cfg.ckpt_path), str(cfg.output), model=model)
    print(f"wrote {path}: model {describe_model(model_cfg)}")


if __name__ == "__main__":
    main()
