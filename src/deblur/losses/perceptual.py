"""FDDN training loss (paper Sec. 3.4): pixel MSE (Eq. 12) plus a VGG-16 relu3_3 perceptual loss (Eq. 13).

Eq. 14: ``L_total = L_MSE + lambda * L_percep``, with lambda = 0.1 (Sec. 4.2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from deblur.config.rules import refuse
from deblur.errors import UserError
from deblur.losses.configs import fddn_loss_rules

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG16_RELU_LAYERS = {"relu1_2": 4, "relu2_2": 9, "relu3_3": 16, "relu4_3": 23, "relu5_3": 30}
"""Number of leading modules of torchvision's ``vgg16().features`` that ends with each ReLU."""


def vgg16_cache_dir() -> Path:
    """Where torchvision looks for (and downloads) ``vgg16-397923af.pth``: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


class VGGWeightsUnavailable(UserError, RuntimeError):
    """The ImageNet VGG16 weights of ``loss.pretrained=true`` are neither given, cached nor downloadable."""


#: what ``loss.pretrained=false`` means, said in the run's log
RANDOM_VGG = (
    "loss.pretrained=false: the perceptual loss uses a randomly initialised VGG16 as a fixed feature "
    "extractor: fine for tests and smoke runs, but not the paper's loss (loss.pretrained=true: ImageNet "
    "VGG16 weights)"
)


def _download_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG16 weights (hub cache or download); a helpful error otherwise."""
    weights = VGG16_Weights.IMAGENET1K_V1
    file_name = os.path.basename(weights.url)
    try:
        return weights.get_state_dict(progress=False)
    except Exception as error:  # no internet, no cache, corrupt download: all end the same way
        raise VGGWeightsUnavailable(
            f"VGGPerceptualLoss: could not obtain the ImageNet VGG16 weights ({file_name}) from torchvision "
            f"({type(error).__name__}: {error}). Provide them offline: either set "
            f"loss.weights_path=/path/to/{file_name}, or place {file_name} in the torch hub cache "
            f"$TORCH_HOME/hub/checkpoints/, which here resolves to {vgg16_cache_dir()}. "
            "(loss.pretrained=false uses a randomly initialised VGG16 instead: for tests and smoke runs, not "
            "the paper's loss.)"
        ) from error


def check_vgg16_weights(pretrained: bool, weights_path: str | os.PathLike[str] | None = None) -> str:
    """Make sure the VGG16 weights of ``loss.pretrained`` / ``loss.weights_path`` can be had before anything
    is built; returns what the loss will use, for the run's log.

    ``pretrained=true`` needs torchvision's ImageNet VGG16 file: ``weights_path``, or the torch hub cache
    (downloaded there when missing); ``pretrained=false`` uses a randomly initialised VGG16 (no file).

    Raises:
        VGGWeightsUnavailable: no file given, none cached and none downloadable (naming loss.weights_path).
        UserError: ``weights_path`` is not a file.
    """
    if not pretrained:
        return RANDOM_VGG
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise UserError(
                f"loss.weights_path={path} is not a file: give torchvision's VGG16 weights "
                f"({os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)})"
            )
        return f"loss.pretrained=true: the perceptual loss uses the ImageNet VGG16 weights of {path}"
    cached = vgg16_cache_dir() / os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)
    if not cached.is_file():
        _download_imagenet_state_dict()
    return f"loss.pretrained=true: the perceptual loss uses torchvision's ImageNet VGG16 weights ({cached})"


def _load_state_dict_file(weights_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VGGPerceptualLoss: weights_path={str(path)!r} is not a file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise RuntimeError(f"VGGPerceptualLoss: weights_path={str(path)!r} does not hold a state dict")
    return state


def _features_state(state: dict[str, Any], num_modules: int) -> dict[str, torch.Tensor]:
    """Keep the entries of the first ``num_modules`` feature modules, without the ``features.`` prefix.

    Accepts torchvision's full VGG16 state dict (``features.0.weight``, ..., ``classifier.*``) or a state dict
    of the feature modules alone (``0.weight``, ...).
    """
    if any(key.startswith("features.") for key in state):
        state = {
            key[len("features.") :]: value for key, value in state.items() if key.startswith("features.")
        }
    kept = {}
    for key, value in state.items():
        index = key.split(".", 1)[0]
        if index.isdigit() and int(index) < num_modules:
            kept[key] = value
    return kept


def _init_like_torchvision(features: nn.Sequential) -> None:
    """Random initialisation of torchvision's untrained VGG (Kaiming normal, fan_out, zero bias)."""
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)


