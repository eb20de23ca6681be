"""The ``inference`` settings shared by ``deblur-predict``, ``deblur-eval``, ``deblur-analyze`` and the API.

``conf/inference/default.yaml`` puts these keys at the top level of each command's config; this module
reads and checks them, so that every command takes the same keys with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the speed options' keys (deblur.speed.options), null = chosen for the device
SPEED_KEYS = ("channels_last", "precision", "fold_batchnorm", "compile")


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class TLCSettings:
    """Test-time local statistics: ``enabled``, the window ``base_size`` and the ``train_size`` (pixels)."""

    enabled: bool = False
    base_size: int = 384
    train_size: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"tlc.enabled must be true or false, got {self.enabled!r}")
        _int("tlc.base_size", self.base_size, 1)
        _int("tlc.train_size", self.train_size, 1)
        if self.base_size < self.train_size:
            raise ValueError(
                f"tlc.base_size must be >= tlc.train_size (the statistics window covers at least a training "
                f"crop), got tlc.base_size={self.base_size} < tlc.train_size={self.train_size}"
            )


@dataclass(frozen=True)
class InferenceSettings:
    """How a network runs on whole images (``conf/inference/default.yaml``); bad values name their key."""

    device: str = "auto"
    tile: int | None = None
    tile_overlap: int = 32
    speed: dict[str, Any] = field(default_factory=dict)
    tlc: TLCSettings = field(default_factory=TLCSettings)
    speed_mode: str = "probe"
    speed_cache: Any = None
    self_ensemble: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.self_ensemble, bool):
            raise ValueError(f"self_ensemble must be true or false, got {self.self_ensemble!r}")
        if self.tile is not None:
            _int("tile", self.tile, 1)
            if isinstance(self.tile_overlap, bool) or not isinstance(self.tile_overlap, int) or not (
                0 <= self.tile_overlap < self.tile
            ):
                raise ValueError(f"tile_overlap must be an integer in [0, tile={self.tile}), got "
                                 f"{self.tile_overlap!r}")
        unknown = set(self.speed) - set(SPEED_KEYS)
        if unknown:
            raise ValueError(f"unknown speed option(s) {sorted(unknown)}; options: {list(SPEED_KEYS)}")
        if self.speed_mode not in ("probe", "fixed"):
            raise ValueError(f"speed must be probe or fixed, got {self.speed_mode!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> InferenceSettings:
        """Read the settings from a command's config (missing keys take their defaults)."""
        tlc = cfg.get("tlc") or {}
        return cls(
            device=str(cfg.get("device") or "auto"),
            tile=cfg.get("tile"),
            tile_overlap=cfg.get("tile_overlap", 32),
            speed={key: cfg.get(key) for key in SPEED_KEYS if cfg.get(key) is not None},
            tlc=TLCSettings(**{k: tlc[k] for k in ("enabled", "base_size", "train_size") if k in tlc}),
            speed_mode=str(cfg.get("speed") or "probe"),
            speed_cache=cfg.get("speed_cache"),
            self_ensemble=cfg.get("self_ensemble", False),
        )
