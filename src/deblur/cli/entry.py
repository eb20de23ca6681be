"""The console entry point every command shares: check the command line, then hand over to Hydra.

* A wrong override (``trainer.max_step=10``, ``model.width=abc``, ``model=foo``) is one message
  ``deblur-<cmd>: error: ...`` naming the key and the nearest valid keys, exit code 2, before Hydra
  creates a run folder (:func:`deblur.config.overrides.check_overrides`); also every value of a multirun.
* A multirun goes on after a job fails with a user error (:class:`deblur.sweeps.JobFailed`), lists it in
  ``jobs.md``, and ends with exit code 2.
* ``--help`` is Hydra's, with the suite's template (:mod:`deblur.cli.help`).
* Tab completion (``-sc query=bash``, what ``-sc install=bash`` sets up) never offers the ConfigStore's
  schema nodes (``model=msfs_schema``), which Hydra lists among a group's options.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable
from typing import Any
from unittest import mock

from hydra._internal.utils import get_args_parser

from deblur.cli.help import register_help_resolver
from deblur.config.choices import SCHEMA_SUFFIX
from deblur.config.overrides import check_overrides
from deblur.errors import UserError
from deblur.sweeps import JobFailed


def _checks_overrides(args: Any) -> bool:
    """False for the modes that compose nothing of the user's (help, completion, info) or replace the
    suite's config folder (``--config-path``); a ``--config-dir`` is searched with ``conf/``."""
    skip = (args.help, args.hydra_help, args.shell_completion, args.info, args.config_path,
            getattr(args, "experimental_rerun", None))  # fmt: skip
    return not any(skip)


def _completion(hydra_main: Callable[[], Any]) -> None:
    """Run Hydra's completion query and print its suggestions without ``*_schema`` options."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        hydra_main()
    print(" ".join(w for w in buffer.getvalue().split() if not w.endswith(SCHEMA_SUFFIX)))


def run_command(command: str, config_name: str, hydra_main: Callable[..., Any], cfg: Any = None) -> Any:
    """Check ``sys.argv``'s overrides for ``config_name``, then run ``hydra_main`` (the command's
    ``@hydra.main`` function). With ``cfg`` (a composed config, as tests pass it) run the task directly."""
    if cfg is not None:
        return hydra_main(cfg)
    register_help_resolver()  # --help's template (deblur.cli.help)
    args = get_args_parser().parse_args(sys.argv[1:])  # argparse reports a bad flag itself (exit 2)
    if args.shell_completion and any(o.startswith("query=") for o in args.overrides):
        return _completion(hydra_main)
    if _checks_overrides(args):
        try:
            name = args.config_name or config_name
            check_overrides(name, args.overrides, bool(args.multirun), config_dir=args.config_dir)
        except UserError as err:
            print(f"{command}: error: {err}", file=sys.stderr)
            sys.exit(2)
    if not args.multirun:
        return hydra_main()
    with mock.patch.dict(os.environ, {"HYDRA_FULL_ERROR": "1"}):  # Hydra raises a job's error to us
        try:
            return hydra_main()
        except JobFailed as err:  # its message was printed when the job failed
            where = f"{err.sweep_dir}/jobs.md" if err.sweep_dir else "the sweep's jobs.md"
            print(f"{command}: error: a job of the sweep failed (its error is above); the finished and "
                  f"failed jobs are listed in {where}", file=sys.stderr)  # fmt: skip
            sys.exit(2)
