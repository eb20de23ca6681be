"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader (or a crash) never sees a half-written file, and nothing is written next to the inputs.
"""

from __future__ import annotations

import json
import os
import re
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


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then atomically move it to ``path``.

    ``suffix`` keeps the extension on the temporary name for writers that infer the format from it.
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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
