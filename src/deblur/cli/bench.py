"""``deblur-bench``: measure every model, loader and analysis against this machine's peak conv rate.

    deblur-bench                                  # the full benchmark (make bench); bench.json + bench.md
    deblur-bench timed=[msfs_small] tiling.enabled=false precision_run.enabled=false

Options: ``conf/bench.yaml``. The work is :func:`deblur.bench.benchmark.run`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from deblur.bench.benchmark import run
from deblur.cli.common import user_errors
from deblur.cli.entry import run_command
from deblur.config import register_configs
from deblur.paths import CONF_DIR

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
@user_errors("deblur-bench")
def _hydra_main(cfg: DictConfig) -> None:
    # the task; Hydra names the job (and its log file) after this module
    run(cfg)


def main(cfg: DictConfig | None = None) -> Any:
    """Console entry point ``deblur-bench``."""
    return run_command("deblur-bench", "bench", _hydra_main, cfg)


if __name__ == "__main__":
    main()
