"""The GPU tables (``conf/bench.yaml`` ``gpu``; on by default when the device is CUDA).

Per preset, at ``size`` x ``size``:

* ``forward.<batch>`` and ``train_step.<batch>`` for each batch of ``batches``: the probe's options
  (:func:`deblur.speed.inference_probe.resolve_speed` /
  :func:`deblur.speed.training_probe.choose_training_speed`, as
  ``deblur-predict`` / ``deblur-train`` resolve them), median and minimum ms, samples/s, achieved GFLOP/s as
  a fraction of the measured bf16 channels_last conv peak (``fraction_of_bf16_peak``) and peak memory
  (``torch.cuda.max_memory_allocated`` on CUDA: the network, its optimiser state and activations);
* ``compile``: the forward pass at ``compile_batch`` with the probe's options, eager against
  ``torch.compile`` (timed interleaved after compiling): ``speedup`` and ``compile_s`` (the first compiled
  call less an eager call);
* ``max_batch``: the largest forward and training-step batch that runs (doubling from
  ``max_batch.start`` until CUDA runs out of memory, then bisecting to within 1/8; capped at
  ``max_batch.limit``: on a CPU, where running out of memory is not caught, only the limit is found).

``recipes``: the wall time of each paper recipe (epochs over ``pairs`` training pairs at ``batch``) from the
measured training step at that batch: on one GPU (``pairs // batch`` steps per epoch, as the loader drops
the last partial batch) and, as a linear estimate, on ``ddp_gpus`` GPUs with DDP (each GPU takes
``pairs // ddp_gpus // batch`` steps of the same per-GPU batch; no communication, loading or validation
time counted, and the global batch grows ``ddp_gpus`` times).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from deblur.bench import networks
from deblur.bench.memory import PeakMemory
from deblur.models.build import build_model
from deblur.speed.inference_probe import resolve_speed
from deblur.speed.timing import synchronize, time_call, time_interleaved
from deblur.speed.training_probe import choose_training_speed
from deblur.speed.transforms import inference_context, prepare_for_inference, to_input

log = logging.getLogger(__name__)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def _bf16_peak(peak: dict[str, Any]) -> tuple[str, float]:
    bf16 = peak.get("bf16_channels_last", {}).get("gflops")
    if bf16:
        return "bf16_channels_last", float(bf16)
    return peak["best"]["name"], float(peak["best"]["gflops"])


def _forward_row(
    net: torch.nn.Module, device: torch.device, batch: int, size: int, timing: dict, speed: dict,
    gmacs: float, peak_gflops: float,
) -> dict[str, Any]:  # fmt: skip
    x = networks.sample_batch(batch, size, size, device)
    probe = resolve_speed(device, net=net, example=x, **networks._speed_kwargs(speed))
    fast = prepare_for_inference(net, probe.options, device)
    xin = to_input(x, probe.options)

    def call() -> torch.Tensor:
        with inference_context(probe.options, device):
            return fast(xin)

    _free(device)
    measured = time_call(call, device, memory=PeakMemory, **timing)
    row = networks._timing_figures(measured, batch)
    row["samples_per_s"] = row.pop("images_per_s")
    row["gflops"] = 2 * gmacs * batch / measured.seconds
    row["fraction_of_bf16_peak"] = row["gflops"] / peak_gflops
    row["options"] = probe.options.as_dict()
    row["probe_source"] = probe.source
    return row


def _train_row(
    model_cfg: dict, loss_cfg: dict, device: torch.device, batch: int, size: int, timing: dict, speed: dict,
    gmacs_per_sample: float, peak_gflops: float,
) -> dict[str, Any]:  # fmt: skip
    chosen = choose_training_speed(
        model_cfg, loss_cfg, device, batch=batch, size=size, channels_last=speed.get("channels_last"),
        precision=speed.get("precision"), **networks._speed_kwargs(speed),
    )  # fmt: skip
    _autocast(chosen.precision)
    row_name = {v: k for k, v in networks.TRAIN_PRECISION_NAMES.items()}[chosen.precision]
    _free(device)
    layouts = [chosen.channels_last]
    calls = networks._train_step_calls(model_cfg, loss_cfg, device, batch, size, layouts, [row_name])
    measured = time_interleaved(calls, device, memory=PeakMemory, **timing)[(chosen.channels_last, row_name)]
    row = networks._step_figures(measured, batch)
    row["gflops"] = 2 * gmacs_per_sample * batch / measured.seconds
    row["fraction_of_bf16_peak"] = row["gflops"] / peak_gflops
    row["options"] = chosen.options.as_dict()
    row["probe_source"] = chosen.source
    return row


def _compile_row(net: torch.nn.Module, device: torch.device, batch: int, size: int, timing: dict,
                 speed: dict) -> dict[str, Any]:  # fmt: skip
    x = networks.sample_batch(batch, size, size, device)
    options = resolve_speed(device, net=net, example=x, **networks._speed_kwargs(speed)).options
    compiled_options = replace(options, compile=True)
    eager = prepare_for_inference(net, options, device)
    compiled = prepare_for_inference(net, compiled_options, device)
    xin = to_input(x, options)

    def run(module: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with inference_context(options, device):
                return module(xin)

        return call

    start = time.perf_counter()
    run(compiled)()
    synchronize(device)
    first_s = time.perf_counter() - start
    measured = time_interleaved({"eager": run(eager), "compiled": run(compiled)}, device, **timing)
    eager_t, compiled_t = measured["eager"], measured["compiled"]
    out = {
        "batch": batch, "options": compiled_options.as_dict(), "eager_ms": eager_t.seconds * 1e3,
        "compiled_ms": compiled_t.seconds * 1e3, "eager_min_ms": eager_t.min_seconds * 1e3,
        "compiled_min_ms": compiled_t.min_seconds * 1e3, "speedup": eager_t.seconds / compiled_t.seconds,
        "first_call_s": first_s, "compile_s": max(first_s - eager_t.seconds, 0.0),
    }  # fmt: skip
    return out


def largest_batch(
    fits: Callable[[int], None], device: torch.device, start: int, limit: int
) -> dict[str, Any]:
    """The largest batch ``b`` in [1, ``limit``] for which ``fits(b)`` runs: doubling from ``start``, then
    bisecting between the last batch that ran and the first that did not until they are within 1/8 of
    each other. A batch fails on CUDA's out-of-memory error or any other RuntimeError at that size (e.g.
    a kernel's 32-bit indexing limit); ``limited_by`` says which (``memory``, the error, or ``limit``)."""
    reasons: list[str] = []

    def ok(batch: int) -> bool:
        try:
            fits(batch)
            synchronize(device)
            return True
        except RuntimeError as err:
            reasons.append("memory" if _is_oom(err) else f"{type(err).__name__}: {str(err)[:200]}")
        _free(device)  # after the except block: the exception's frames (and their tensors) are gone
        return False

    lo, hi = 0, None
    batch = max(1, int(start))
    while batch <= limit:
        if ok(batch):
            lo, batch = batch, batch * 2
        else:
            hi = batch
            break
        _free(device)
    if hi is None:
        return {"batch": lo, "limited_by": "limit", "limit": limit}
    # lo = 0 when even `start` did not run: the bisection then searches below it
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        if mid == lo:
            break
        if ok(mid):
            lo = mid
        else:
            hi = mid
        _free(device)
    return {"batch": lo, "limited_by": reasons[0], "first_that_did_not_run": hi}


