"""Typed schemas for the Hydra config tree (``conf/``); see :mod:`deblur.config.schema`."""

from deblur.config.schema import register_configs

__all__ = ["register_configs"]
