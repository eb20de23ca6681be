"""channels_last training (train.yaml ``channels_last``): the same network, loss and gradients as NCHW up
to float rounding; batches are converted at the start of each step."""

from __future__ import annotations

import torch

from deblur.lit.restoration import RestorationModule

TINY = {"name": "msfs", "width": 8, "encoder_blocks": 1, "latent_blocks": 1, "decoder_blocks": 1}


def _module(channels_last: bool) -> RestorationModule:
    torch.manual_seed(0)
    return RestorationModule(
        model=TINY, loss={"name": "msfs"}, optim={"name": "adam", "lr": 1e-3}, channels_last=channels_last
    )


def test_channels_last_gives_the_nchw_loss_and_gradients():
    plain, fast = _module(False), _module(True)
    conv = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(1)
    batch = {"blurry": torch.rand(2, 3, 32, 32), "sharp": torch.rand(2, 3, 32, 32)}
    converted = fast.to_layout(dict(batch))
    assert converted["blurry"].is_contiguous(memory_format=torch.channels_last)
    assert plain.to_layout(dict(batch))["blurry"].is_contiguous()
    _, loss_a, _ = plain.compute_loss(batch["blurry"], batch["sharp"])
    _, loss_b, _ = fast.compute_loss(converted["blurry"], converted["sharp"])
    assert torch.allclose(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    loss_a.backward()
    loss_b.backward()
    for (name, a), b in zip(plain.net.named_parameters(), fast.net.parameters(), strict=True):
        # float rounding only: ~3e-5 of the largest gradient here; a wrong layout would be O(1)
        assert (a.grad - b.grad).abs().max() <= 2e-4 * a.grad.abs().max() + 1e-7, name