def _max_forward_batch(net: torch.nn.Module, device: torch.device, size: int, start: int, limit: int,
                       speed: dict) -> dict[str, Any]:  # fmt: skip
    probe_x = networks.sample_batch(min(start, 4), size, size, device)
    options = resolve_speed(device, net=net, example=probe_x, **networks._speed_kwargs(speed)).options
    fast = prepare_for_inference(net, options, device)

    def forward(batch: int) -> None:
        x = to_input(torch.rand(batch, 3, size, size, device=device), options)
        with inference_context(options, device):
            fast(x)

    return {**largest_batch(forward, device, start, limit), "options": options.as_dict()}


def _max_train_batch(model_cfg: dict, loss_cfg: dict, device: torch.device, size: int, start: int, limit: int,
                     speed: dict) -> dict[str, Any]:  # fmt: skip
    chosen = choose_training_speed(
        model_cfg, loss_cfg, device, batch=start, size=size, channels_last=speed.get("channels_last"),
        precision=speed.get("precision"), **networks._speed_kwargs(speed),
    )  # fmt: skip
    module, optimizer = networks.train_module(model_cfg, loss_cfg, device, chosen.channels_last)
    autocast = _autocast(chosen.precision)

    def train(batch: int) -> None:
        blurry = torch.rand(batch, 3, size, size, device=device)
        data = module.to_layout({"blurry": blurry, "sharp": blurry.flip(-1)})
        networks._train_step(module, optimizer, data["blurry"], data["sharp"], device, autocast)

    return {**largest_batch(train, device, start, limit), "options": chosen.options.as_dict()}


def _autocast(precision: str) -> bool:
    if precision not in networks.TRAIN_PRECISION_NAMES.values():
        raise ValueError(f"the bench times 32-true and bf16-mixed training, not {precision!r}")
    return precision == "bf16-mixed"


def recipe_wall_time(step_ms: float, epochs: int, pairs: int, batch: int, gpus: int) -> dict[str, float]:
    """Hours and days of ``epochs`` over ``pairs`` at ``batch`` per GPU from one step's ``step_ms``, on one
    GPU and (linear estimate) on ``gpus`` GPUs with DDP; steps per epoch drop the last partial batch."""
    steps_1 = pairs // batch
    steps_n = pairs // gpus // batch
    hours_1 = epochs * steps_1 * step_ms / 1e3 / 3600
    hours_n = epochs * steps_n * step_ms / 1e3 / 3600
    return {
        "steps_per_epoch_1_gpu": steps_1, "hours_1_gpu": hours_1, "days_1_gpu": hours_1 / 24,
        f"steps_per_epoch_{gpus}_gpus": steps_n, f"hours_{gpus}_gpus_linear": hours_n,
        f"days_{gpus}_gpus_linear": hours_n / 24,
    }  # fmt: skip


