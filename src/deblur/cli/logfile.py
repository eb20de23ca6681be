"""Record a message in the run's log files only (``train.log`` ...), not on the terminal.

A command prints a user error itself (``deblur-<cmd>: error: ...`` on stderr); logging it as well would
show it twice on the terminal (Hydra's console handler), yet the run's log file must keep it.
"""

from __future__ import annotations

import logging


def _file_handlers(logger: logging.Logger) -> list[logging.FileHandler]:
    """The file handlers a record of ``logger`` reaches (its own and its ancestors' while propagating)."""
    handlers: list[logging.FileHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += [h for h in current.handlers if isinstance(h, logging.FileHandler)]
        current = current.parent if current.propagate else None
    return handlers


def log_to_files(logger: logging.Logger, level: int, message: str) -> None:
    """Write ``message`` at ``level`` to the file handlers ``logger`` reaches, and to no console."""
    if not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(logger.name, level, __file__, 0, message, None, None)
    for handler in _file_handlers(logger):
        if record.levelno >= handler.level:
            handler.handle(record)
