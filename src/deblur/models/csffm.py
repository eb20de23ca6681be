"""Cross-scale feature fusion module (CSFFM), MSFS-Net paper Sec. 3.4, Eq. 3-4 and Fig. 5.

    mix  = sigmoid(theta) * f_en + (1 - sigmoid(theta)) * f_de        (adaptive mix-up, learnable theta)
    out  = [mix, f_en]                                                (concatenated with the encoder feature)

The decoder stage that follows up-samples ``out`` to the next, finer scale, which is what makes the fusion
cross-scale. Eq. 4 as printed mixes the full-scale f_en with f_de_1/2, which cannot be added without
resizing; the authors' public code mixes features of the same scale, and so do we. Initial theta: -1 at
1/4 scale, -0.6 at 1/2 scale (public code).
"""

from __future__ import annotations

import torch
from torch import nn


class CrossScaleFeatureFusion(nn.Module):
    """(f_en, f_de) each (N, C, H, W) -> (N, 2C, H, W) = [sigmoid(t) f_en + (1 - sigmoid(t)) f_de, f_en]."""

    def __init__(self, init: float = 0.0) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(init)))

    def mix(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        """The adaptive mix-up term of Eq. 3-4: (N, C, H, W)."""
        weight = torch.sigmoid(self.theta)
        return weight * f_en + (1.0 - weight) * f_de

    def forward(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        if f_en.shape != f_de.shape:
            raise ValueError(
                f"CSFFM needs equal shapes, got encoder {tuple(f_en.shape)}, decoder {tuple(f_de.shape)}"
            )
        return torch.cat([self.mix(f_en, f_de), f_en], dim=1)


class SkipConcatenation(nn.Module):
    """The ``no_csffm`` ablation (Table 4, row 2): a plain same-scale skip, (f_en, f_de) -> [f_de, f_en]."""

    def forward(self, f_en: torch.Tensor, f_de: torch.Tensor) -> torch.Tensor:
        return torch.cat([f_de, f_en], dim=1)
