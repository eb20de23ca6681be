"""What counts as a user's mistake (bad input, bad config, bad file) rather than a bug in the suite.

Commands print a user error as one message and exit with code 2 (:mod:`deblur.cli.common`); anything else
keeps its traceback. Library functions raise :class:`UserError` (a ``ValueError``) or one of its subclasses
with a message that names the key or the file and says what was expected.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path

#: the suite's package folder: a ValueError raised by our own checks is a user error
_PACKAGE = Path(__file__).resolve().parent


class UserError(ValueError):
    """Bad input: the message names the config key or the file and says what was expected."""


def is_user_error(err: BaseException) -> bool:
    """True for errors a user fixes by changing input: :class:`UserError`, missing / unwritable files,
    configuration errors (Hydra, OmegaConf), and ``ValueError`` raised by the suite's own checks (the
    innermost frame is in the ``deblur`` package). A ``ValueError`` from inside torch or numpy is a bug.
    A full disk (an ``OSError`` with errno ENOSPC / EDQUOT) is an environment error, reported the same way."""
    if isinstance(err, UserError | FileNotFoundError | NotADirectoryError | PermissionError):
        return True
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk or quota
        return True
    try:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if isinstance(err, HydraException | OmegaConfBaseException):
            return True
    except ImportError:  # pragma: no cover - both ship with the suite
        pass
    if isinstance(err, ValueError) and err.__traceback__ is not None:
        innermost = traceback.extract_tb(err.__traceback__)[-1]
        return Path(innermost.filename).resolve().is_relative_to(_PACKAGE)
    return False
