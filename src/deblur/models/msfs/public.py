"""Load the MSFS-Net authors' released weights (``FreNet``, GitHub LiQiang0307/MSFS-Net) into ``MSFSNet``.

Their checkpoints (``model.pkl``, ``model_R.pkl``, ``model_J.pkl``) hold ``{"model": state_dict, ...}``: 852
tensors named after their modules (``conv.main.0.weight``, ``octblock.3.oct2.bn_h.running_mean``,
``Decoder.0.up.0.weight``, ``mix1.w``, ``tail_.weight`` ...). They fit ``MSFSNet`` built with the
``model=msfs_public`` options (:func:`public_model_config`); this module renames them:

=====================================  ===========================================================
public                                 ours
=====================================  ===========================================================
``conv.main.0``                        ``encoder.stem.0``
``Encoder.{0,2}.layers.i.main.{0,1}``  ``encoder.blocks_{full,half}.i.body.{0,2}`` (``.main.0`` dropped)
``Encoder.{1,3}.dual_module.0.0``      ``encoder.down_{half,quarter}.0``
``octblock.{0,1,2}``                   ``encoder.fsm_{full,half,quarter}``
``octblock.{3,4,5}``                   ``decoder_fsm_{quarter,half,full}``
  ``.oct{1,2,3}`` / ``.conv``          ``.{split,exchange,fuse}`` / ``.shortcut``
  ``.conv.conv_h2h`` / ``.bn_h``       ``.conv.h2h`` / ``.norm_high`` (likewise h2l, l2h, l2l, ``bn_l``)
``latent.i``                           ``latent.i`` (channel attention ``conv_du`` -> ``excite``)
``Decoder.{0,1}.layers.i``             ``decoder_{quarter,half}.blocks.i`` (``Decoder.0`` runs at 1/4)
``Decoder.{0,1}.up.0``                 ``decoder_{quarter,half}.up.conv``
``mix1.w`` / ``mix2.w`` (shape (1,))   ``fusion_quarter.theta`` / ``fusion_half.theta`` (shape ())
``tail_``                              ``conv_last``
``changeChannel_``                     ``anchor_projection`` (shared by the full and 1/2-scale anchors)
``conv_2_`` / ``conv_4``               ``aux_conv_half`` / ``aux_conv_quarter``
=====================================  ===========================================================

Usage::

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if is_public_checkpoint(obj):
        net = build_model(public_model_config())
        net.load_state_dict(state_from_public_checkpoint(obj), strict=True)

Facts behind the mapping: /work/shared/reference/msfs-public-weights.md; docs/models.md.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from deblur.config.registry import WeightsFormat

#: the ``model`` config of ``model=msfs_public`` (conf/model/msfs_public.yaml), as build_model takes it
PUBLIC_MODEL_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "name": "msfs",
        "in_channels": 3,
        "width": 64,
        "encoder_blocks": 8,
        "latent_blocks": 10,
        "decoder_blocks": 30,
        "reduction": 16,
        "use_fsm": True,
        "use_csffm": True,
        "use_skip": True,
        "csffm_init": (-1.0, -0.6),
        "norm": "batch",
        "fsm_conv_shortcut": True,
        "concat_encoder_first": True,
        "out_kernel_size": 1,
        "shared_anchor_projection": True,
        "aux_outputs": True,
        "skip_first_encoder_blocks": True,
    }
)

#: the public model's FSMs (``octblock.k``) and where they sit in ours
_FSMS = {
    "encoder.fsm_full": "octblock.0",
    "encoder.fsm_half": "octblock.1",
    "encoder.fsm_quarter": "octblock.2",
    "decoder_fsm_quarter": "octblock.3",
    "decoder_fsm_half": "octblock.4",
    "decoder_fsm_full": "octblock.5",
}
_FSM_PARTS = {"split": "oct1", "exchange": "oct2", "fuse": "oct3", "shortcut": "conv"}
_FSM_INNER = {"norm_high": "bn_h", "norm_low": "bn_l", "h2h": "conv_h2h", "h2l": "conv_h2l",
              "l2h": "conv_l2h", "l2l": "conv_l2l"}  # fmt: skip
#: residual-block stages: ours ``<stage>.i.body.{0,2}.*``, theirs ``<stage>.i.main.{0,1}.main.0.*``
_RESIDUAL_STAGES = {"encoder.blocks_full": "Encoder.0.layers", "encoder.blocks_half": "Encoder.2.layers"}
#: RCAB stages: same inner names but the channel attention's ``excite`` is their ``conv_du``
_RCAB_STAGES = {"latent": "latent", "decoder_quarter.blocks": "Decoder.0.layers",
                "decoder_half.blocks": "Decoder.1.layers"}  # fmt: skip
#: single layers: our module -> theirs (parameter names unchanged)
_LAYERS = {
    "encoder.stem.0": "conv.main.0",
    "encoder.down_half.0": "Encoder.1.dual_module.0.0",
    "encoder.down_quarter.0": "Encoder.3.dual_module.0.0",
    "decoder_quarter.up.conv": "Decoder.0.up.0",
    "decoder_half.up.conv": "Decoder.1.up.0",
    "conv_last": "tail_",
    "anchor_projection": "changeChannel_",
    "aux_conv_half": "conv_2_",
    "aux_conv_quarter": "conv_4",
}
#: the CSFFM weights: a (1,) tensor theirs, a scalar () ours
_SCALARS = {"fusion_quarter.theta": "mix1.w", "fusion_half.theta": "mix2.w"}

#: keys whose presence marks the public format (with some ``octblock.`` / ``Decoder.`` / ``Encoder.`` keys)
_MARKERS = ("conv.main.0.weight", "tail_.weight", "mix1.w", "mix2.w", "changeChannel_.weight")


def public_model_config() -> dict[str, Any]:
    """A fresh copy of :data:`PUBLIC_MODEL_CONFIG` (``csffm_init`` as a list, as in the YAML)."""
    cfg = dict(PUBLIC_MODEL_CONFIG)
    cfg["csffm_init"] = list(cfg["csffm_init"])
    return cfg


def _public_name(ours: str) -> str:
    """Our key in the ``msfs_public`` layout -> the public key. KeyError for a key with no public twin."""
    if ours in _SCALARS:
        return _SCALARS[ours]
    module, _, param = ours.rpartition(".")
    if module in _LAYERS:
        return f"{_LAYERS[module]}.{param}"
    for prefix, theirs in _FSMS.items():
        if ours.startswith(prefix + "."):
            part, *rest = ours[len(prefix) + 1 :].split(".")
            return ".".join([theirs, _FSM_PARTS[part], *(_FSM_INNER.get(name, name) for name in rest)])
    for prefix, theirs in _RESIDUAL_STAGES.items():
        if ours.startswith(prefix + "."):
            index, body, conv, param = ours[len(prefix) + 1 :].split(".")
            if body != "body" or conv not in ("0", "2"):
                raise KeyError(ours)
            return f"{theirs}.{index}.main.{int(conv) // 2}.main.0.{param}"
    for prefix, theirs in _RCAB_STAGES.items():
        if ours.startswith(prefix + "."):
            return theirs + "." + ours[len(prefix) + 1 :].replace(".excite.", ".conv_du.")
    raise KeyError(ours)


@functools.lru_cache(maxsize=1)
def _key_map() -> tuple[tuple[str, str], ...]:
    from deblur.models.msfs.net import MSFSNet

    cfg = dict(PUBLIC_MODEL_CONFIG)
    cfg.pop("name")
    with torch.device("meta"):
        ours = list(MSFSNet(**cfg).state_dict())
    return tuple((_public_name(key), key) for key in ours)


def public_key_map() -> dict[str, str]:
    """``{public key: our key}`` for every entry of the released state dict (852), in our model's order."""
    return dict(_key_map())


