"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader (or a crash) never sees a half-written file, and nothing is written next to the inputs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: temporary files are named ``.<target name>.tmp-<8 random characters><suffix>``
TEMP_MARK = ".tmp-"
_TEMP_NAME = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"[A-Za-z0-9_]{8}[^/]*$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NoSpaceLeft(OSError):
    """A write failed because the disk (or the user's quota) is full: an ``OSError`` (errno ENOSPC) whose
    message names the file; commands report it as a user error (:func:`deblur.errors.is_user_error`)."""

    def __init__(self, path: str | os.PathLike, message: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        self.message = message or f"no space left on device: could not write {self.path}"

    def __str__(self) -> str:
        return self.message


#: errno values of a full disk or quota
_FULL = (errno.ENOSPC, errno.EDQUOT)
#: a write that fails with a RuntimeError while less than this is free failed for lack of space (torch's
#: writer raises ``RuntimeError: ... file write failed`` without an errno)
_ALMOST_FULL_BYTES = 1 << 20


def _chain(err: BaseException | None) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling."""
    chain: list[BaseException] = []
    while err is not None and all(err is not e for e in chain):
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def disk_full(err: BaseException) -> NoSpaceLeft | OSError | None:
    """The first full-disk error in ``err``'s chain (an ``OSError`` with errno ENOSPC / EDQUOT, such as
    :class:`NoSpaceLeft`), or None."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in _FULL:
            return e
    return None


def _failed_for_space(err: BaseException, folder: Path) -> bool:
    if disk_full(err) is not None:
        return True
    if not isinstance(err, RuntimeError):  # an OSError with another errno said what it was
        return False
    try:
        return shutil.disk_usage(folder).free < _ALMOST_FULL_BYTES
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then atomically move it to ``path``.

    ``suffix`` keeps the extension on the temporary name for writers that infer the format from it.

    Raises:
        NoSpaceLeft: the disk is full (naming ``path``); the temporary file is removed and an existing file
            at ``path`` stays as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}{TEMP_MARK}"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates the file private (0600); give it the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as err:
        full = isinstance(err, Exception) and not isinstance(err, NoSpaceLeft)
        full = full and _failed_for_space(err, target.parent)  # measured while the temporary file fills it
        if os.path.exists(tmp):
            os.unlink(tmp)
        if full:
            raise NoSpaceLeft(target) from err
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` leaves behind when a process is killed mid-write.

    Only names of our own pattern (``.<name>.tmp-XXXXXXXX<suffix>``) are touched. Call it when a command
    starts writing into a folder it owns (no other writer at the same time). Returns what was removed.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(".*") if recursive else root.glob(".*")
    removed = []
    for path in candidates:
        if path.is_file() and _TEMP_NAME.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_writable(folder: str | os.PathLike, key: str = "output") -> Path:
    """Make sure files can be created in ``folder`` before any work starts; nothing is left behind.

    An existing folder is probed with a temporary file; a missing one needs its nearest existing parent to
    be writable (the folder itself is created when the first result is written).

    Raises:
        PermissionError: naming ``key`` and the folder, when it cannot be written to.
    """
    path = Path(folder).expanduser()
    if path.is_dir():
        try:
            fd, probe = tempfile.mkstemp(prefix=f".write-check{TEMP_MARK}", dir=path)
            os.close(fd)
            os.unlink(probe)
            return path
        except OSError as err:
            reason = err.strerror or str(err)
            raise PermissionError(f"{key}={path} is not writable ({reason}); choose another folder") from err
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise PermissionError(f"{key}={path} cannot be created: {parent} is not a writable folder")
    return path
