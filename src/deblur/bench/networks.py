"""Per-preset cost: size, multiply-accumulates, forward and training speed, memory.

A *preset* is a model config option (``msfs``, ``msfs_small``, ``fddn``, ``fddn_small``, ``nafnet``,
``nafnet_small``) optionally with an ablation of its family: ``msfs+no_fsm`` = ``model=msfs
ablation=msfs/no_fsm`` (``+`` because ``.`` and ``/`` would break the
``models.<preset>.forward.fraction_of_peak`` key paths of ``bench.json``). Presets are composed from
``conf/train.yaml`` exactly as ``deblur-train`` would compose them, each with the loss its model config
selects (NAFNet's train step: its PSNR loss). A model config of the user's own ``--config-dir`` folder
(a ``_target_`` network, docs/own_network.md) is a preset too, its train step with ``loss=l1`` unless its
YAML names a loss.

Networks are randomly initialised (seeded): speed does not depend on the weights. Multiply-accumulates
(MACs) come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no computation;
convolutions, matrix products and the like; element-wise work is not counted) and are per image.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deblur.bench.memory import PeakMemory
from deblur.config.checks import check_train_config
from deblur.config.overrides import describe_error
from deblur.errors import UserError
from deblur.losses.build import with_default_loss
from deblur.metrics.agreement import output_psnr
from deblur.models.build import build_model
from deblur.models.custom import is_target_config
from deblur.paths import CONF_DIR
from deblur.speed.inference_probe import resolve_speed
from deblur.speed.options import InferenceOptions, bf16_available, describe_options
from deblur.speed.rule import paired
from deblur.speed.timing import Timing, time_interleaved
from deblur.speed.training_probe import choose_training_speed
from deblur.speed.transforms import inference_context, prepare_for_inference, to_input

log = logging.getLogger(__name__)

#: name -> options of the forward-pass comparison (``compile`` is added when asked for)
FORWARD_OPTIONS: dict[str, InferenceOptions] = {
    "fp32": InferenceOptions(),
    "channels_last": InferenceOptions(channels_last=True),
    "bf16": InferenceOptions(precision="bf16"),
    "bf16_channels_last": InferenceOptions(channels_last=True, precision="bf16"),
    "fold_batchnorm": InferenceOptions(fold_batchnorm=True),
}

#: published figures shown next to ours (bench.md): fp32 size in MB, parameters, MACs at 256x256
PAPER_FIGURES: dict[str, dict[str, float]] = {
    "msfs": {"params_m": 21.59, "gmacs_256x256": 306.0},  # public code / paper
    "fddn": {"size_mb": 8.08},  # FDDN Table 5, full model (0.019 s per GoPro image on a GPU)
    "fddn+no_distillation": {"size_mb": 9.05},
    "fddn+no_fsb": {"size_mb": 7.96},
    "fddn+no_fdb": {"size_mb": 7.89},
    "nafnet": {"params_m": 17.11},  # NAFNet (ECCV 2022), GoPro width 32: the published parameter count
}
#: what the paper column of bench.md says for a preset without published figures (e.g. ``msfs_small``)
NO_PAPER_ROW = "no paper row"


def ablation_families() -> list[str]:
    """The model-name prefixes with ablations: the folders ``conf/ablation/<family>/`` (NAFNet has none),
    read from ``conf/`` so that a network's ablations are declared there alone."""
    root = CONF_DIR / "ablation"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def preset_overrides(preset: str) -> list[str]:
    """``"msfs+no_fsm"`` -> ``["model=msfs", "ablation=msfs/no_fsm"]``;
    ``"fddn_small"`` -> ``["model=fddn_small"]``, ``"nafnet_small"`` -> ``["model=nafnet_small"]``.
    ValueError for an ablation of a model without ablations (``nafnet+...``)."""
    model, _, ablation = preset.partition("+")
    if not ablation:
        return [f"model={model}"]
    families = ablation_families()
    family = max((f for f in families if model.startswith(f)), key=len, default=None)
    if family is None:
        raise ValueError(
            f"bench preset {preset!r}: model {model!r} has no ablations (only {families} "
            "have, in conf/ablation/<family>/); use the preset without '+...'"
        )
    return [f"model={model}", f"ablation={family}/{ablation}"]


