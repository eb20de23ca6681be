"""MSFS-Net losses: Eq. 5 (CLM), Eq. 6 (consistency), Eq. 7 and the positive/detach options."""

import pytest
import torch

from deblur.losses.msfs import ContrastiveHighFrequencyLoss, LowFrequencyConsistencyLoss, MSFSLoss
from deblur.models import MSFSNet
from deblur.models.msfs.net import MSFSFeatures


def test_clm_hand_value():
    # one scale: L1(a, p) = 1, L1(a, n) = 3 -> 1/3
    a, p, n = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 3.0)
    assert ContrastiveHighFrequencyLoss(eps=0.0)([a], [p], [n]).item() == pytest.approx(1 / 3)
    # sums over scales
    assert ContrastiveHighFrequencyLoss(eps=0.0)([a, a], [p, p], [n, n]).item() == pytest.approx(2 / 3)


def test_clm_falls_as_the_anchor_moves_toward_the_positive():
    positive, negative = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    clm = ContrastiveHighFrequencyLoss()
    values = [
        clm([negative + t * (positive - negative)], [positive], [negative]).item()
        for t in (0.2, 0.5, 0.8, 1.0)
    ]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(0.0, abs=1e-6)


def test_consistency_is_zero_for_equal_features_and_l1_otherwise():
    feats = [torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)]
    loss = LowFrequencyConsistencyLoss()
    assert loss(feats, [f.clone() for f in feats]).item() == 0.0
    shifted = [f + 0.5 for f in feats]
    assert loss(feats, shifted).item() == pytest.approx(1.0)  # 0.5 per scale, two scales


def _features(requires_grad: bool = True):
    def t():
        return torch.randn(1, 2, 4, 4, requires_grad=requires_grad)

    return MSFSFeatures(enc_high=[t()], enc_low=[t()], dec_high=[t()])


@pytest.mark.parametrize("detach_positive", [True, False])
def test_gradient_reaches_the_positive_branch_only_without_detach(detach_positive):
    pred = torch.rand(1, 2, 4, 4, requires_grad=True)

    def encode(image):
        return [image * 2.0], [image * 0.0]

    loss = MSFSLoss(lambda_high=1.0, lambda_low=0.0, detach_positive=detach_positive)
    feats = _features()
    _, parts = loss(pred, torch.rand(1, 2, 4, 4), features=feats, encode=encode)
    parts["clm"].backward()
    reached = pred.grad is not None and pred.grad.abs().sum() > 0
    assert reached == (not detach_positive)
    assert feats.dec_high[0].grad.abs().sum() > 0  # the anchor always learns


@pytest.mark.parametrize("detach_negative", [True, False])
def test_negative_detach_option(detach_negative):
    feats = _features()
    loss = MSFSLoss(lambda_high=1.0, lambda_low=0.0, detach_negative=detach_negative)
    _, parts = loss(
        torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), features=feats, encode=lambda im: ([im], [im])
    )
    parts["clm"].backward()
    assert (feats.enc_high[0].grad is not None) == (not detach_negative)


def test_positive_target_reencodes_the_ground_truth():
    seen = []

    def encode(image):
        seen.append(image)
        return [image], [image]

    pred, target = torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4)
    MSFSLoss(positive="target", lambda_low=0.0)(pred, target, features=_features(), encode=encode)
    assert any(im is target for im in seen)


def test_total_is_eq7_on_a_real_network():
    net = MSFSNet(width=8, encoder_blocks=1, latent_blocks=1, decoder_blocks=1, reduction=4)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    pred, feats = net(x, return_features=True)
    loss = MSFSLoss(lambda_high=0.005, lambda_low=0.005)
    total, parts = loss(pred, y, features=feats, encode=net.encode_frequencies)
    expected = parts["l1"] + 0.005 * parts["clm"] + 0.005 * parts["consistency"]
    assert torch.allclose(total, expected)
    total.backward()
    assert net.anchor_projection_full.weight.grad.abs().sum() > 0  # CLM reaches the decoder's anchors


def test_without_features_only_l1_is_used():
    pred, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    total, parts = MSFSLoss()(pred, target, features=None)
    assert set(parts) == {"l1"} and torch.equal(total, parts["l1"])