class VGGPerceptualLoss(nn.Module):
    """Eq. 13: mean squared error between VGG-16 ``layer`` features of prediction and target.

    Inputs: ``pred`` and ``target`` (N, 3, H, W) RGB in [0, 1]; they are normalised with the ImageNet mean and
    std before the frozen feature extractor ``vgg16().features[:16]`` (up to relu3_3 by default, as in the
    paper).
    Output: a scalar tensor. The target's features are computed without gradient.

    ``pretrained=True`` loads the ImageNet weights: from ``weights_path`` (a state dict file, e.g.
    torchvision's ``vgg16-397923af.pth``) when given, else through torchvision (hub cache or download); if
    neither works a :class:`VGGWeightsUnavailable` (a RuntimeError) says how to provide the file.
    ``pretrained=False`` keeps a random initialisation: a fixed random feature extractor, fine for tests
    and smoke runs but not the paper's loss (:data:`RANDOM_VGG`; training says so in the run's log).

    The VGG is frozen: ``requires_grad=False`` on its parameters and always in eval mode (:meth:`train`
    keeps it there). Its parameters stay in the state dict (about 6.7 MB for relu3_3).
    """

    def __init__(
        self,
        pretrained: bool = True,
        weights_path: str | os.PathLike[str] | None = None,
        layer: str = "relu3_3",
    ) -> None:
        super().__init__()
        if layer not in VGG16_RELU_LAYERS:
            raise ValueError(
                f"VGGPerceptualLoss layer={layer!r}; choose one of {', '.join(VGG16_RELU_LAYERS)}"
            )
        num_modules = VGG16_RELU_LAYERS[layer]
        self.layer = layer
        self.features = make_layers(cfgs["D"])[:num_modules]
        if pretrained:
            state = _load_state_dict_file(weights_path) if weights_path else _download_imagenet_state_dict()
            source = f"weights_path={str(weights_path)!r}" if weights_path else "torchvision IMAGENET1K_V1"
            try:
                self.features.load_state_dict(_features_state(state, num_modules), strict=True)
            except RuntimeError as error:
                raise RuntimeError(
                    f"VGGPerceptualLoss: {source} is not a VGG16 state dict covering {layer}: {error}"
                ) from error
        else:  # RANDOM_VGG: a fixed random feature extractor, for tests and smoke runs
            _init_like_torchvision(self.features)
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        """Set the training flag of this module but keep the frozen VGG in eval mode."""
        super().train(mode)
        self.features.eval()
        return self

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> VGG features (N, 256, H/4, W/4) for relu3_3."""
        return self.features((images - self.mean) / self.std)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"VGGPerceptualLoss: pred shape {tuple(pred.shape)} != target {tuple(target.shape)}"
            )
        with torch.no_grad():
            target_features = self.extract(target)
        return F.mse_loss(self.extract(pred), target_features)


class FDDNLoss(nn.Module):
    """Eq. 12-14: ``total = MSE(pred, target) + lambda_perceptual * VGGPerceptualLoss(pred, target)``.

    ``forward(pred, target)`` with (N, 3, H, W) tensors in [0, 1] returns ``(total, parts)``: ``total`` is the
    scalar to back-propagate, ``parts`` is ``{"mse": ..., "perceptual": ...}`` (detached scalars, unweighted)
    for logging. ``pretrained`` and ``weights_path`` are passed to :class:`VGGPerceptualLoss`.
    """

    def __init__(
        self,
        lambda_perceptual: float = 0.1,
        pretrained: bool = True,
        weights_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        refuse(fddn_loss_rules({"lambda_perceptual": lambda_perceptual}))
        self.lambda_perceptual = float(lambda_perceptual)
        self.perceptual = VGGPerceptualLoss(pretrained=pretrained, weights_path=weights_path)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if pred.shape != target.shape:
            raise ValueError(f"FDDNLoss: pred shape {tuple(pred.shape)} != target {tuple(target.shape)}")
        mse = F.mse_loss(pred, target)
        perceptual = self.perceptual(pred, target)
        total = mse + self.lambda_perceptual * perceptual
        return total, {"mse": mse.detach(), "perceptual": perceptual.detach()}
