"""deblur: frequency-aware image deblurring (MSFS-Net, FDDN) on PyTorch Lightning and Hydra.

The Python API: everything the commands do, as functions (README "Python API")::

    import deblur

    cfg = deblur.compose("train", ["model=fddn_small"])      # the config deblur-train would run
    net = deblur.build_model("msfs_small")                   # a fresh network of a conf/model preset
    net, model_cfg = deblur.load_model("last.ckpt")           # any checkpoint the suite accepts, eval mode
    sharp = deblur.restore(net, blurry)                       # numpy / tensor in, same kind out
    scores = deblur.score(sharp, target, protocol="gopro")    # the papers' metrics
    rows, summary = deblur.score_folders("pred/", "gt/")      # a folder of results
    result = deblur.analyze("synthetic", split="train")       # entropies and JS divergences, as data
    pairs = deblur.datasets.open("gopro", "/data/GOPRO_Large", "val")
    metrics = deblur.train(cfg)                               # what deblur-train does

``import deblur`` also declares the built-in networks and losses (:mod:`deblur.components`) and registers
the config schemas, so plain ``hydra.compose`` on ``conf/`` works.
Names are imported on first use (``deblur.train`` loads Lightning only when called for).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import deblur.components  # noqa: F401  (declares the built-in networks and losses first)
from deblur.config import register_configs

register_configs()

__version__ = "0.1.0"

#: public name -> (module, attribute)
_API = {
    "compose": ("deblur.config.compose", "compose"),
    "build_model": ("deblur.models.build", "build_model"),
    "model_config": ("deblur.models.build", "model_config"),
    "load_model": ("deblur.checkpoints", "load_model"),
    "restore": ("deblur.inference", "restore"),
    "prepare_network": ("deblur.inference", "prepare_network"),
    "InferenceSettings": ("deblur.config.inference_settings", "InferenceSettings"),
    "convert_to_tlc": ("deblur.models.tlc", "convert_to_tlc"),
    "revert_tlc": ("deblur.models.tlc", "revert_tlc"),
    "score": ("deblur.metrics.scoring", "score"),
    "score_folders": ("deblur.metrics.scoring", "score_folders"),
    "analyze": ("deblur.analysis.analyzer", "analyze"),
    "evaluate": ("deblur.evaluation", "evaluate"),
    "predict_images": ("deblur.prediction", "predict_images"),
    "train": ("deblur.training", "train"),
    "select_device": ("deblur.utils.device", "select_device"),
    "read_image": ("deblur.io", "read_image"),
    "write_image": ("deblur.io", "write_image"),
    "datasets": ("deblur.datasets", None),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'deblur' has no attribute {name!r}")
    module, attribute = _API[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # static analysers see the real objects
    from deblur import datasets as datasets
    from deblur.analysis.analyzer import analyze as analyze
    from deblur.checkpoints import load_model as load_model
    from deblur.config.compose import compose as compose
    from deblur.config.inference_settings import InferenceSettings as InferenceSettings
    from deblur.evaluation import evaluate as evaluate
    from deblur.inference import prepare_network as prepare_network
    from deblur.inference import restore as restore
    from deblur.io import read_image as read_image
    from deblur.io import write_image as write_image
    from deblur.metrics.scoring import score as score
    from deblur.metrics.scoring import score_folders as score_folders
    from deblur.models.build import build_model as build_model
    from deblur.models.build import model_config as model_config
    from deblur.models.tlc import convert_to_tlc as convert_to_tlc
    from deblur.models.tlc import revert_tlc as revert_tlc
    from deblur.prediction import predict_images as predict_images
    from deblur.training import train as train
    from deblur.utils.device import select_device as select_device
