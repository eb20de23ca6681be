"""Atomic output files: complete or absent, never half-written, with ordinary permissions."""

import json
import os
import stat

import pytest

from deblur.utils.files import atomic_write, atomic_write_json, atomic_write_text


def test_writes_and_replaces_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_json(target, {"val/psnr": 25.0})
    assert json.loads(target.read_text()) == {"val/psnr": 25.0}
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")

    def broken(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_a_full_disk_is_one_error_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    from deblur.utils.files import NoSpaceLeft

    target = tmp_path / "last.ckpt"
    target.write_text("old")

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NoSpaceLeft, match=f"no space left on device: could not write {target}$"):
        atomic_write(target, full)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["last.ckpt"]

    def torch_like(tmp):  # torch.save on a full disk: a RuntimeError without errno
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(NoSpaceLeft):
        atomic_write(target, torch_like)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**9))
    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):  # space left: not a full disk
        atomic_write(target, torch_like)
    assert target.read_text() == "old"
