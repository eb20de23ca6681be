"""LPIPS, the learned perceptual distance (Zhang et al. 2018), computed by torchmetrics (``metrics.lpips``).

The score is torchmetrics' :class:`~torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity` on the
8-bit images the protocols score (``(H, W, 3)`` uint8 RGB, given to it as floats in [0, 1] with
``normalize=True``), one value per image pair (lower = closer). Two parts make the network:

* the linear layers of LPIPS, which ship inside torchmetrics (``lpips_models/<net>.pth``);
* the ImageNet backbone (``alex``: torchvision's AlexNet; ``vgg``: VGG16), which torchvision downloads on
  first use into torch's hub cache (``~/.cache/torch/hub/checkpoints/``). Without network access give
  the file torchvision would download (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, copied from a
  machine that has it) as ``metrics.lpips_weights``: it is checked (a state dict of that network, read with
  ``weights_only=True``) and used in place of the download. Torch's hub cache is not written to.

A missing or unreadable weights file, or no weights file and no way to download the backbone, is a
:class:`~deblur.errors.UserError` naming ``metrics.lpips_weights``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deblur.errors import UserError
from deblur.io import size_text

__all__ = ["LPIPS_NETS", "LpipsScorer", "check_lpips_config"]

#: backbone (torchmetrics' ``net_type``) -> (torchvision builder, torchvision weights enum, smallest side)
LPIPS_NETS = {"alex": ("alexnet", "AlexNet_Weights", 31), "vgg": ("vgg16", "VGG16_Weights", 16)}
#: the defaults of the ``metrics`` node (conf/score.yaml, conf/eval.yaml)
DEFAULTS = {"lpips": False, "lpips_net": "alex", "lpips_weights": None}


def check_lpips_config(metrics: Any) -> dict[str, Any]:
    """The ``metrics`` node (a mapping or None), checked, defaults filled in; UserError naming the key."""
    given = dict(metrics or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UserError(f"metrics.{unknown[0]} is not a key; the metrics keys are: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **given}
    if not isinstance(cfg["lpips"], bool):
        raise UserError(f"metrics.lpips must be true or false, got {cfg['lpips']!r}")
    if cfg["lpips_net"] not in LPIPS_NETS:
        raise UserError(f"metrics.lpips_net must be one of {', '.join(LPIPS_NETS)}, got {cfg['lpips_net']!r}")
    if cfg["lpips_weights"] is not None and not isinstance(cfg["lpips_weights"], str | os.PathLike):
        raise UserError(f"metrics.lpips_weights must be a file path or null, got {cfg['lpips_weights']!r}")
    return cfg


def _weights_enum(net: str) -> Any:
    import torchvision

    return getattr(torchvision.models, LPIPS_NETS[net][1]).DEFAULT


def _check_weights_file(path: Path, net: str) -> None:
    """UserError naming ``metrics.lpips_weights`` unless ``path`` holds torchvision's ``net`` state dict."""
    import torchvision

    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"metrics.lpips_weights {what}: {path}")
    expected_name = Path(_weights_enum(net).url).name
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: truncated, not a torch file, pickled code
        raise UserError(
            f"metrics.lpips_weights={path} cannot be read as a weights file ({type(err).__name__}: "
            f"{str(err)[:200]}); expected torchvision's {expected_name}"
        ) from None
    with torch.device("meta"):
        reference = getattr(torchvision.models, LPIPS_NETS[net][0])(weights=None).state_dict()
    if not isinstance(state, dict):
        raise UserError(f"metrics.lpips_weights={path} holds a {type(state).__name__}, not a state dict")
    wrong = [k for k, v in reference.items() if k not in state or tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise UserError(
            f"metrics.lpips_weights={path} is not a state dict of torchvision's {LPIPS_NETS[net][0]} "
            f"(metrics.lpips_net={net}): {len(wrong)} tensor(s) missing or of another shape, e.g. "
            f"{wrong[0]}; expected {expected_name}"
        )


@contextlib.contextmanager
def _hub_holding(path: Path, net: str) -> Iterator[None]:
    """Torch's hub dir pointed, for the block, at a temporary folder where ``path`` has the file name
    torchvision looks for, so the backbone is read from ``path`` instead of downloaded."""
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="deblur-lpips-") as tmp:
        target = Path(tmp) / "checkpoints" / Path(_weights_enum(net).url).name
        target.parent.mkdir()
        try:
            target.symlink_to(path.resolve())
        except OSError:  # no symlinks here (e.g. Windows without the privilege)
            shutil.copyfile(path, target)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)


class LpipsScorer:
    """LPIPS of ``uint8`` image pairs with torchmetrics' metric; one network, built once.

    Args:
        net: ``alex`` (the default of LPIPS and torchmetrics) or ``vgg``.
        weights: the torchvision backbone file (``metrics.lpips_weights``); None: torchvision's download /
            hub cache.
        device: where the network runs.
    """

    def __init__(self, net: str = "alex", weights: str | os.PathLike | None = None, device: Any = "cpu"):
        from torchmetrics.image import LearnedPerceptualImagePatchSimilarity

        check_lpips_config({"lpips_net": net, "lpips_weights": weights})
        self.net, self.min_side = net, LPIPS_NETS[net][2]
        self.device = torch.device(device)
        if weights is not None:
            path = Path(weights).expanduser()
            _check_weights_file(path, net)
            with _hub_holding(path, net):
                metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
        else:
            try:
                metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
            except (OSError, RuntimeError) as err:  # no network (URLError is an OSError), a bad download
                name = Path(_weights_enum(net).url).name
                raise UserError(
                    f"metrics.lpips=true needs torchvision's {LPIPS_NETS[net][0]} weights ({name}), which "
                    f"could not be downloaded ({type(err).__name__}: {str(err)[:200]}); copy that file here "
                    f"and give it as metrics.lpips_weights=/path/to/{name}"
                ) from None
        self.metric = metric.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, pred_uint8: np.ndarray, gt_uint8: np.ndarray, what: str = "the image") -> float:
        """LPIPS of one pair of ``(H, W, 3)`` uint8 RGB images of one size (a Python float)."""
        h, w = pred_uint8.shape[:2]
        if min(h, w) < self.min_side:
            raise UserError(
                f"metrics.lpips with metrics.lpips_net={self.net} needs images of at least "
                f"{self.min_side}x{self.min_side} pixels; {what} is {size_text(h, w)}"
            )
        pred, gt = (
            torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div(255.0)
            for a in (pred_uint8, gt_uint8)
        )
        pred, gt = pred.to(self.device), gt.to(self.device)
        return float(self.metric(pred, gt))  # the metric's value for this batch of one