def test_bad_options_fail():
    with pytest.raises(ValueError, match="positive"):
        MSFSLoss(positive="sharp")
    with pytest.raises(ValueError, match="-1"):
        MSFSLoss(lambda_high=-1)
    with pytest.raises(ValueError, match="loss.reencode_batchnorm"):
        MSFSLoss(reencode_batchnorm="running")


def test_per_scale_clm_parts_are_the_eq5_summands():
    # scale k: L1(a, p) = 1, L1(a, n) = k + 2 -> 1 / (k + 2)
    a, p = [torch.zeros(1, 1, 2, 2)] * 3, [torch.ones(1, 1, 2, 2)] * 3
    n = [torch.full((1, 1, 2, 2), k + 2.0) for k in range(3)]
    feats = MSFSFeatures(enc_high=n, enc_low=[torch.zeros(1)] * 3, dec_high=a)
    loss = MSFSLoss(lambda_high=1.0, lambda_low=0.0, eps=1e-12)  # loss.eps must be > 0
    _, parts = loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), features=feats, encode=lambda im: (p, p))
    per_scale = [parts[f"clm_{s}"].item() for s in ("full", "half", "quarter")]
    assert per_scale == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert parts["clm"].item() == pytest.approx(1 / 2 + 1 / 3 + 1 / 4)


def test_per_scale_clm_parts_sum_to_clm_on_a_real_network():
    torch.manual_seed(0)
    net = MSFSNet(width=8, encoder_blocks=1, latent_blocks=1, decoder_blocks=1, reduction=4)
    x = torch.rand(2, 3, 16, 16)
    pred, feats = net(x, return_features=True)
    _, parts = MSFSLoss()(pred, torch.rand(2, 3, 16, 16), features=feats, encode=net.encode_frequencies)
    scales = [parts["clm_full"], parts["clm_half"], parts["clm_quarter"]]
    assert torch.allclose(sum(scales), parts["clm"])
    # output = input: the positive is the negative, every ratio is 1 and L_high = 3 (docs/models.md)
    net.conv_last.weight.data.zero_()
    net.conv_last.bias.data.zero_()
    pred, feats = net(x, return_features=True)
    _, parts = MSFSLoss()(pred, x, features=feats, encode=net.encode_frequencies)
    assert [parts[f"clm_{s}"].item() for s in ("full", "half", "quarter")] == pytest.approx([1.0] * 3)
    assert parts["clm"].item() == pytest.approx(3.0)


@pytest.mark.parametrize("mode", ["frozen", "batch"])
def test_reencode_batchnorm_option_reaches_the_encoder(mode):
    calls = []

    def encode(image, **kwargs):
        calls.append(kwargs)
        return [image], [image]

    stats = {"bn": (torch.zeros(2), torch.ones(2))}
    feats = _features()._replace(encoder_norm_stats=stats)
    loss = MSFSLoss(positive="target", reencode_batchnorm=mode)
    loss(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), features=feats, encode=encode)
    assert len(calls) == 2  # output (Eq. 6) and target (Eq. 5 positives)
    assert all(c == ({"norm_stats": stats} if mode == "frozen" else {}) for c in calls)


@pytest.mark.parametrize("mode", ["frozen", "batch"])
def test_frozen_training_step_updates_the_running_statistics_once(mode):
    torch.manual_seed(0)
    net = MSFSNet(width=8, encoder_blocks=1, latent_blocks=1, decoder_blocks=1, reduction=4).train()
    x = torch.rand(2, 3, 16, 16)
    pred, feats = net(x, return_features=True)
    after_forward = {k: v.clone() for k, v in net.encoder.state_dict().items() if "running_mean" in k}
    total, _ = MSFSLoss(reencode_batchnorm=mode)(pred, x, features=feats, encode=net.encode_frequencies)
    total.backward()
    now = {k: v for k, v in net.encoder.state_dict().items() if "running_mean" in k}
    unchanged = all(torch.equal(now[k], after_forward[k]) for k in now)
    assert unchanged == (mode == "frozen")
