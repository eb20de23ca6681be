"""``deblur-train``: compose the config, train, validate the final weights, write ``metrics.json``.

    deblur-train                                    # msfs_small on the built-in dataset (make train)
    deblur-train model=msfs ablation=msfs/no_csffm  # any Table 4 row
    deblur-train -m ablation=msfs/full,msfs/no_fsm  # a sweep

The work is :func:`deblur.training.train`. A user error (a bad config value, a missing dataset, a bad
pair, no checkpoint to resume ...) is one message on stderr and exit code 2; a bug keeps its traceback.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.paths import CONF_DIR
from deblur.training import train

register_configs()


@user_errors("deblur-train")
def _train_job(cfg: DictConfig) -> float:
    # returns val/psnr so sweepers (Optuna) can optimise it
    return train(cfg)["val/psnr"]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    # the decorator stays outside Hydra's: Hydra names the job (train.log) after this function's file
    return _train_job(cfg)


def main() -> None:
    """``deblur-train``: check the overrides (group choices, keys, values; every value of a multirun),
    then run Hydra."""
    run_command("deblur-train", "train", _hydra_main)


if __name__ == "__main__":
    main()
