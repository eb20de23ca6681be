"""Cross-scale feature fusion module (CSFFM), MSFS-Net paper Sec. 3.4, Eq. 3-4 and Fig. 5.

    mix  = sigmoid(theta) * f_en + (1 - sigmoid(theta)) * f_de        (adaptive mix-up, learnable theta)
    out  = [mix, f_en]                                                (concatenated with the encoder feature)

``encoder_first=True`` concatenates ``[f_en, mix]`` instead, the public code's order: the same model up to a
permutation of the next layer's input channels, but it decides which weights fit a released checkpoint.

The decoder stage that follows up-samples ``out`` to the next, finer scale, which is what makes the fusion
cross-scale. Eq. 4 as printed mixes the full-scale f_en with f_de_1/2, which cannot be added without
resizing; the authors' public code mixes features of the same scale, and so do we. Initial theta: -1 at
1/4 scale, -0.6 at 1/2 scale (public code).

Two ablations stand in for the module (Table 4, "w/o CSFFM"; docs/models.md explains both readings):
:class:`SkipConcatenation` keeps the encoder skip but drops the mix (``use_csffm=False``), :class:`NoSkip`
drops the encoder-to-decoder connection altogether (``use_skip=False``).
"""

from __future__ import annotations

import torch
from torch import nn


class CrossScaleFeatureFusion(nn.Module):
    """CSFFM (Eq. 3-4): (f_en, f_de) -> [sigmoid(t) f_en + (1 - sigmoid(t)) f_de, f_en].

    Args:
        init: the initial theta (a scalar parameter, shape ()).
        encoder_first: False (ours): ``[mix, f_en]``; True (the public code): ``[f_en, mix]``.

    Shape: f_en, f_de (N, C, H, W) each -> (N, 2C, H, W).

    Example::

        out = CrossScaleFeatureFusion(init=-1.0)(f_en, f_de)
    """

    def __init__(self, init: float = 0.0, encoder_first: bool = False) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(init)))
        self.encoder_first = encoder_first

    def mix(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        """The adaptive mix-up term of Eq. 3-4: (N, C, H, W)."""
        weight = torch.sigmoid(self.theta)
        return weight * f_en + (1.0 - weight) * f_de

    def forward(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        if f_en.shape != f_de.shape:
            raise ValueError(
                f"CSFFM needs equal shapes, got encoder {tuple(f_en.shape)}, decoder {tuple(f_de.shape)}"
            )
        mix = self.mix(f_en, f_de)
        return torch.cat([f_en, mix] if self.encoder_first else [mix, f_en], dim=1)


class SkipConcatenation(nn.Module):
    """The ``no_csffm`` ablation (Table 4, row 2): a plain same-scale skip, (f_en, f_de) -> [f_de, f_en]
    (``[f_en, f_de]`` with ``encoder_first=True``, the order of the public code's concatenation).

    Shape: f_en, f_de (N, C, H, W) each -> (N, 2C, H, W).
    """

    def __init__(self, encoder_first: bool = False) -> None:
        super().__init__()
        self.encoder_first = encoder_first

    def forward(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        return torch.cat([f_en, f_de] if self.encoder_first else [f_de, f_en], dim=1)


class NoSkip(nn.Module):
    """The ``no_skip`` ablation (Table 4 "w/o CSFFM", second reading): no encoder-to-decoder connection.
    The encoder feature is not used; the decoder feature is padded with zeros to the decoder stage's width,
    (f_en, f_de) -> [f_de, 0] (``[0, f_de]`` with ``encoder_first=True``: zeros where f_en would go).

    The zeros keep the decoder stage's layout (2C channels, the same parameters as with a skip) and make it
    the same function as a stage whose first convolution and residual path see only f_de.

    Shape: f_en, f_de (N, C, H, W) each -> (N, 2C, H, W).
    """

    def __init__(self, encoder_first: bool = False) -> None:
        super().__init__()
        self.encoder_first = encoder_first

    def forward(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(f_de)
        return torch.cat([zeros, f_de] if self.encoder_first else [f_de, zeros], dim=1)
