"""``deblur-train``: compose the config, train, validate the final weights, write ``metrics.json``.

    deblur-train                                    # msfs_small on the built-in dataset (make train)
    deblur-train model=msfs ablation=msfs/no_csffm  # any Table 4 row
    deblur-train -m ablation=msfs/full,msfs/no_fsm  # a sweep

The work is :func:`deblur.training.train`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from deblur.config import register_configs
from deblur.config.choices import check_group_choices
from deblur.paths import CONF_DIR
from deblur.training import train

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    # returns val/psnr so sweepers (Optuna) can optimise it
    return train(cfg)["val/psnr"]


def main() -> None:
    """``deblur-train``: check group choices (listing the options of nested groups), then run Hydra."""
    try:
        check_group_choices(sys.argv[1:], CONF_DIR)
    except ValueError as err:
        sys.exit(f"deblur-train: {err}")
    _hydra_main()


if __name__ == "__main__":
    main()
