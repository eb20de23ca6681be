"""``deblur-prepare``: cut a paired dataset once into sub-images (or decoded arrays) for fast training.

    deblur-prepare data.root=/data/GOPRO_Large output_root=/data/GOPRO_prepared
    deblur-train data=gopro data.root=/data/GOPRO_prepared ...

See :mod:`deblur.data.subimages` and ``docs/datasets.md`` (when it pays off: many epochs, few CPU cores per
GPU). The source is any paired dataset of the ``data`` group (default ``data=gopro``); it is only read.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.data.subimages import prepare_dataset
from deblur.paths import CONF_DIR

register_configs()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Prepare ``cfg.data`` into ``cfg.output_root``; returns the manifest."""
    output_root = str(cfg.output_root)  # '???' fails here with Hydra's message
    source = OmegaConf.to_container(cfg.data, resolve=True)
    manifest = prepare_dataset(
        source,
        output_root,
        splits=list(cfg.splits),
        patch_size=cfg.patch_size,
        stride=cfg.stride,
        fmt=str(cfg.format),
        val_mode=str(cfg.val_mode),
        png_compression=int(cfg.png_compression),
        overwrite=bool(cfg.overwrite),
        num_workers=int(cfg.num_workers),
    )
    for split, c in manifest["splits"].items():
        print(f"{split}: {c['pairs']} pairs, {c['files_written']} files written, {c['files_kept']} kept")
    print(f"prepared dataset: {output_root} (use data=gopro data.root={output_root})")
    return manifest


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
@user_errors("deblur-prepare")
def _hydra_main(cfg: DictConfig) -> None:
    # the task; Hydra names the job (and its log file) after this module
    run(cfg)


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-prepare``."""
    return run_command("deblur-prepare", "prepare", _hydra_main, cfg)


if __name__ == "__main__":
    main()
