"""The speed probes' cache: what was chosen on this machine, so that a choice is timed once.

A JSON file (:func:`default_cache_path`, written atomically) of entries under a key of (kind, device name
with the CPU thread count, torch version, network identity, input size class = the rounded log2 of
N x H x W of the probed input, the options given), each with the choice, its times, each stage's margin
and spread (``decisions``) and the number of probes it rests on (``checks``). A cached entry is used
without timing anything (:func:`trusted_entry`), except one whose decision was marginal (``|gain|`` within
2 spreads), which is probed again until it rests on :data:`CHECKS` probes, and one without recorded
decisions (written by an older rule); entries written by another torch version are ignored.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblur.utils.files import atomic_write_json

log = logging.getLogger(__name__)

#: a cached choice whose decision was marginal is probed again until it has been probed this many times
CHECKS = 2
#: environment variable naming the cache file (overrides the XDG / home default)
CACHE_ENV = "DEBLUR_SPEED_CACHE"
CACHE_VERSION = 1


def torch_version() -> str:
    return torch.__version__


def network_identity(net: nn.Module) -> str:
    """A 16-hex-digit hash of ``net``'s architecture: its module tree (``repr``) and the names, shapes and
    dtypes of its parameters and buffers (not their values: speed does not depend on the weights)."""
    digest = hashlib.sha256(repr(net).encode())
    for name, tensor in itertools.chain(net.named_parameters(), net.named_buffers()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    return digest.hexdigest()[:16]


def config_identity(*configs: Mapping[str, Any] | None) -> str:
    """A 16-hex-digit hash of plain config dicts (e.g. the model and loss configs)."""
    text = json.dumps([dict(c) if c is not None else None for c in configs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def size_class(shape: Sequence[int]) -> str:
    """``"2^16"``: the rounded log2 of N x H x W of an (N, C, H, W) shape (a 256x256 image is 2^16)."""
    n, _, h, w = (int(v) for v in shape)
    return f"2^{round(math.log2(max(n * h * w, 1)))}"


def default_cache_path() -> Path:
    """``$DEBLUR_SPEED_CACHE``, else ``$XDG_CACHE_HOME/deblur/speed.json``, else
    ``~/.cache/deblur/speed.json``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "deblur" / "speed.json"


def cache_path(cache: Any) -> Path | None:
    """``cache``: None or True = :func:`default_cache_path`; False = no cache; a path = that file."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return default_cache_path()
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser()
    raise ValueError(f"speed cache must be a file path, true/null (the default file) or false, got {cache!r}")


def cache_key(kind: str, device: str, network: str, shape: Sequence[int], pinned: Mapping[str, Any]) -> str:
    """The key of a choice: ``kind`` (inference / training), device name, this torch version, network
    identity, the size class of the probed (N, C, H, W) ``shape`` and the options given."""
    given = ",".join(f"{k}={v}" for k, v in sorted(pinned.items())) or "-"
    size = size_class(shape)
    return f"{kind} | {device} | torch {torch_version()} | net {network} | {size} | given {given}"


def new_entry(kind: str, device: str, network: str, shape: Sequence[int], **record: Any) -> dict[str, Any]:
    """A cache entry: the key's facts (with this torch version and the size class), the ``record``
    (``given``, ``options``, ``times_ms``, ``rejected``, ``probe_seconds``, ``decisions``, ``checks``)
    and today's date."""
    return {
        "kind": kind, "device": device, "torch": torch_version(), "network": network,
        "size_class": size_class(shape), "shape": list(shape), **record,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("speed cache %s is unreadable (%s); probing again", path, err)
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("entries"), dict)
    ):
        return {}
    return data["entries"]


def cached_entry(path: Path | None, key: str) -> dict[str, Any] | None:
    """The cache entry of ``key``, or None (no cache, no entry, or one written by another torch)."""
    if path is None:
        return None
    entry = _read_cache(path).get(key)
    if not isinstance(entry, dict) or entry.get("torch") != torch_version():
        return None
    return entry


def store_entry(path: Path | None, key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` under ``key`` to the cache file (read again just before, written atomically); a cache
    that cannot be written is logged and skipped."""
    if path is None:
        return
    entries = _read_cache(path)
    entries[key] = entry
    try:
        atomic_write_json(path, {"version": CACHE_VERSION, "entries": entries})
    except OSError as err:
        log.warning("speed cache %s could not be written (%s); the choice is not remembered", path, err)


def trusted_entry(entry: Mapping[str, Any]) -> bool:
    """Whether a cached choice is used without timing: its decisions were recorded (entries of an older
    rule were not) and none was marginal, or it has been probed :data:`CHECKS` times already."""
    decisions = entry.get("decisions")
    if not isinstance(decisions, list):
        return False
    marginal = any(isinstance(d, dict) and d.get("marginal") for d in decisions)
    return not marginal or int(entry.get("checks", 1)) >= CHECKS


def checks_after(entry: Mapping[str, Any] | None) -> int:
    """How many probes a new entry rests on: one more than a re-checked entry of this rule."""
    if entry is None or not isinstance(entry.get("decisions"), list):
        return 1
    return int(entry.get("checks", 1)) + 1
