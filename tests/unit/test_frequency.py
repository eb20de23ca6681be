"""deblur.analysis.frequency: entropy, JS divergence, band split, pyramid, entropy distributions."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from skimage.measure import shannon_entropy as sk_entropy

from deblur.analysis import (
    FrequencyConfig,
    band_entropies,
    band_split,
    entropy_distributions,
    image_pyramid,
    js_divergence,
    shannon_entropy,
)
from deblur.analysis.frequency import (
    EntropyCollector,
    batched_histogram,
    compare_entropies,
    gaussian_kernel_size,
    scale_names,
    scale_tag,
)


# ------------------------------------------------------------------------------------------ entropy
@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_entropy_of_a_constant_image_is_zero(value):
    assert shannon_entropy(torch.full((3, 17, 23), value)).item() == 0.0
    assert shannon_entropy(np.full((8, 8), int(value * 255), dtype=np.uint8)).item() == 0.0
    batch = torch.full((4, 1, 9, 9), value)
    assert torch.equal(shannon_entropy(batch, batched=True), torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("bins", [2, 16, 256])
def test_entropy_of_an_image_covering_every_bin_equally_is_log2_bins(bins):
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins  # one value per bin, in [0, 1]
    image = centres.repeat(5)[torch.randperm(5 * bins)].reshape(5, bins)
    assert shannon_entropy(image, bins).item() == pytest.approx(math.log2(bins), abs=1e-12)
    levels = np.tile(np.arange(256, dtype=np.uint8), 4).reshape(32, 32)  # every 8-bit level 4 times
    assert shannon_entropy(levels).item() == pytest.approx(8.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_agrees_with_scikit_image_on_8_bit_images(seed):
    rng = np.random.default_rng(seed)
    images = [
        rng.integers(0, 256, (40, 50), dtype=np.uint8),                       # uniform noise
        np.clip(rng.normal(128, 20, (33, 47)), 0, 255).astype(np.uint8),      # peaked histogram
        rng.integers(90, 100, (16, 16, 3), dtype=np.uint8),                   # few levels, RGB pooled
        (rng.random((64, 64)) ** 4 * 255).round().astype(np.uint8),           # skewed
    ]
    for image in images:
        expected = sk_entropy(image, base=2)
        assert shannon_entropy(image).item() == pytest.approx(expected, abs=1e-9)
        # the same image as float in [0, 1]: every 8-bit level still falls in its own bin
        as_float = torch.from_numpy(image).float() / 255.0
        assert shannon_entropy(as_float).item() == pytest.approx(expected, abs=1e-9)


def test_batched_entropy_equals_one_call_per_image():
    images = torch.rand(5, 3, 20, 30) ** torch.arange(1, 6).view(5, 1, 1, 1)
    batched = shannon_entropy(images, bins=64, batched=True)
    assert batched.shape == (5,)
    for i in range(5):
        assert batched[i].item() == pytest.approx(shannon_entropy(images[i], bins=64).item(), abs=1e-12)


def test_values_outside_the_range_go_to_the_end_bins():
    x = torch.tensor([[-3.0, -0.6, -0.5, 0.0, 0.49, 0.5, 7.0]])
    counts = batched_histogram(x, bins=4, value_range=(-0.5, 0.5))
    assert counts.tolist() == [[3, 0, 1, 3]]
    with pytest.raises(ValueError, match="NaN"):
        shannon_entropy(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="bins"):
        shannon_entropy(torch.rand(4), bins=0)


# ------------------------------------------------------------------------------------------ JS
def test_js_of_equal_distributions_is_zero_and_of_disjoint_ones_is_one():
    p = torch.tensor([0.2, 0.3, 0.5, 0.0])
    assert js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-15)
    assert js_divergence(p * 7, p).item() == pytest.approx(0.0, abs=1e-15)  # weights are normalised
    assert js_divergence([1, 1, 0, 0], [0, 0, 2, 5]).item() == pytest.approx(1.0, abs=1e-15)
    assert js_divergence([0.0, 1.0], [1.0, 0.0]).item() == 1.0


def test_js_agrees_with_scipy_squared_base_2():
    rng = np.random.default_rng(3)
    for k in (2, 10, 257):
        p, q = rng.random(k), rng.random(k)
        p[rng.random(k) < 0.3] = 0.0  # zero cells on one side only
        expected = jensenshannon(p, q, base=2) ** 2
        assert js_divergence(p, q).item() == pytest.approx(expected, abs=1e-12)
    batch_p, batch_q = rng.random((4, 7)), rng.random((4, 7))
    result = js_divergence(torch.from_numpy(batch_p), torch.from_numpy(batch_q))
    assert result.shape == (4,)
    for i in range(4):
        expected = jensenshannon(batch_p[i], batch_q[i], base=2) ** 2
        assert result[i].item() == pytest.approx(expected, abs=1e-12)


def test_js_rejects_invalid_distributions():
    with pytest.raises(ValueError, match="shape"):
        js_divergence([0.5, 0.5], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        js_divergence([0.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="zero total"):
        js_divergence([0.0, 0.0], [0.5, 0.5])


# ------------------------------------------------------------------------------------------ bands
@pytest.mark.parametrize("sigma", [0.5, 2.0, 3.3])
def test_low_plus_high_reconstructs_the_image(sigma):
    x = torch.rand(2, 3, 40, 37, dtype=torch.float64)
    low, high = band_split(x, sigma)
    assert low.shape == high.shape == x.shape
    assert (low + high - x).abs().max().item() < 1e-14  # exact up to float64 rounding
    x32 = x.float()
    low32, high32 = band_split(x32, sigma)
    assert (low32 + high32 - x32).abs().max().item() < 1e-6
    assert gaussian_kernel_size(sigma) == 2 * math.ceil(3 * sigma) + 1


def test_band_split_of_a_constant_is_all_low_and_high_grows_with_edges():
    low, high = band_split(torch.full((1, 1, 16, 16), 0.4), sigma=2.0)
    assert torch.allclose(low, torch.full_like(low, 0.4), atol=1e-6) and high.abs().max() < 1e-6
    step = torch.zeros(1, 1, 32, 32)
    step[..., 16:] = 1.0
    _, high = band_split(step, sigma=2.0)
    assert high[..., 10:22].abs().max() > 0.3 and high[..., :4].abs().max() < 1e-6
    tiny = torch.rand(1, 1, 4, 4)  # smaller than the kernel: replicate borders, still exact
    low, high = band_split(tiny, sigma=2.0)
    assert torch.allclose(low + high, tiny, atol=1e-6)


@pytest.mark.parametrize("mode", ["area", "pyramid"])
def test_pyramid_halves_each_scale(mode):
    levels = image_pyramid(torch.rand(2, 3, 64, 50), num_scales=3, mode=mode)
    assert [tuple(t.shape[-2:]) for t in levels] == [(64, 50), (32, 25), (16, 12)]
    if mode == "area":
        assert torch.allclose(levels[1][0, 0, 0, 0], levels[0][0, 0, :2, :2].mean())
    assert scale_names(3) == ("1", "1/2", "1/4") and scale_tag("1/4") == "1_4"


def test_band_entropies_layout_and_blur_lowers_the_high_band_entropy():
    torch.manual_seed(0)
    sharp = torch.rand(3, 3, 64, 64)
    blurry = band_split(sharp, 1.5)[0]
    config = FrequencyConfig()
    es, eb = band_entropies(sharp, config), band_entropies(blurry, config)
    assert set(es) == {"high", "low"} and all(tuple(es[b]) == ("1", "1/2", "1/4") for b in es)
    assert es["high"]["1"].shape == (3,) and es["high"]["1"].dtype == torch.float64
    assert (eb["high"]["1"] < es["high"]["1"]).all()
    pooled = band_entropies(sharp, FrequencyConfig(luminance=False))
    assert not torch.allclose(pooled["low"]["1"], es["low"]["1"])


def test_config_validates_its_fields():
    with pytest.raises(ValueError, match="sigma"):
        FrequencyConfig(sigma=0)
    with pytest.raises(ValueError, match="downsample"):
        FrequencyConfig(downsample="bicubic")
    with pytest.raises(ValueError, match="density"):
        FrequencyConfig(density="violin")
    assert FrequencyConfig.from_mapping({"sigma": 3.0, "batch_size": 4}).sigma == 3.0


# ------------------------------------------------------------------------------------------ distributions
@pytest.mark.parametrize("density", ["kde", "hist"])
def test_entropy_distributions_of_equal_and_separated_sets(density):
    a = torch.tensor([5.0, 5.2, 5.1, 4.9, 5.05])
    same = entropy_distributions(a, a.clone(), dist_bins=50, density=density)
    assert same.js == pytest.approx(0.0, abs=1e-12)
    assert same.p.sum().item() == pytest.approx(1.0) and same.edges.numel() == 51
    apart = entropy_distributions(a, a + 10.0, dist_bins=50, density=density)
    assert apart.js > 0.999
    shifted = entropy_distributions(a, a + 0.1, dist_bins=50, density=density)
    assert 0.0 < shifted.js < apart.js
    constant = entropy_distributions([3.0, 3.0], [3.0], density=density)
    assert constant.js == pytest.approx(0.0, abs=1e-12)


def test_collector_accumulates_batches_and_compares():
    config = FrequencyConfig(dist_bins=20)
    collector = EntropyCollector(config)
    for _ in range(3):
        images = torch.rand(2, 3, 32, 32)
        collector.add("sharp", images)
        collector.add("blurry", band_split(images, 2.0)[0])
    assert collector.count("sharp") == 6 and collector.kinds == ["sharp", "blurry"]
    comparison = compare_entropies(collector.values("sharp"), collector.values("blurry"), config)
    assert comparison["high"]["1"].js > comparison["low"]["1"].js
    with pytest.raises(KeyError, match="deblurred"):
        collector.values("deblurred")
