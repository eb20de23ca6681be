"""What every command shares: a user error is one message on stderr and exit code 2, a bug keeps its
traceback (:func:`deblur.errors.is_user_error` tells them apart)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from deblur.cli.logfile import log_to_files
from deblur.errors import is_user_error
from deblur.run_folder import undo_run_folder
from deblur.sweeps import JobFailed, multirun_sweep_dir

log = logging.getLogger("deblur")


def user_errors(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command's Hydra task function: user errors -> ``<command>: error: <message>``, exit 2."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                if not is_user_error(err):
                    raise
                log_to_files(log, logging.ERROR, f"{type(err).__name__}: {err}")  # printed once, below
                print(f"{command}: error: {err}", file=sys.stderr)
                sweep = multirun_sweep_dir()
                if sweep is not None:  # a sweep's job: marked failed (its folder kept), the others still run
                    raise JobFailed(str(err), sweep) from None
                undo_run_folder()  # a refusal changes nothing: no stub run folder, .hydra/ put back
                sys.exit(2)

        return run

    return wrap
