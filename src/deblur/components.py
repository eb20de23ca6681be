"""The suite's built-in components, declared in :mod:`deblur.config.registry` before any config is composed
or checked (``import deblur`` imports this module first).

Each network declares itself in its package's ``config`` module, the losses in :mod:`deblur.losses.configs`;
their code (the ``nn.Module`` classes, torchvision for the perceptual loss) is imported only when one is
built. A new built-in network adds one line here.
"""

from __future__ import annotations

import deblur.analysis.settings  # noqa: F401  (declares analysis/analysis_schema)
import deblur.losses.configs  # noqa: F401
import deblur.models.fddn.config  # noqa: F401
import deblur.models.msfs.config  # noqa: F401
import deblur.models.nafnet.config  # noqa: F401
from deblur.config.registry import register_config_check, register_group_check

# checks of deblur-train's config that need code above config/ (imported when a config is checked):
register_group_check("augment", "deblur.data.augment:make_pipeline")  # builds the pipeline
register_config_check("deblur.lit.ema:ema_problems")  # ema.decay, also against the strategy (FSDP)
register_config_check("deblur.data.progressive:config_problems")  # data.progressive's stages
