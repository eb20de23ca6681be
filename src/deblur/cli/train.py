"""``deblur-train``: compose the config, train, validate the final weights, write ``metrics.json``.

deblur-train                                    # msfs_small on the built-in dataset (make train)
deblur-train model=msfs ablation=msfs/no_csffm  # any Table 4 row
deblur-train -m ablation=msfs/full,msfs/no_fsm  # a sweep
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deblur.config import register_configs
from deblur.config.choices import check_group_choices
from deblur.data.datamodule import DeblurDataModule
from deblur.lit.restoration import RestorationModule
from deblur.paths import CONF_DIR
from deblur.utils.io import atomic_write_json

register_configs()

#: keys of metrics.json that other tools (collectors, notebooks) rely on
METRIC_KEYS = ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input")


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_strategy(cfg: DictConfig) -> Any:
    """``strategy`` group -> a Lightning strategy name or instance."""
    node = cfg.get("strategy")
    if node is None:
        return "auto"
    if "_target_" in node:
        return instantiate(node)
    return node.get("name", "auto")


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    nodes = cfg.get("callbacks") or {}
    return [instantiate(node) for node in nodes.values() if node is not None and "_target_" in node]


def build_loggers(cfg: DictConfig) -> list[Any] | bool:
    nodes = cfg.get("logger") or {}
    loggers = [instantiate(node) for node in nodes.values() if node is not None and "_target_" in node]
    return loggers or False


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    # None is meaningful for some keys (check_val_every_n_epoch=None: validate by steps), so pass all
    kwargs = dict(_container(cfg.trainer))
    kwargs.update(overrides)
    return L.Trainer(
        strategy=build_strategy(cfg),
        callbacks=build_callbacks(cfg),
        logger=build_loggers(cfg),
        default_root_dir=cfg.paths.output_dir,
        **kwargs,
    )


def _param_count(module: RestorationModule) -> int:
    return sum(p.numel() for p in module.net.parameters())


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and validate as configured; returns (and writes) the metrics.json payload."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = DeblurDataModule(data=_container(cfg.data), augment=_container(cfg.get("augment")))
    module = RestorationModule(
        model=_container(cfg.model), loss=_container(cfg.loss), optim=_container(cfg.optim)
    )
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    # Final validation of the final weights (not the best checkpoint): the numbers the run ends with.
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing and not cfg.trainer.get("fast_dev_run"):
        raise RuntimeError(f"validation did not produce {missing}; got {sorted(metrics)}")
    params = _param_count(module)
    payload = {
        **{k: metrics.get(k, math.nan) for k in METRIC_KEYS},
        "val/psnr_gain": metrics.get("val/psnr", math.nan) - metrics.get("val/psnr_input", math.nan),
        "model": cfg.model.name,
        "ablation": cfg.get("ablation_name"),
        "parameters": params,
        "size_mb": params * 4 / 2**20,
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "output_dir": str(output_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", payload)
        _print_summary(payload)
    return payload


def _print_summary(payload: dict[str, Any]) -> None:
    rows = [
        ("", "PSNR (dB)", "SSIM"),
        ("blurry input", f"{payload['val/psnr_input']:.2f}", f"{payload['val/ssim_input']:.4f}"),
        (f"{payload['model']} output", f"{payload['val/psnr']:.2f}", f"{payload['val/ssim']:.4f}"),
    ]
    print(
        "\nFinal validation ("
        + f"{payload['global_step']} steps, {payload['parameters'] / 1e6:.2f} M parameters)"
    )
    for name, psnr, ssim in rows:
        print(f"  {name:<22}{psnr:>10}{ssim:>10}")
    print(f"  gain: {payload['val/psnr_gain']:+.2f} dB    outputs: {payload['output_dir']}\n")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    # returns val/psnr so sweepers (Optuna) can optimise it
    return train(cfg)["val/psnr"]


def main() -> None:
    """``deblur-train``: check group choices (listing the options of nested groups), then run Hydra."""
    try:
        check_group_choices(sys.argv[1:], CONF_DIR)
    except ValueError as err:
        sys.exit(f"deblur-train: {err}")
    _hydra_main()


if __name__ == "__main__":
    main()