def preset_configs(preset: str, compose: Callable[[list[str]], Any]) -> tuple[dict, dict]:
    """``(model config, loss config)`` of ``preset``; ``compose(overrides)`` returns the train config.

    A preset may also be a model config of the user's own config folder (``deblur-bench --config-dir
    my_conf timed=[mynet]``, ``my_conf/model/mynet.yaml`` with a ``_target_``; docs/own_network.md): its
    keys are checked against the network's constructor, and a network whose YAML names no loss gets the
    loss ``deblur-train`` gives it (:func:`deblur.losses.build.with_default_loss`: ``l1``).

    Raises:
        UserError: no ``model/<name>.yaml`` in the suite's ``conf/`` or a ``--config-dir`` folder, or a
            ``_target_`` network that does not import or does not take its config's keys.
    """
    try:
        cfg = compose(preset_overrides(preset))
    except MissingConfigException as err:
        model = preset.partition("+")[0]
        raise UserError(
            f"bench preset {preset!r} (in timed / presets): no model config model/{model}.yaml in the "
            f"suite's conf/ or in a --config-dir folder; {describe_error(err)}"
        ) from None
    if with_default_loss(cfg):
        log.info("bench preset %r: model._target_=%s names no loss: its train step uses loss=l1",
                 preset, cfg.model["_target_"])  # fmt: skip
    if is_target_config(cfg.model):
        try:
            check_train_config(OmegaConf.create({"model": cfg.model, "loss": cfg.loss}))
        except UserError as err:
            raise UserError(f"bench preset {preset!r}: {err}") from None
    model = OmegaConf.to_container(cfg.model, resolve=True)
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    if "pretrained" in loss:
        loss["pretrained"] = False  # same architecture and cost; ImageNet weights are not needed to time it
    return model, loss


def size_key(height: int, width: int) -> str:
    """``"1280x720"``: width x height, as image sizes are usually written."""
    return f"{width}x{height}"


