"""Compose the suite's configs in Python, as the commands do on the command line.

:func:`compose` is what a notebook or a script uses instead of ``@hydra.main``: the schemas are
registered, the config tree is ``conf/`` of the installed suite, the result is validated (types) and
``paths.output_dir``, which Hydra fills in only for a real run, is resolved to the run folder the command
would have used (``logs/<task>/runs/<time>``; nothing is created until something is written there).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from deblur.config.choices import check_group_choices
from deblur.config.schema import register_configs
from deblur.paths import CONF_DIR

#: the command configs of ``conf/`` (one per command)
CONFIG_NAMES = ("train", "predict", "eval", "score", "analyze", "prepare", "bench", "convert")


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The composed, type-checked config of one command, with the same overrides its command line takes.

    Args:
        config_name: one of :data:`CONFIG_NAMES` (``train`` for ``deblur-train`` ...).
        overrides: Hydra overrides, e.g. ``["model=fddn_small", "trainer.max_steps=10"]``.

    Returns:
        The config (a ``DictConfig``). ``paths.output_dir`` is a concrete folder (the given override, or the
        run folder of ``hydra.run.dir``), so the config resolves completely outside a Hydra run.

    Raises:
        ValueError: ``config_name`` is not a command config, or an override names an unknown group option
            (the message lists the options).
        hydra.errors.ConfigCompositionException / omegaconf.errors.ValidationError: a bad override (the
            message names the key).

    Examples:
        >>> cfg = compose("train", ["model=fddn_small"])
        >>> cfg.model.name, cfg.model.width
        ('fddn', 8)
    """
    if config_name not in CONFIG_NAMES:
        raise ValueError(f"config_name={config_name!r} is not a command config; options: {CONFIG_NAMES}")
    register_configs()
    check_group_choices(overrides, CONF_DIR)  # an unknown option lists the real ones (no *_schema nodes)
    if GlobalHydra.instance().is_initialized():  # a notebook cell run twice, or a Hydra app around us
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    with open_dict(cfg):
        paths = cfg.get("paths")
        if paths is not None and OmegaConf.is_interpolation(paths, "output_dir"):
            if "hydra:" in str(paths._get_node("output_dir")._value()):
                paths.output_dir = run_dir
        del cfg["hydra"]
    return cfg
