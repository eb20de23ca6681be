"""Read network weights from any file the suite accepts, safely: the one loader behind every command.

Formats, recognised by their content:

* a ``deblur-train`` (Lightning) checkpoint: a dict with ``state_dict`` (network weights under ``net.``)
  and ``hyper_parameters.model`` (the network's config, so nothing else is needed); a run with
  ``ema.decay`` stores the averaged weights there (read here) and the raw ones under
  ``current_model_state`` (read only by a resume, :mod:`deblur.lit.ema`);
* a plain state dict (tensors by name; a ``net.`` or ``module.`` prefix on every key is stripped): the
  network must be named (``model=<preset>`` on the command line, ``model=`` in the API);
* the foreign weights formats the networks declare (:class:`deblur.config.registry.WeightsFormat`):
  the MSFS-Net authors' released files (``model.pkl``, ``model_R.pkl``, ``model_J.pkl``: ``{"model":
  state_dict, ...}`` with their key names, optionally ``module.``-prefixed), converted in memory
  (:mod:`deblur.models.msfs.public`) and loaded into ``model=msfs_public`` (any other model is refused
  naming ``model=msfs_public``); the NAFNet authors' released files (``NAFNet-GoPro-width32.pth`` ...:
  ``{"params": state_dict}`` with NAFNet's key names), loaded as they are into the NAFNet their keys
  describe (:mod:`deblur.models.nafnet.weights`; ``model=nafnet`` may be given, another network is
  refused).

Every file is read with ``torch.load(..., weights_only=True)``: a pickle that refers to anything but tensors
and plain containers is refused and none of its code runs. Weights are loaded strictly: a file with
missing or unexpected weights, or weights of other shapes, fails naming the counts and the first keys; a
file with a NaN or infinite value in any tensor is refused naming the first such tensor
(:func:`check_finite_state`).
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from deblur.config.registry import WeightsFormat, component, components
from deblur.config.target import is_target_config, model_label
from deblur.errors import UserError
from deblur.utils.device import select_device

log = logging.getLogger(__name__)

#: how many key names an error message lists
_LISTED = 5


class CheckpointError(UserError):
    """A checkpoint that cannot (or must not) be loaded; the message names the file."""


def check_complete(path: str | os.PathLike, key: str = "ckpt_path") -> None:
    """Refuse a checkpoint file that was not written to its end: empty, or a zip archive (the format of
    ``torch.save``) without its end record, e.g. an interrupted copy or a write on a full disk.

    Raises:
        CheckpointError: naming ``key`` and the file.
    """
    path = Path(path).expanduser()
    size = path.stat().st_size
    if size == 0:
        problem = "is empty (0 bytes)"
    else:
        with path.open("rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
        if not zipped or zipfile.is_zipfile(path):
            return
        problem = f"is truncated ({size} bytes, its zip archive has no end record)"
    raise CheckpointError(
        f"{key}={path} {problem}: the file was not written completely (an interrupted copy or a full disk). "
        "Resume from another checkpoint (ckpt_path=<file>) or start a new run in another folder."
    )


def read_checkpoint(path: str | os.PathLike, key: str = "ckpt_path") -> Mapping[str, Any]:
    """The contents of a checkpoint file, read with ``weights_only=True`` on the CPU.

    Raises:
        FileNotFoundError: no such file (naming ``key``).
        CheckpointError: not a readable checkpoint (corrupt, not a torch file, or holding objects other
            than tensors and plain containers).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key} does not exist or is not a file: {path}")
    check_complete(path, key)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for foreign objects, RuntimeError / EOFError for others
        reason = "it holds objects other than tensors and plain containers"
        if not _is_weights_only_refusal(err):
            reason = "it is not a PyTorch checkpoint, or it is truncated or corrupt"
        raise CheckpointError(
            f"{key}={path} is not a readable checkpoint: {reason}. The suite reads weights files safely "
            "(tensors and plain containers only); save the network's weights with "
            "torch.save(net.state_dict(), path) or use a checkpoint written by deblur-train."
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{key}={path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def _is_weights_only_refusal(err: Exception) -> bool:
    return "weights_only" in str(err) or "Unsupported global" in str(err)


def _strip(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def weights_formats() -> list[WeightsFormat]:
    """The foreign weights formats the declared networks read."""
    return [fmt for entry in components("model").values() for fmt in entry.formats()]


def _read_foreign(obj: Mapping[str, Any], source: str, asked: Mapping[str, Any] | None,
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:  # fmt: skip
    """``(state, model config)`` of a file in a declared foreign format, or None for any other file."""
    fmt = next((f for f in weights_formats() if f.recognise(obj)), None)
    if fmt is None:
        return None
    try:
        state, saved = fmt.read(obj)
    except ValueError as err:
        raise CheckpointError(f"{source}: looks like {fmt.label} but {err}") from err
    if fmt.only_preset is not None and asked is not None and any(
        asked.get(k) != v for k, v in saved.items() if k not in fmt.free_keys
    ):
        raise CheckpointError(
            f"{source} holds {fmt.label}, which fit model={fmt.only_preset} only, but model "
            f"{describe_model(asked)} was asked for: use model={fmt.only_preset} (or leave model= out)"
        )
    if fmt.only_preset is not None:
        log.info("%s: %s, converted to model=%s", source, fmt.label, fmt.only_preset)
    else:
        log.info("%s: %s, read as model %s", source, fmt.label, describe_model(saved))
    return state, saved


def split_checkpoint(obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(network state dict, model config saved with it or None)`` of a checkpoint's contents."""
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state = dict(obj["state_dict"])
        if any(k.startswith("net.") for k in state):
            state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        hparams = obj.get("hyper_parameters") or {}
        saved = hparams.get("model") if isinstance(hparams, Mapping) else None
        return state, dict(saved) if isinstance(saved, Mapping) else None
    state = dict(obj)
    for prefix in ("module.", "net."):
        state = _strip(state, prefix)
    return state, None


def _listing(keys: list[str]) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def check_finite_state(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse a state dict with a NaN or infinite value in any tensor, naming ``source`` and the first one.

    A network with one non-finite weight (or buffer, e.g. a BatchNorm running variance) gives NaN outputs,
    which would be written as black images or scored as meaningless numbers.
    """
    bad = [k for k, t in state.items() if t.is_floating_point() or t.is_complex()]
    bad = [k for k in bad if not bool(torch.isfinite(state[k]).all())]
    if bad:
        first = state[bad[0]]
        nans, total = int(torch.isnan(first).sum()), first.numel()
        raise CheckpointError(
            f"{source} holds non-finite weights: {bad[0]} has {total - int(torch.isfinite(first).sum())} of "
            f"{total} value(s) NaN or infinite ({nans} NaN); {len(bad)} of {len(state)} tensor(s) are not "
            "finite. Such a network gives no meaningful output: use a checkpoint saved before training "
            "diverged (deblur-train keeps the last finite state in checkpoints/last.ckpt)."
        )


def load_state_strict(net: nn.Module, state: Mapping[str, Any], source: str, model_cfg: Any) -> None:
    """``net.load_state_dict(state, strict=True)`` with one clear message naming ``source`` on a mismatch
    or on non-finite weights (:func:`check_finite_state`)."""
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: the state dict holds entries that are not tensors")
    check_finite_state(state, source)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weight(s) ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weight(s) ({_listing(unexpected)})")
        if shapes:
            first = shapes[0]
            parts.append(
                f"{len(shapes)} weight(s) of another shape (e.g. {first}: file "
                f"{tuple(state[first].shape)}, network {tuple(own[first].shape)})"
            )
        raise CheckpointError(
            f"{source} does not match the network {model_cfg}: " + "; ".join(parts)
            + ". Check model=... and its options."
        )
    net.load_state_dict(state, strict=True)


class Loaded(NamedTuple):
    """What :func:`load_checkpoint` returns."""

    net: nn.Module
    model_cfg: dict[str, Any]
    #: :func:`weights_record` of the file: ``ema_weights``, ``ema_decay``
    weights: dict[str, Any]


def checkpoint_ema_decay(checkpoint: Mapping[str, Any]) -> float | None:
    """The decay a checkpoint's averaged weights were made with (``ema.decay``, :mod:`deblur.lit.ema`);
    None for a checkpoint without EMA state (NaN for an EMA checkpoint of Lightning's callback that did not
    record it)."""
    if "current_model_state" not in checkpoint:
        return None
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, Mapping) and "latest_update_step" in state:
            return float(state.get("decay", math.nan))
    return math.nan


def weights_record(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """``{"ema_weights": bool, "ema_decay": float | None}`` for a results file: whether the checkpoint's
    ``state_dict`` (what predict / eval read) holds EMA-averaged weights, and their decay (None when not
    averaged or not recorded)."""
    decay = checkpoint_ema_decay(checkpoint)
    known = decay is not None and not math.isnan(decay)
    return {"ema_weights": decay is not None, "ema_decay": decay if known else None}


def load_checkpoint(
    path: str | os.PathLike,
    model: str | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    key: str = "ckpt_path",
) -> Loaded:
    """The network stored in ``path``, in eval mode on ``device``, its model config and what its weights are
    (:func:`weights_record`: EMA-averaged or not), from one read of the file.

    Args:
        path: a ``deblur-train`` checkpoint or a plain state dict (see the module docstring).
        model: the network, when the file does not describe it (a plain state dict): a ``conf/model``
            preset name (``"msfs"``) or a model config mapping. Given with a ``deblur-train`` checkpoint it
            must describe the same network (a different one is refused naming both).
        device: where to put the network (``auto``: CUDA when available).
        key: the config key ``path`` came from, for messages.

    Returns:
        :class:`Loaded` ``(net, model_cfg, weights)``: the network in eval mode, the model config it was
        built from, and :func:`weights_record` of the file.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`read_checkpoint`; the weights do not fit the network,
            a tensor holds NaN or infinite values, or no network is named for a plain state dict.

    Examples:
        >>> import tempfile, torch
        >>> from deblur.models.build import build_model
        >>> net = build_model("fddn_small")
        >>> path = tempfile.mkdtemp() + "/w.pth"
        >>> torch.save(net.state_dict(), path)
        >>> loaded = load_checkpoint(path, model="fddn_small")
        >>> loaded.model_cfg["name"], loaded.net.training, loaded.weights["ema_weights"]
        ('fddn', False, False)
    """
    from deblur.models.build import build_model, model_config

    source = f"{key}={Path(path).expanduser()}"
    obj = read_checkpoint(path, key)
    asked = model_config(model) if model is not None else None
    foreign = _read_foreign(obj, source, asked)
    state, saved = foreign if foreign is not None else split_checkpoint(obj)
    if asked is not None and saved is not None:
        _check_same_network(saved, asked, source)
    cfg = asked if asked is not None else saved
    if cfg is None:
        raise CheckpointError(
            f"{source} is a plain state dict without a network description: name the network with "
            "model=<preset> (e.g. model=msfs_small or model=msfs, plus model.width=... if needed)"
        )
    if not is_target_config(cfg):  # a preset is rebuilt by name; a user's network by its _target_
        cfg = {k: v for k, v in dict(cfg).items() if k != "_target_"}
    net = build_model(cfg)
    load_state_strict(net, state, source, cfg)
    return Loaded(net.eval().to(select_device(device)), cfg, weights_record(obj))


def load_model(
    path: str | os.PathLike,
    model: str | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    key: str = "ckpt_path",
) -> tuple[nn.Module, dict[str, Any]]:
    """``(net, model_cfg)`` of :func:`load_checkpoint`: the network stored in ``path``, in eval mode on
    ``device``, and its model config (the arguments and errors are :func:`load_checkpoint`'s).

    Examples:
        >>> import tempfile, torch
        >>> from deblur.models.build import build_model
        >>> net = build_model("fddn_small")
        >>> path = tempfile.mkdtemp() + "/w.pth"
        >>> torch.save(net.state_dict(), path)
        >>> loaded, cfg = load_model(path, model="fddn_small")
        >>> cfg["name"], loaded.training
        ('fddn', False)
    """
    net, cfg, _ = load_checkpoint(path, model, device, key)
    return net, cfg


#: the keys that name a network's class: a preset's ``name``, a user's ``_target_``
NAMING_KEYS = ("name", "_target_")


def architecture_keys(model: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of ``model`` that decide the shapes of its weights: its network's declared
    ``architecture_keys``; for a ``_target_`` network (or an unknown name) those of every declared
    network, compared where both configs hold them."""
    entry = component("model", model.get("name"))
    if entry is not None:
        return entry.architecture_keys
    every = (key for e in components("model").values() for key in e.architecture_keys)
    return tuple(dict.fromkeys(every))


def architecture_differences(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """The naming and architecture keys (:func:`architecture_keys` of ``saved``) both configs hold with
    different values."""
    keys = (*NAMING_KEYS, *architecture_keys(saved))
    return [k for k in keys if k in saved and k in asked and saved[k] != asked[k]]


def _check_same_network(saved: Mapping[str, Any], asked: Mapping[str, Any], source: str) -> None:
    # a preset against a _target_ network: one names its class by name, the other by _target_
    differs = [k for k in ("name", "_target_") if bool(saved.get(k)) != bool(asked.get(k))][:1]
    differs += architecture_differences(saved, asked)
    if differs:
        raise CheckpointError(
            f"{source} holds model {describe_model(saved)}, but model {describe_model(asked)} was asked for "
            f"(differs in {', '.join(differs)}). Choose the matching model= / ablation= options or another "
            "checkpoint."
        )
    if dict(saved) != dict(asked):
        log.warning("%s: model options %s override the checkpoint's %s", source, dict(asked), dict(saved))


def describe_model(model: Mapping[str, Any]) -> str:
    """``'msfs' (width=24, use_fsm=True, ...)``: a model config in one line, its architecture keys only."""
    keys = [k for k in architecture_keys(model) if k in model]
    return f"{model_label(model)!r} (" + ", ".join(f"{k}={model[k]!r}" for k in keys) + ")"


def convert_checkpoint(
    path: str | os.PathLike, output: str | os.PathLike, model: str | Mapping[str, Any] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Write the network of any accepted file (e.g. the authors' ``model.pkl``) as a native checkpoint.

    The output holds ``state_dict`` (``net.``-prefixed weights) and ``hyper_parameters.model``, like a
    ``deblur-train`` checkpoint, so every command reads it without ``model=`` and ``init_from=`` takes it.
    Written atomically; the input file is never written to.

    Returns:
        ``(output path, model config)``.
    """
    from deblur.utils.files import atomic_write

    source, target = Path(path).expanduser(), Path(output).expanduser()
    if target.exists() and target.resolve() == source.resolve():
        raise UserError(f"output={target} is the input file, which is never written to: choose another path")
    net, cfg = load_model(source, model=model)
    payload = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"model": cfg},
        "converted_from": str(source),
    }
    atomic_write(target, lambda tmp: torch.save(payload, tmp))
    return target, cfg
