"""Everything around the networks: data loading, the frequency analysis, tiled inference, bf16 training.

* :func:`bench_loader`: training samples/s the ``DeblurDataModule`` delivers (with its workers), to be set
  against the samples/s one training step consumes.
* :func:`bench_analysis`: images/s of ``deblur.analysis.band_entropies`` (batched, vectorised in torch;
  on CUDA also on the GPU) against :func:`plain_band_entropies`, the same computation written as a
  per-image NumPy / scikit-image / SciPy loop (the baseline, also a cross-check: both give the same
  entropies up to the Gaussian kernels' truncation).
* :func:`bench_tiling`: peak memory and time of one large image run whole and in tiles.
* :func:`bench_precision_run`: the validation PSNR of two short training runs, fp32 and bf16-mixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deblur.bench.memory import PeakMemory, current_rss_bytes
from deblur.speed.timing import time_call, time_interleaved


def bench_loader(data_cfg: dict, augment_cfg: dict | None, batches: int) -> dict[str, Any]:
    """Samples/s of the training loader over ``batches`` batches, after the first one (worker start-up)."""
    from deblur.data.datamodule import DeblurDataModule

    datamodule = DeblurDataModule(data=data_cfg, augment=augment_cfg)
    start = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - start
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    samples, epochs = 0, 0
    start = time.perf_counter()
    while samples < batches * data_cfg["batch_size"]:
        try:
            batch = next(iterator)
        except StopIteration:
            epochs += 1
            loader.sampler.set_epoch(epochs)
            iterator = iter(loader)
            continue
        samples += batch["blurry"].shape[0]
    elapsed = time.perf_counter() - start
    return {
        "samples_per_s": samples / elapsed,
        "num_workers": data_cfg.get("num_workers", 0),
        "batch_size": data_cfg["batch_size"],
        "crop_size": data_cfg.get("crop_size"),
        "setup_s": setup_s,
    }


def plain_band_entropies(image: np.ndarray, sigma: float = 2.0, bins: int = 256, high_range: float = 0.5,
                         num_scales: int = 3) -> dict[str, list[float]]:  # fmt: skip
    """One HxWx3 float image in [0, 1] -> ``{"high": [bits per scale], "low": [...]}``, image by image:
    BT.601 luminance, 2x2 mean down-sampling, Gaussian low-pass (SciPy, reflect borders, the kernel
    radius of ``deblur.analysis``), NumPy histograms, Shannon entropy in bits."""
    from scipy.ndimage import gaussian_filter
    from skimage.transform import downscale_local_mean

    gray = image @ np.array([0.299, 0.587, 0.114])
    out: dict[str, list[float]] = {"high": [], "low": []}
    for scale in range(num_scales):
        if scale:
            h, w = gray.shape[0] // 2 * 2, gray.shape[1] // 2 * 2
            gray = downscale_local_mean(gray[:h, :w], (2, 2))
        low = gaussian_filter(gray, sigma, mode="mirror", truncate=np.ceil(3 * sigma) / sigma)
        for band, part, lo, hi in (("low", low, 0.0, 1.0), ("high", gray - low, -high_range, high_range)):
            counts, _ = np.histogram(np.clip(part, lo, hi), bins=bins, range=(lo, hi))
            p = counts[counts > 0] / counts.sum()
            out[band].append(float(-(p * np.log2(p)).sum()))
    return out


def bench_analysis(
    images: torch.Tensor,
    repeats: int,
    device: torch.device | None = None,
    timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Images/s of the batched analysis and of the plain loop on (N, 3, H, W) images in [0, 1].

    On the CPU the two are timed interleaved (their ratio, ``speedup``, is information: on a few CPU cores
    the plain loop's SciPy/NumPy C code is hard to beat by much). On CUDA (``device``) the batched analysis
    is also timed on the GPU: ``cuda_images_per_s``, the figure that matters there."""
    from deblur.analysis.frequency import FrequencyConfig, band_entropies

    config = FrequencyConfig()
    cpu = torch.device("cpu")
    timing = {**(timing or {}), "repeats": repeats}
    arrays = [img.permute(1, 2, 0).double().numpy() for img in images]
    measured = time_interleaved(
        {"batched": lambda: band_entropies(images, config),
         "plain": lambda: [plain_band_entropies(a) for a in arrays]}, cpu, **timing,
    )  # fmt: skip
    batched, plain = measured["batched"], measured["plain"]
    ours = band_entropies(images, config)
    theirs = [plain_band_entropies(a) for a in arrays]
    gap = max(
        abs(float(ours[band][scale][i]) - theirs[i][band][k])
        for i in range(len(arrays))
        for band in ("high", "low")
        for k, scale in enumerate(config.scales)
    )
    n = images.shape[0]
    out: dict[str, Any] = {
        "images": n,
        "size": list(images.shape[-2:]),
        "batched_images_per_s": n / batched.seconds,
        "plain_loop_images_per_s": n / plain.seconds,
        "speedup": plain.seconds / batched.seconds,
        "speedup_min": plain.min_seconds / batched.min_seconds,
        "runs": batched.runs,
        "max_entropy_difference_bits": gap,
    }
    if device is not None and torch.device(device).type == "cuda":
        device = torch.device(device)
        on_gpu = images.to(device)
        gpu = time_call(lambda: band_entropies(on_gpu, config), device, **timing)
        out["cuda_images_per_s"] = n / gpu.seconds
        out["cuda_speedup_vs_plain_loop"] = plain.seconds / gpu.seconds
    return out