def count(model_cfg: dict, sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Parameters, fp32 size (MiB, the papers' "MB") and ``gmacs_<W>x<H>`` per image for each (H, W)."""
    with torch.device("meta"):
        net = build_model(model_cfg).eval()
    params = sum(p.numel() for p in net.parameters())
    out: dict[str, Any] = {"params": params, "params_m": params / 1e6, "size_mb": params * 4 / 2**20}
    for h, w in sizes:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.empty(1, 3, h, w, device="meta"))
        out[f"gmacs_{size_key(h, w)}"] = counter.get_total_flops() / 2 / 1e9
    return out


def count_train_step(model_cfg: dict, loss_cfg: dict, size: int, batch: int) -> float:
    """GMACs per sample of one training step at (batch, 3, size, size): forward with the loss's feature
    passes (MSFS-Net re-encodes the output and the target; FDDN runs VGG16), loss, backward. Meta device."""
    from deblur.lit.restoration import RestorationModule

    with torch.device("meta"):
        module = RestorationModule(model=model_cfg, loss=loss_cfg, optim={"name": "adam", "lr": 1e-4})
    blurry = torch.empty(batch, 3, size, size, device="meta")
    sharp = torch.empty(batch, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        _, total, _ = module.compute_loss(blurry, sharp)
        total.backward()
    return counter.get_total_flops() / 2 / 1e9 / batch


def sample_batch(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(batch, 3, H, W) in [0, 1]: crops of scikit-image's astronaut photo (real image statistics)."""
    from skimage import data
    from skimage.transform import resize

    photo = data.astronaut().astype(np.float32) / 255.0
    photo = resize(photo, (max(height, 512), max(width, 512)), anti_aliasing=True, preserve_range=True)
    crops = []
    for i in range(batch):
        top = (i * 37) % (photo.shape[0] - height + 1)
        left = (i * 53) % (photo.shape[1] - width + 1)
        crops.append(torch.from_numpy(np.ascontiguousarray(photo[top : top + height, left : left + width])))
    return torch.stack(crops).permute(0, 3, 1, 2).contiguous().to(device)


def _has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def _timing_figures(measured: Timing, batch: int) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "ms": measured.seconds * 1e3,
        "min_ms": measured.min_seconds * 1e3,
        "images_per_s": batch / measured.seconds,
        "runs": measured.runs,
        "times_ms": [t * 1e3 for t in measured.times],  # per interleaved round, in order
    }
    if measured.peak_mib is not None:
        figures["peak_memory_mib"] = measured.peak_mib
        figures["memory_kind"] = measured.memory_kind
    return figures


def _forward_call(
    fast: nn.Module, x: torch.Tensor, options: InferenceOptions, device: torch.device
) -> torch.Tensor:
    with inference_context(options, device):
        return fast(x)


def time_forwards(
    net: nn.Module,
    x: torch.Tensor,
    options: dict[str, InferenceOptions],
    device: torch.device,
    timing: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Prepare ``net`` once per named ``options`` and time their forward passes on ``x`` interleaved
    (:func:`~deblur.speed.timing.time_interleaved`); returns ``(figures per name, fp32 output per name)``.
    Peak memory is that of each option's first call, with every compared copy of the network resident."""
    calls = {}
    for name, opts in options.items():
        fast = prepare_for_inference(net, opts, device)
        calls[name] = functools.partial(_forward_call, fast, to_input(x, opts), opts, device)
    measured = time_interleaved(calls, device, memory=PeakMemory, **timing)
    figures = {name: _timing_figures(m, x.shape[0]) for name, m in measured.items()}
    return figures, {name: m.result.float() for name, m in measured.items()}


def time_forward(
    net: nn.Module,
    x: torch.Tensor,
    options: InferenceOptions,
    device: torch.device,
    timing: dict[str, Any],
) -> tuple[dict[str, Any], torch.Tensor]:
    """Prepare ``net`` with ``options`` and time ``net(x)``; returns (figures, fp32 output)."""
    figures, outputs = time_forwards(net, x, {"options": options}, device, timing)
    return figures["options"], outputs["options"]


def _efficiency(figures: dict[str, Any], gmacs_per_image: float, batch: int, peak_gflops: float) -> None:
    gflops = 2 * gmacs_per_image * batch / (figures["ms"] / 1e3)
    figures["gflops"] = gflops
    figures["fraction_of_peak"] = gflops / peak_gflops


def default_vs_best(rows: dict[str, dict[str, Any]], default: str, key: str = "min_ms") -> tuple[float, str]:
    """(the fastest row's ``key`` / the default row's, the fastest row's name): 1.0 when the default is the
    fastest, 0.8 when the fastest tested option takes 80 % of the default's time.

    By minimum times by default: the rows are timed interleaved, and other processes only ever add time,
    so on a shared machine the minimum is the steadier estimate (the medians' ratio is reported too)."""
    best = min(rows, key=lambda name: rows[name][key])
    return rows[best][key] / rows[default][key], best


def paired_default_vs_best(rows: dict[str, dict[str, Any]], default: str) -> tuple[float, str, float]:
    """(best / default, the best row's name, the spread) from the rows' per-round times (``times_ms``,
    timed interleaved): per row, the median over rounds of ``t_row / t_default``
    (:func:`deblur.speed.rule.paired`); the best row has the smallest; ``best / default`` = that median,
    at most 1.0 (the default is one of the rows). The spread is that of the best row's per-round
    ratios (0 when the default is the best). A slow round slows every row of it, so this is steadier on a
    shared machine than a ratio of two separately taken times."""
    n = min(len(f.get("times_ms", [])) for f in rows.values())
    rounds = [{name: f["times_ms"][i] for name, f in rows.items()} for i in range(n)]
    best, ratio, spread = default, 1.0, 0.0
    for name in rows:
        if name == default:
            continue
        gain, row_spread, shared = paired(rounds, name, default)  # gain = median(t_row / t_default) - 1
        if shared and 1.0 + gain < ratio:
            best, ratio, spread = name, 1.0 + gain, row_spread
    return ratio, best, spread


def _speed_kwargs(speed: dict[str, Any] | None) -> dict[str, Any]:
    speed = dict(speed or {})
    kwargs: dict[str, Any] = {"mode": speed.get("mode", "probe"), "cache": speed.get("cache")}
    for key in ("budget_s", "min_pixels"):
        if speed.get(key) is not None:
            kwargs[key] = speed[key]
    return kwargs


def bench_forward(
    model_cfg: dict,
    counts: dict[str, Any],
    device: torch.device,
    peak_gflops: float,
    batch: int,
    size: int,
    hd: tuple[int, int] | None,
    timing: dict[str, Any],
    compile_option: bool,
    speed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Forward figures at (batch, 3, size, size): every option of :data:`FORWARD_OPTIONS` (and
    ``compile``) and the default, timed interleaved; the default also at ``hd``.

    The default is what ``deblur-predict`` resolves for this network and input
    (:func:`deblur.speed.inference_probe.resolve_speed` with ``speed``: ``mode``, ``cache``, ``budget_s``,
    ``min_pixels``); ``forward.default_vs_best`` = :func:`paired_default_vs_best` (``_spread``: its
    spread; ``_min`` / ``_median``: the ratio of minimum / median times; an option counts when its output
    is within its tolerance of the fp32 output), ``forward.probe`` = how the default was chosen."""
    torch.manual_seed(0)
    net = build_model(model_cfg).eval().to(device)
    x = sample_batch(batch, size, size, device)
    probe = resolve_speed(device, net=net, example=x, **_speed_kwargs(speed))
    chosen = probe.options
    options = dict(FORWARD_OPTIONS)
    if device.type == "cuda" and not bf16_available(device):  # before compute capability 8.0: refused
        options = {name: opts for name, opts in options.items() if opts.precision != "bf16"}
    if not _has_batchnorm(net):
        options.pop("fold_batchnorm")  # nothing to fold: the same network as fp32
    if compile_option:
        options["compile"] = InferenceOptions(compile=True)
    # without BatchNorm, folding is a no-op: the default may equal an option measured above
    effective = replace(chosen, fold_batchnorm=chosen.fold_batchnorm and _has_batchnorm(net))
    same = next((name for name, opts in options.items() if opts == effective), None)
    if same is None:
        same = "default"
        options["default"] = effective
    per_option, outputs = time_forwards(net, x, options, device, timing)
    gmacs = counts[f"gmacs_{size_key(size, size)}"]
    for name, figures in per_option.items():
        figures["psnr_vs_fp32"] = output_psnr(outputs["fp32"], outputs[name])
        _efficiency(figures, gmacs, batch, peak_gflops)
    eligible = {n: f for n, f in per_option.items() if f["psnr_vs_fp32"] >= options[n].tolerance()}
    eligible.setdefault(same, per_option[same])
    figures = dict(per_option[same])
    figures["options"] = chosen.as_dict()
    ratio, figures["best_option"], spread = paired_default_vs_best(eligible, same)
    figures["default_vs_best"], figures["default_vs_best_spread"] = ratio, spread
    figures["default_vs_best_min"], _ = default_vs_best(eligible, same)
    figures["default_vs_best_median"], _ = default_vs_best(eligible, same, "ms")
    figures["probe"] = probe.as_dict()
    log.info("forward default %s (%s): fastest tested %s, best / default %.2f +/- %.2f (paired), %.2f (min)",
             describe_options(chosen.as_dict()), probe.source, figures["best_option"],
             figures["default_vs_best"], spread, figures["default_vs_best_min"])  # fmt: skip
    result: dict[str, Any] = {"forward": figures, "forward_options": per_option}
    if hd is not None:
        hd_figures, _ = time_forward(net, sample_batch(1, hd[0], hd[1], device), chosen, device, timing)
        _efficiency(hd_figures, counts[f"gmacs_{size_key(*hd)}"], 1, peak_gflops)
        result["forward_hd"] = hd_figures
    if getattr(net, "use_fsm", False) and hasattr(net, "encode_frequencies"):
        result["re_encode"] = _bench_re_encode(net, x, device, timing)
    return result


def _bench_re_encode(
    net: nn.Module, x: torch.Tensor, device: torch.device, timing: dict[str, Any]
) -> dict[str, float]:
    """What inference saves by not re-running the encoder on the output (it only feeds the losses): the
    fp32 NCHW forward with and without the re-encoding, timed interleaved."""

    def with_features() -> None:
        with torch.inference_mode():
            pred, _ = net(x, return_features=True)
            net.encode_frequencies(pred)

    def plain() -> None:
        with torch.inference_mode():
            net(x)

    measured = time_interleaved({"inference": plain, "with_re_encode": with_features}, device, **timing)
    inference, with_it = measured["inference"], measured["with_re_encode"]
    return {
        "with_re_encode_ms": with_it.seconds * 1e3,
        "with_re_encode_min_ms": with_it.min_seconds * 1e3,
        "inference_ms": inference.seconds * 1e3,
        "inference_min_ms": inference.min_seconds * 1e3,
        "speedup": with_it.seconds / inference.seconds,
        "speedup_min": with_it.min_seconds / inference.min_seconds,
        "runs": inference.runs,
    }


#: the bench's row names of the training precisions -> Lightning's ``trainer.precision``
TRAIN_PRECISION_NAMES = {"fp32": "32-true", "bf16-mixed": "bf16-mixed"}


def _train_step(
    module: Any, optimizer: torch.optim.Optimizer, blurry: torch.Tensor, sharp: torch.Tensor,
    device: torch.device, autocast: bool,
) -> None:  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        _, total, _ = module.compute_loss(blurry, sharp)
    total.backward()
    optimizer.step()


def train_module(
    model_cfg: dict, loss_cfg: dict, device: torch.device, channels_last: bool
) -> tuple[Any, torch.optim.Optimizer]:
    """A seeded training-mode :class:`~deblur.lit.restoration.RestorationModule` on ``device`` in the
    given memory format, and an Adam optimiser over its parameters."""
    from deblur.lit.restoration import RestorationModule

    torch.manual_seed(0)
    optim = {"name": "adam", "lr": 1e-4}
    module = RestorationModule(model=model_cfg, loss=loss_cfg, optim=optim, channels_last=channels_last)
    module = module.to(device).train()
    return module, torch.optim.Adam(module.parameters(), lr=1e-4)


def _train_step_calls(
    model_cfg: dict, loss_cfg: dict, device: torch.device, batch: int, size: int,
    layouts: list[bool], precisions: list[str],
) -> dict[tuple[bool, str], Callable[[], None]]:  # fmt: skip
    """One training-step closure per (channels_last, precision row name), each layout its own module."""
    calls: dict[tuple[bool, str], Callable[[], None]] = {}
    for channels_last in layouts:
        module, optimizer = train_module(model_cfg, loss_cfg, device, channels_last)
        batch_in = {"blurry": sample_batch(batch, size, size, device)}
        batch_in["sharp"] = batch_in["blurry"].flip(-1)
        batch_in = module.to_layout(batch_in)
        for precision in precisions:
            if precision not in TRAIN_PRECISION_NAMES:
                allowed = list(TRAIN_PRECISION_NAMES)
                raise ValueError(f"train_step.precisions: {precision!r} is not one of {allowed}")
            calls[(channels_last, precision)] = functools.partial(
                _train_step, module, optimizer, batch_in["blurry"], batch_in["sharp"], device,
                precision == "bf16-mixed",
            )  # fmt: skip
    return calls


def _step_figures(measured: Timing, batch: int) -> dict[str, Any]:
    figures = _timing_figures(measured, batch)
    figures["samples_per_s"] = figures.pop("images_per_s")
    figures.pop("memory_kind", None)
    return figures


def bench_train_steps(
    model_cfg: dict,
    loss_cfg: dict,
    device: torch.device,
    batch: int,
    size: int,
    timing: dict[str, Any],
    precisions: list[str],
    speed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Training-step samples/s (forward with features, loss, backward, Adam step) per precision row
    (``fp32``; ``bf16-mixed`` = ``torch.autocast`` bf16, as Lightning's ``precision=bf16-mixed``) in both
    memory formats, all timed interleaved.

    Returns ``{"train_step": {precision: figures, "default": ..., "default_vs_best": ...},
    "train_step_nchw": {precision: figures}}``: ``train_step`` in channels_last, ``train_step_nchw`` in
    NCHW. The default is what ``deblur-train`` resolves
    (:func:`deblur.speed.training_probe.choose_training_speed` with ``speed``: ``channels_last``,
    ``precision`` (null / auto = probe), ``mode``, ``cache``, ...);
    ``default_vs_best`` = :func:`paired_default_vs_best` (``_spread``; ``_min`` / ``_median``: the ratio of
    minimum / median times)."""
    speed = dict(speed or {})
    chosen = choose_training_speed(
        model_cfg, loss_cfg, device, batch=batch, size=size, channels_last=speed.get("channels_last"),
        precision=speed.get("precision"), **_speed_kwargs(speed),
    )  # fmt: skip
    names = {v: k for k, v in TRAIN_PRECISION_NAMES.items()}
    rows = list(precisions)
    default_row = names.get(chosen.precision)
    if default_row is None:
        raise ValueError(f"train_step: the default precision {chosen.precision!r} is not one the bench times")
    if default_row not in rows:
        rows.append(default_row)
    calls = _train_step_calls(model_cfg, loss_cfg, device, batch, size, [True, False], rows)
    measured = time_interleaved(calls, device, memory=PeakMemory, **timing)
    figures = {key: _step_figures(m, batch) for key, m in measured.items()}
    out: dict[str, Any] = {
        "train_step": {p: figures[(True, p)] for p in rows},
        "train_step_nchw": {p: figures[(False, p)] for p in rows},
    }
    default_key = (chosen.channels_last, default_row)
    flat = {f"{'channels_last' if cl else 'nchw'}/{p}": f for (cl, p), f in figures.items()}
    default_name = f"{'channels_last' if chosen.channels_last else 'nchw'}/{default_row}"
    ratio, best, spread = paired_default_vs_best(flat, default_name)
    ratio_min, _ = default_vs_best(flat, default_name)
    ratio_median, _ = default_vs_best(flat, default_name, "ms")
    out["train_step"]["default"] = {
        **figures[default_key], "channels_last": chosen.channels_last, "precision": chosen.precision,
        "probe": chosen.as_dict(),
    }  # fmt: skip
    out["train_step"]["default_vs_best"] = ratio
    out["train_step"]["default_vs_best_spread"] = spread
    out["train_step"]["default_vs_best_min"] = ratio_min
    out["train_step"]["default_vs_best_median"] = ratio_median
    out["train_step"]["best_option"] = best
    log.info("training default %s (%s): fastest %s, best / default %.2f +/- %.2f (paired), %.2f (min)",
             chosen.options.label(), chosen.source, best, ratio, spread, ratio_min)  # fmt: skip
    return out
