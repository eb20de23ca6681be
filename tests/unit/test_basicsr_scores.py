"""Protocol ``basicsr``: PSNR / SSIM equal to BasicSR's ``calculate_psnr`` / ``calculate_ssim``.

The reference figures below were computed with BasicSR's own code (XPixelGroup/BasicSR at commit 8d56e3a,
``basicsr/metrics/psnr_ssim.py``, run beside this suite on the images this test makes, passed as BGR as
BasicSR reads them); this test does not need BasicSR. Measured gap: PSNR bit-identical, SSIM <= 5e-14;
the tolerance tested is 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from deblur.errors import UserError
from deblur.metrics.basicsr import y_channel
from deblur.metrics.scoring import score

TOLERANCE = 1e-10
#: (image, crop_border, test_y_channel, BasicSR's calculate_psnr, BasicSR's calculate_ssim)
BASICSR_FIGURES = [
    ("rgb", 0, False, 34.45828812756487, 0.8963175070452377),
    ("rgb", 0, True, 38.9003687764882, 0.9524214606800355),
    ("rgb", 4, False, 34.41876543122283, 0.8994477513628718),
    ("rgb", 4, True, 38.88022454829129, 0.9527048812257187),
    ("gray", 0, False, 36.70534476781634, 0.9617229637533652),
    ("gray", 0, True, 38.02726613611288, 0.9670089021038416),
    ("gray", 4, False, 36.69266593065574, 0.9654051764582229),
    ("gray", 4, True, 38.01458744755533, 0.9694045235417609),
]


def _rgb_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 64x80 crop of skimage's astronaut and a copy with a fixed +-8 pattern (no random generator)."""
    gt = data.astronaut()[100:164, 150:230]
    noise = (np.arange(gt.size).reshape(gt.shape) * 7919 % 17).astype(int) - 8
    return np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8), gt


def _gray_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 40x50 crop of skimage's camera (gray, (H, W)) and a copy with a fixed +-6 pattern."""
    gt = data.camera()[200:240, 220:270]
    noise = (np.arange(gt.size).reshape(gt.shape) * 104729 % 13).astype(int) - 6
    return np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8), gt


@pytest.mark.parametrize(("image", "crop_border", "test_y_channel", "psnr", "ssim"), BASICSR_FIGURES)
def test_scores_equal_basicsr_figures(image, crop_border, test_y_channel, psnr, ssim):
    pred, gt = _rgb_pair() if image == "rgb" else _gray_pair()
    got = score(pred, gt, protocol="basicsr", crop_border=crop_border, test_y_channel=test_y_channel)
    assert set(got) == {"psnr", "ssim"}
    assert got["psnr"] == pytest.approx(psnr, abs=TOLERANCE)
    assert got["ssim"] == pytest.approx(ssim, abs=TOLERANCE)


def test_gray_is_scored_as_three_equal_channels_and_floats_as_8_bit():
    pred, gt = _gray_pair()
    as_gray = score(pred, gt, protocol="basicsr", test_y_channel=True)
    rgb = [np.repeat(a[..., None], 3, 2) for a in (pred, gt)]
    as_rgb = score(*rgb, protocol="basicsr", test_y_channel=True)
    assert as_gray == as_rgb
    rgb_pred, rgb_gt = _rgb_pair()
    floats = score(rgb_pred / 255.0, rgb_gt, protocol="basicsr", crop_border=4)
    assert floats == score(rgb_pred, rgb_gt, protocol="basicsr", crop_border=4)


def test_y_channel_is_bt601_luma_on_the_0_255_scale():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]
    np.testing.assert_allclose(y_channel(colours)[0], expected, atol=2e-5)  # float32 Y, as BasicSR keeps it


def test_identical_images_and_the_default_settings():
    pred, gt = _rgb_pair()
    assert score(gt, gt, protocol="basicsr") == {"psnr": float("inf"), "ssim": 1.0}
    # crop_border 0 without Y: BasicSR's SSIM is the per-channel SSIM of the gopro protocol
    assert score(pred, gt, protocol="basicsr")["ssim"] == pytest.approx(score(pred, gt)["ssim_per_channel"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"crop_border": -1}, "crop_border must be an integer >= 0"),
        ({"crop_border": 2.5}, "crop_border must be an integer >= 0"),
        ({"crop_border": True}, "crop_border must be an integer >= 0"),
        ({"crop_border": 27}, r"crop_border=27 is too large for the image \(80x64 \(WxH\)\): .* 26x10"),
        ({"test_y_channel": "yes"}, "test_y_channel must be true or false"),
    ],
)
def test_bad_settings_are_user_errors_naming_the_key(settings, message):
    pred, gt = _rgb_pair()
    with pytest.raises(UserError, match=message):
        score(pred, gt, protocol="basicsr", **settings)


def test_basicsr_keys_with_another_protocol_are_refused():
    pred, gt = _rgb_pair()
    with pytest.raises(UserError, match="crop_border=4 applies to protocol=basicsr only; the protocol is g"):
        score(pred, gt, crop_border=4)
    with pytest.raises(UserError, match="test_y_channel=true applies to protocol=basicsr only"):
        score(pred, gt, protocol="realblur", test_y_channel=True)