def _tiling_worker(model_cfg: dict, height: int, width: int, tile: int, overlap: int, mode: str,
                   threads: int) -> dict[str, Any]:  # fmt: skip
    """Runs in a fresh process: build the network, note the resident memory, run one image, report."""
    from deblur.inference import pad_and_run, tiled_inference
    from deblur.models.build import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_model(model_cfg).eval()
    x = torch.rand(1, 3, height, width)
    before = current_rss_bytes()
    with torch.inference_mode(), PeakMemory(torch.device("cpu")) as peak:
        start = time.perf_counter()
        tiled_inference(net, x, tile, overlap) if mode == "tiled" else pad_and_run(net, x)
        seconds = time.perf_counter() - start
    return {
        "peak_memory_mib": peak.mib,
        "memory_kind": peak.kind,
        "before_mib": before / 2**20,
        "increase_mib": peak.mib - before / 2**20,
        "seconds": seconds,
    }


def bench_tiling(
    model_cfg: dict, height: int, width: int, tile: int, overlap: int, untiled: bool, threads: int
) -> dict[str, Any]:
    """Peak memory and seconds of one (1, 3, height, width) image, tiled and (if ``untiled``) whole.

    Each runs in a fresh process, so that the peak is that of the inference (the benchmark's own process
    keeps the memory of everything measured before). ``peak_memory_mib`` is the process's peak resident
    set size (CPU), including the interpreter, torch and the network (``before_mib``).
    """
    import multiprocessing

    out: dict[str, Any] = {"size": f"{width}x{height}", "tile": tile, "tile_overlap": overlap}
    context = multiprocessing.get_context("spawn")
    for mode in ["tiled"] + (["untiled"] if untiled else []):
        with context.Pool(1) as pool:
            out[mode] = pool.apply(_tiling_worker, (model_cfg, height, width, tile, overlap, mode, threads))
    return out


def bench_precision_run(
    compose: Callable[[list[str]], Any], overrides: list[str], output_dir: Path
) -> dict[str, Any]:
    """Two short ``deblur-train`` runs, fp32 and bf16-mixed, from one seed: their validation PSNR."""
    from deblur.training import train

    out: dict[str, Any] = {}
    for precision in ("32-true", "bf16-mixed"):
        cfg = compose(
            [*overrides, f"trainer.precision={precision}", f"paths.output_dir={output_dir / precision}"]
        )
        start = time.perf_counter()
        metrics = train(cfg)
        out[precision] = {"val/psnr": metrics["val/psnr"], "seconds": time.perf_counter() - start}
    out["psnr_difference_db"] = out["bf16-mixed"]["val/psnr"] - out["32-true"]["val/psnr"]
    out["overrides"] = list(overrides)
    return out
