"""Typed schemas for the Hydra config tree (``conf/``); see :mod:`deblur.config.schema`."""

from deblur.config.choices import register_resolvers
from deblur.config.schema import register_configs

register_resolvers()  # ${deblur.flat:...} in conf/hydra/default.yaml, for every command

__all__ = ["register_configs", "register_resolvers"]
