"""Plain ``nn.Module`` networks and their building blocks (no Lightning below this package).

One package per network (``msfs/``, ``fddn/``, ``nafnet/``), each declaring itself in its ``config.py``
(:mod:`deblur.config.registry`) and holding its network in ``net.py``; blocks more than one network uses
stay here (``rcab``, ``cca``, ``upsample``, ``padding``, ``channels``, ``norm_stats``, ``legacy_keys``,
``tlc``); ``custom`` builds a user's ``_target_`` network, ``build`` any network from its config, ``size``
counts a network's megabytes. ``MSFSNet``, ``FDDN`` and ``NAFNet`` are imported on first use, so that
declaring the networks (``import deblur``) loads none of their code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> module
_NETWORKS = {
    "FDDN": "deblur.models.fddn.net",
    "MSFSNet": "deblur.models.msfs.net",
    "NAFNet": "deblur.models.nafnet.net",
}

__all__ = sorted(_NETWORKS)


def __getattr__(name: str) -> Any:
    if name not in _NETWORKS:
        raise AttributeError(f"module 'deblur.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NETWORKS[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from deblur.models.fddn.net import FDDN as FDDN
    from deblur.models.msfs.net import MSFSNet as MSFSNet
    from deblur.models.nafnet.net import NAFNet as NAFNet
