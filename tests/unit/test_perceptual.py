"""VGG-16 relu3_3 perceptual loss (Eq. 13) and the FDDN total loss (Eq. 12-14), without any download."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import VGG16_Weights

from deblur.losses.perceptual import FDDNLoss, VGGPerceptualLoss, vgg16_cache_dir


@pytest.fixture(autouse=True)
def _no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make torchvision's ImageNet weight loading fail (as offline without a cache); records the calls."""
    calls: list[str] = []

    def unavailable(self: VGG16_Weights, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        calls.append(self.url)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", unavailable)
    torch.manual_seed(0)
    return calls


def random_perceptual() -> VGGPerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: pretrained=False is a documented choice
        return VGGPerceptualLoss(pretrained=False)


def random_fddn_loss(lambda_perceptual: float = 0.1) -> FDDNLoss:
    return FDDNLoss(lambda_perceptual=lambda_perceptual, pretrained=False)


def test_vgg_is_frozen_up_to_relu3_3_and_stays_in_eval_mode() -> None:
    loss = random_perceptual()
    assert len(loss.features) == 16
    assert isinstance(loss.features[-1], nn.ReLU)
    assert [m.out_channels for m in loss.features if isinstance(m, nn.Conv2d)][-1] == 256
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert loss.training
    assert not loss.features.training
    assert loss.extract(torch.rand(1, 3, 16, 20)).shape == (1, 256, 4, 5)


def test_perceptual_normalises_with_imagenet_statistics() -> None:
    loss = random_perceptual()
    images = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(loss.extract(images), loss.features((images - mean) / std))


def test_perceptual_is_feature_mse_with_gradient_to_prediction() -> None:
    loss = random_perceptual()
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    target = torch.rand(1, 3, 16, 16)
    value = loss(pred, target)
    expected = (loss.extract(pred) - loss.extract(target)).square().mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_fddn_loss_is_zero_for_identical_images_and_positive_otherwise() -> None:
    loss = random_fddn_loss()
    image = torch.rand(2, 3, 16, 16)
    total, parts = loss(image, image.clone())
    assert set(parts) == {"mse", "perceptual"}
    assert total.item() == 0.0
    total, parts = loss(image, torch.rand(2, 3, 16, 16))
    assert total.item() > 0 and parts["mse"].item() > 0 and parts["perceptual"].item() > 0


def test_lambda_scales_the_perceptual_part() -> None:
    small, large = random_fddn_loss(0.1), random_fddn_loss(2.0)
    large.load_state_dict(small.state_dict())  # same VGG weights
    pred, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    total_small, parts_small = small(pred, target)
    total_large, parts_large = large(pred, target)
    torch.testing.assert_close(parts_small, parts_large)
    torch.testing.assert_close(total_small, parts_small["mse"] + 0.1 * parts_small["perceptual"])
    torch.testing.assert_close(total_large, parts_large["mse"] + 2.0 * parts_large["perceptual"])
    torch.testing.assert_close(total_large - total_small, 1.9 * parts_small["perceptual"])


def test_fddn_loss_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lambda_perceptual=-1"):
        FDDNLoss(lambda_perceptual=-1, pretrained=False)
    loss = random_fddn_loss()
    with pytest.raises(ValueError, match="shape"):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_missing_weights_raise_a_helpful_message(_no_download: list[str]) -> None:
    with pytest.raises(RuntimeError) as error:
        VGGPerceptualLoss(pretrained=True)
    message = str(error.value)
    assert "could not obtain" in message
    assert "loss.weights_path=/path/to/vgg16-397923af.pth" in message
    assert str(vgg16_cache_dir()) in message
    assert _no_download == [VGG16_Weights.IMAGENET1K_V1.url]
    with pytest.raises(RuntimeError, match="loss.weights_path="):
        FDDNLoss()


@pytest.mark.parametrize("prefix", ["features.", ""])
def test_weights_path_loads_a_saved_state_dict(tmp_path: Path, prefix: str, _no_download: list[str]) -> None:
    source = random_perceptual()
    state = {f"{prefix}{key}": value + 0.5 for key, value in source.features.state_dict().items()}
    state[f"{prefix}17.weight"] = torch.zeros(1)  # a deeper layer than relu3_3: ignored
    if prefix:
        state["classifier.0.weight"] = torch.zeros(1)  # torchvision's full file also holds the classifier
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)

    loaded = VGGPerceptualLoss(pretrained=True, weights_path=path)
    assert _no_download == []
    for key, value in loaded.features.state_dict().items():
        torch.testing.assert_close(value, source.features.state_dict()[key] + 0.5)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_weights_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        VGGPerceptualLoss(pretrained=True, weights_path=tmp_path / "missing.pth")
    path = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(RuntimeError, match="partial.pth"):
        VGGPerceptualLoss(pretrained=True, weights_path=path)