def _strip_module_prefix(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop DataParallel's ``module.`` when every key has it."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def is_public_checkpoint(obj: Any) -> bool:
    """True when ``obj`` (a ``torch.load`` result) is a checkpoint of the authors' public ``FreNet``.

    Recognised by content: a mapping whose ``model`` entry is a mapping of tensors named as the public
    model's (``conv.main.0.weight``, ``tail_.weight``, ``mix1.w``, ``octblock.*``, ``Decoder.*`` ...), every
    key optionally prefixed ``module.``. Other entries beside ``model`` are ignored. Whether every key is
    there is :func:`convert_public_state_dict`'s check, so a damaged file fails there with the details.

    Args:
        obj: anything; never raises.

    Returns:
        Whether to load it with :func:`state_from_public_checkpoint`.

    Example::

        is_public_checkpoint({"model": freenet.state_dict(), "epoch": 3000})  # True
    """
    if not isinstance(obj, Mapping) or "model" not in obj:
        return False
    state = obj["model"]
    if not isinstance(state, Mapping) or not state:
        return False
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return False
    keys = _strip_module_prefix(state).keys()
    return all(marker in keys for marker in _MARKERS) and all(
        any(k.startswith(prefix) for k in keys) for prefix in ("octblock.", "Decoder.", "Encoder.")
    )


def _listing(keys: list[str], total: int, what: str) -> str:
    shown = f" (e.g. {', '.join(repr(k) for k in keys[:5])})" if keys else ""
    return f"{len(keys)} of {total} {what}{shown}"


def convert_public_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the public ``FreNet`` state dict to :class:`MSFSNet`'s ``msfs_public`` layout.

    Strict: every public key must map and every expected one (852) must be there; otherwise a ValueError
    gives both counts and the first few names. The CSFFM weights ``mix1.w`` / ``mix2.w`` (shape (1,)) become
    scalars; all other tensors are passed on as they are (the same tensor objects, no copies).

    Args:
        state: the ``model`` entry of a public checkpoint, keys optionally all prefixed ``module.``.

    Returns:
        ``{our key: tensor}`` for ``MSFSNet(**public_model_config() without name).load_state_dict(...,
        strict=True)``.

    Example::

        net = build_model(public_model_config())
        net.load_state_dict(convert_public_state_dict(torch.load(path, weights_only=True)["model"]))
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"convert_public_state_dict needs a mapping of tensors, got {type(state).__name__}")
    state = _strip_module_prefix(state)
    mapping = public_key_map()
    unknown = [k for k in state if k not in mapping]
    missing = [k for k in mapping if k not in state]
    if unknown or missing:
        raise ValueError(
            "not the MSFS-Net authors' public state dict: "
            + _listing(unknown, len(state), "given key(s) do not map to the msfs_public model")
            + "; "
            + _listing(missing, len(mapping), "expected public key(s) are missing")
        )
    not_tensors = [k for k in mapping if not isinstance(state[k], torch.Tensor)]
    if not_tensors:
        raise ValueError(
            "public state dict: " + _listing(not_tensors, len(mapping), "entries are no tensors")
        )
    out: dict[str, torch.Tensor] = {}
    for public, ours in mapping.items():
        value = state[public]
        if public in _SCALARS.values():
            if value.numel() != 1:
                shape = tuple(value.shape)
                raise ValueError(f"public state dict: {public} should hold one value, got shape {shape}")
            value = value.reshape(())
        out[ours] = value
    return out


def state_from_public_checkpoint(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``convert_public_state_dict(obj["model"])`` for a ``torch.load`` result that
    :func:`is_public_checkpoint` accepts; ValueError otherwise."""
    if not is_public_checkpoint(obj):
        raise ValueError("not a checkpoint of the MSFS-Net authors' public code (no 'model' state dict)")
    return convert_public_state_dict(obj["model"])


def _read_public(obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return state_from_public_checkpoint(obj), public_model_config()


#: the authors' ``model.pkl`` files as :func:`deblur.checkpoints.load_model` reads them (declared in
#: :mod:`deblur.models.msfs.config`): they fit ``model=msfs_public`` alone (any ``csffm_init``)
AUTHORS_WEIGHTS = WeightsFormat(
    label="the MSFS-Net authors' released weights (their FreNet layout)",
    recognise=is_public_checkpoint,
    read=_read_public,
    only_preset="msfs_public",
    free_keys=("csffm_init",),
)
