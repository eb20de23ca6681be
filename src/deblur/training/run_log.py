"""The run's log: Lightning's messages and the run's own ones (resume notices, the final table) in the
run's log file (Hydra's ``<job>.log``) as well as on the console."""

from __future__ import annotations

import logging

#: the run's own messages (resume notices, the final table): written to the run's log files only (they
#: are printed as well), see :func:`route_logs_to_run_file`
report_log = logging.getLogger("deblur.report")


def route_logs_to_run_file() -> None:
    """Send Lightning's messages and :data:`report_log` to the run's log files (Hydra's ``<job>.log``).

    Lightning gives its logger a console handler of its own and stops propagation when it is imported
    before logging is configured, so Hydra's file handler never saw its messages. The file handlers of
    the root logger are attached to both loggers; handlers of an earlier job of the same process (a
    multirun) are removed first.
    """
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    report_log.propagate = False
    report_log.setLevel(logging.INFO)
    for logger in (logging.getLogger("lightning.pytorch"), report_log):
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and handler not in files:
                logger.removeHandler(handler)
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    package = logging.getLogger("deblur")
    if files and package.level > logging.INFO:  # NOTSET (0) inherits Hydra's INFO
        package.setLevel(logging.INFO)


def say(message: str) -> None:
    """Print ``message`` and write it to the run's log file."""
    print(message)
    report_log.info(message)