def _guard(out: dict[str, Any], key: str, device: torch.device, fn: Callable[..., Any], *args: Any) -> None:
    """``out[key] = fn(*args)``; an error (out of memory, no compiler) is recorded as ``{"error": ...}``."""
    try:
        out[key] = fn(*args)
    except Exception as err:  # noqa: BLE001 - the table reports the row and goes on
        log.exception("gpu tables: %s failed", key)
        out[key] = {"error": f"{type(err).__name__}: {err}"}
    _free(device)


def _preset_tables(model_cfg: dict, loss_cfg: dict, device: torch.device, size: int, batches: list[int],
                   peak_gflops: float, cfg: dict, timing: dict, speed: dict) -> dict[str, Any]:  # fmt: skip
    gmacs = networks.count(model_cfg, [(size, size)])[f"gmacs_{networks.size_key(size, size)}"]
    train_gmacs = networks.count_train_step(model_cfg, loss_cfg, size, 1)
    torch.manual_seed(0)
    net = build_model(model_cfg).eval().to(device)
    entry: dict[str, Any] = {"gmacs_per_image": gmacs, "train_gmacs_per_sample": train_gmacs}
    forward: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for batch in batches:
        _guard(forward, str(batch), device, _forward_row, net, device, batch, size, timing, speed, gmacs,
               peak_gflops)  # fmt: skip
        _guard(train, str(batch), device, _train_row, model_cfg, loss_cfg, device, batch, size, timing, speed,
               train_gmacs, peak_gflops)  # fmt: skip
    entry["forward"], entry["train_step"] = forward, train
    if cfg.get("compile", True):
        batch = int(cfg.get("compile_batch", 4))
        _guard(entry, "compile", device, _compile_row, net, device, batch, size, timing, speed)
    max_batch = dict(cfg.get("max_batch") or {})
    if max_batch.get("enabled", True):
        start, limit = int(max_batch.get("start", 4)), int(max_batch.get("limit", 1024))
        found: dict[str, Any] = {}
        _guard(found, "forward", device, _max_forward_batch, net, device, size, start, limit, speed)
        _guard(found, "train_step", device, _max_train_batch, model_cfg, loss_cfg, device, size, start, limit,
               speed)  # fmt: skip
        entry["max_batch"] = found
    return entry


def bench_gpu(
    configs: dict[str, tuple[dict, dict]],
    presets: list[str],
    device: torch.device,
    peak: dict[str, Any],
    cfg: dict[str, Any],
    timing: dict[str, Any],
    speed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The GPU tables (module docstring) for ``presets``; ``configs[preset] = (model_cfg, loss_cfg)``;
    ``cfg`` is ``conf/bench.yaml``'s ``gpu`` section, ``peak`` the result of
    :func:`~deblur.bench.peak.measure_peaks`."""
    speed = dict(speed or {})
    size, batches = int(cfg.get("size", 256)), [int(b) for b in cfg.get("batches", [4, 8, 16])]
    peak_name, peak_gflops = _bf16_peak(peak)
    out: dict[str, Any] = {
        "device": str(device), "size": size, "batches": batches, "peak_name": peak_name,
        "peak_gflops": peak_gflops, "presets": {},
    }  # fmt: skip
    for preset in presets:
        log.info("gpu tables: %s", preset)
        model_cfg, loss_cfg = configs[preset]
        _guard(out["presets"], preset, device, _preset_tables, model_cfg, loss_cfg, device, size, batches,
               peak_gflops, cfg, timing, speed)  # fmt: skip
    gpus = int(cfg.get("ddp_gpus", 8))
    out["ddp_gpus"] = gpus
    out["recipes"] = {}
    for name, recipe in dict(cfg.get("recipes") or {}).items():
        preset, batch = recipe["preset"], int(recipe["batch"])
        row: dict[str, Any] = {
            "preset": preset, "epochs": int(recipe["epochs"]), "pairs": int(recipe["pairs"]), "batch": batch,
            "size": size,
        }  # fmt: skip
        step = out["presets"].get(preset, {}).get("train_step", {}).get(str(batch))
        if (not step or "ms" not in step) and preset in configs:
            model_cfg, loss_cfg = configs[preset]
            train_gmacs = networks.count_train_step(model_cfg, loss_cfg, size, 1)
            holder: dict[str, Any] = {}
            _guard(holder, "step", device, _train_row, model_cfg, loss_cfg, device, batch, size, timing,
                   speed, train_gmacs, peak_gflops)  # fmt: skip
            step = holder["step"]
        if not step or "ms" not in step:
            row["error"] = (step or {}).get("error", f"no training step of {preset} at batch {batch}")
        else:
            row["step_ms"], row["options"] = step["ms"], step.get("options")
            row.update(recipe_wall_time(step["ms"], row["epochs"], row["pairs"], batch, gpus))
        out["recipes"][name] = row
    return out
