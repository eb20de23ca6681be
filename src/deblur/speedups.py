"""Make a trained network run faster at inference without changing its outputs beyond a stated tolerance.

Options (:class:`InferenceOptions`), each with its tolerance in :data:`TOLERANCES` (the minimum PSNR, in
dB, of the option's output against the fp32 NCHW output, images in [0, 1]; tests/unit/test_speedups.py):

* ``channels_last``: weights and 4-D inputs in ``torch.channels_last`` (NHWC) memory format;
* ``precision="bf16"``: ``torch.autocast(device_type, dtype=torch.bfloat16)`` around the forward pass
  (weights stay fp32; both networks add the fp32 input back at the end, so outputs come out in fp32);
* ``fold_batchnorm``: eval-mode BatchNorm2d folded into the preceding convolution(s) (:func:`fold_batchnorm`);
* ``compile``: ``torch.compile(net)`` (recompiles with dynamic shapes when the image size changes).

Usage (what ``deblur-predict`` and ``deblur-eval`` do)::

    options = default_options(device)                  # or InferenceOptions(...) / resolve_options(...)
    fast = prepare_for_inference(net, options, device)  # a prepared copy; ``net`` is left as it was
    with inference_context(options, device):
        y = fast(to_input(x, options)).float()          # x, y: (N, 3, H, W)

Measured forward times at 256 x 256 (machine: 2-core AMD EPYC with avx512_bf16, torch 2.14.1 CPU,
``torch.set_num_threads(2)``; random weights from ``build_model`` with the ``conf/model`` presets
``msfs_small``, ``fddn`` and ``msfs`` (norm: batch, the only one with BatchNorm); batch = the astronaut photo
and its flips; the options' runs interleaved, median (and min) of 5-15 runs after 2 warm-up runs; speed-up =
fp32 NCHW median / option median in the same interleaved run; PSNR = :func:`output_psnr` against the fp32
NCHW output; setup = :func:`prepare_for_inference` plus the 2 warm-up runs, i.e. compile time for compile):

========== =====  ========================== ========= ======= ======== =======  =======
network    batch  options                    median ms  min ms speed-up PSNR dB  setup s
========== =====  ========================== ========= ======= ======== =======  =======
msfs_small     1  fp32 NCHW                        150     136    1.00x     inf      0.4
msfs_small     1  channels_last                     89      73    1.69x   147.1      0.2
msfs_small     1  bf16                              98      85    1.53x    68.1      0.4
msfs_small     1  bf16 + channels_last              46      37    3.23x    68.1      0.1
msfs_small     1  fold_batchnorm                   142     128    1.05x     inf      0.3
msfs_small     1  fold_bn + bf16 + ch_last          49      38    3.07x    68.1      0.1
msfs_small     4  fp32 NCHW                        849     701    1.00x     inf      1.5
msfs_small     4  channels_last                    352     325    2.41x   147.0      0.8
msfs_small     4  bf16                             319     285    2.66x    68.1      0.9
msfs_small     4  bf16 + channels_last             154     137    5.51x    68.1      0.4
msfs_small     4  fold_batchnorm                   736     606    1.15x     inf      1.5
msfs_small     4  fold_bn + bf16 + ch_last         160     136    5.31x    68.1      0.4
msfs_small     4  compile                          394     334    2.38x   147.1     30.2
msfs_small     4  compile + bf16 + ch_last         179     143    5.24x    68.9     30.4
fddn           1  fp32 NCHW                        179     172    1.00x     inf      0.6
fddn           1  channels_last                    109      93    1.65x   148.2      0.3
fddn           1  bf16                             170     144    1.06x    65.7      0.4
fddn           1  bf16 + channels_last              81      75    2.21x    65.7      0.3
fddn           1  fold_batchnorm                   180     165    1.00x     inf      0.5
fddn           1  fold_bn + bf16 + ch_last          82      75    2.18x    65.7      0.2
fddn           1  compile                           90      83    2.11x   148.2    128.3
fddn           1  compile + bf16 + ch_last          77      72    2.47x    65.8    131.4
fddn           4  fp32 NCHW                        691     619    1.00x     inf      1.7
fddn           4  channels_last                    411     359    1.68x   148.2      0.9
fddn           4  bf16                             488     468    1.41x    65.7      1.0
fddn           4  bf16 + channels_last             244     225    2.83x    65.7      0.5
fddn           4  fold_batchnorm                   719     638    0.96x     inf      1.4
fddn           4  fold_bn + bf16 + ch_last         269     225    2.57x    65.7      0.5
msfs           1  fp32 NCHW                       2018    1855    1.00x     inf      4.1
msfs           1  channels_last                   1653    1526    1.22x   149.8      3.5
msfs           1  bf16                            1022     998    1.97x    72.0      2.4
msfs           1  bf16 + channels_last             764     732    2.64x    72.0      2.0
msfs           1  fold_batchnorm                  2012    1940    1.00x   152.7      4.0
msfs           1  fold_bn + bf16 + ch_last         778     736    2.59x    72.0      1.6
msfs           1  compile                         1471    1370    1.34x   149.8     64.0
msfs           1  compile + bf16 + ch_last         687     676    2.86x    72.2     61.3
msfs           4  fp32 NCHW                      12093   11812    1.00x     inf     24.2
msfs           4  channels_last                   9001    8202    1.34x   149.8     17.7
msfs           4  bf16                            5412    5260    2.23x    72.0     11.1
msfs           4  bf16 + channels_last            4184    3974    2.89x    72.0      9.0
msfs           4  fold_batchnorm                 11706   10943    1.03x   152.7     23.8
msfs           4  fold_bn + bf16 + ch_last        4170    3910    2.90x    72.0      8.0
========== =====  ========================== ========= ======= ======== =======  =======

The machine was shared and noisy (single runs up to 2x the median): differences under ~10 % are noise, as
``fold_batchnorm`` on the two networks without BatchNorm (a no-op there: 0.96-1.15x) shows. Channels-last
and bf16 pay off together (oneDNN's bf16 convolutions want NHWC); the full-size ``msfs`` is memory-bound
at batch 4 (6x the batch-1 time). ``compile`` adds 10-17 % on top of bf16 + channels_last in the same run,
for 30-130 s of compiling and a C++ toolchain, so it is not a default (:func:`default_options`).

The CUDA defaults were not measured here (no GPU was available): channels_last + bf16 is the standard
fast setting for convolutional networks on tensor-core GPUs (compute capability >= 8.0), and folding
BatchNorm only removes work.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from deblur.models.octconv import OctaveConv

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
#: the config keys of the options, as deblur-predict / deblur-eval take them (null = default_options)
OPTION_KEYS = ("channels_last", "precision", "fold_batchnorm", "compile")
#: per option, the minimum PSNR (dB) of its output against the fp32 NCHW output, images in [0, 1]
TOLERANCES: dict[str, float] = {"channels_last": 60.0, "fold_batchnorm": 60.0, "compile": 60.0, "bf16": 45.0}


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a network at inference. The defaults are the plain fp32 NCHW eager forward pass."""

    channels_last: bool = False
    precision: str = "fp32"
    fold_batchnorm: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for key in ("channels_last", "fold_batchnorm", "compile"):
            value = getattr(self, key)
            if not isinstance(value, bool):
                raise ValueError(
                    f"{key} must be true or false (or null for the device default), got {value!r}"
                )
        if self.precision not in PRECISIONS:
            allowed = ", ".join(repr(p) for p in PRECISIONS)
            raise ValueError(
                f"precision must be one of {allowed} (or null for the device default), got {self.precision!r}"
            )

    def enabled(self) -> list[str]:
        """The :data:`TOLERANCES` keys of the options that are on, e.g. ``["channels_last", "bf16"]``."""
        keys = [key for key in ("channels_last", "fold_batchnorm", "compile") if getattr(self, key)]
        return keys + (["bf16"] if self.precision == "bf16" else [])

    def tolerance(self) -> float:
        """The stated tolerance of this combination: the lowest of its options' (inf when none is on)."""
        return min((TOLERANCES[key] for key in self.enabled()), default=math.inf)

    def as_dict(self) -> dict[str, bool | str]:
        """``{"channels_last": ..., "precision": ..., "fold_batchnorm": ..., "compile": ...}`` for records."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def describe_options(options: Mapping[str, Any] | None) -> str:
    """A record's options (:meth:`InferenceOptions.as_dict`) in words: ``bf16, channels_last`` (``fp32``
    when none is recorded)."""
    if not options:
        return "fp32"
    flags = [key for key in ("channels_last", "fold_batchnorm", "compile") if options.get(key)]
    return ", ".join([str(options.get("precision", "fp32")), *flags])


# ---------------------------------------------------------------- BatchNorm folding
def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (C,) float64, with eval-mode ``bn(y) = scale[c] * y + shift[c]``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm needs BatchNorm2d running statistics (track_running_stats=True)")
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv_std)
    scale = gamma * inv_std
    return scale, beta - bn.running_mean.double() * scale


@torch.no_grad()
def _scale_conv(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Multiply output channel c of ``conv`` (weight (C_out, C_in/g, k, k) and bias) by ``scale[c]``."""
    weight = conv.weight
    weight.copy_((weight.double() * scale.view(-1, 1, 1, 1).to(weight.device)).to(weight.dtype))
    if conv.bias is not None:
        conv.bias.copy_((conv.bias.double() * scale.to(weight.device)).to(conv.bias.dtype))


@torch.no_grad()
def _add_shift(conv: nn.Conv2d, shift: torch.Tensor) -> None:
    """Add ``shift`` (C_out,) to ``conv``'s bias, creating a zero bias first when it has none."""
    weight = conv.weight
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=weight.dtype, device=weight.device))
    conv.bias.copy_((conv.bias.double() + shift.to(weight.device)).to(conv.bias.dtype))


def _fold_into(paths: list[nn.Conv2d | None], bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into the convolutions whose outputs are summed before it (the first takes the shift).

    Valid because the sum only passes through linear, per-channel maps (nearest up-sampling, average
    pooling): ``bn(sum_i f_i(conv_i(x_i))) = sum_i f_i((scale * conv_i)(x_i)) + shift``.
    """
    convs = [conv for conv in paths if conv is not None]
    scale, shift = _bn_affine(bn)
    for conv in convs:
        _scale_conv(conv, scale)
    _add_shift(convs[0], shift)


def _fold_octave(module: nn.Module) -> int:
    """Fold ``module.norm_high`` / ``norm_low`` into ``module.conv`` (an OctaveConv). Returns how many."""
    conv: OctaveConv = module.conv
    count = 0
    if isinstance(module.norm_high, nn.BatchNorm2d):  # Y^H = h2h(X^H) + up(l2h(X^L))  (Eq. 1)
        _fold_into([conv.h2h, conv.l2h], module.norm_high)
        module.norm_high = nn.Identity()
        count += 1
    if isinstance(getattr(module, "norm_low", None), nn.BatchNorm2d):  # Y^L = h2l(pool X^H) + l2l(X^L)
        _fold_into([conv.h2l, conv.l2l], module.norm_low)
        module.norm_low = nn.Identity()
        count += 1
    return count


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` pair inside ``seq``. Returns how many."""
    count = 0
    for i in range(len(seq) - 1):
        conv, bn = seq[i], seq[i + 1]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            if bn.num_features == conv.out_channels:
                _fold_into([conv], bn)
                seq[i + 1] = nn.Identity()
                count += 1
    return count


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` with eval-mode BatchNorm2d folded into the preceding convolution(s).

    Folded: the FSMs' OctaveConv -> ``norm_high`` / ``norm_low`` (each BN's scale goes into every conv
    path feeding its branch, its shift into the bias of one path: ``h2h`` for Y^H, ``h2l`` for Y^L), and
    ``Conv2d -> BatchNorm2d`` pairs inside an ``nn.Sequential`` (FDDN and the RCABs have none; the rule is
    there for other networks). Folded BNs become ``nn.Identity``. The running statistics are used whatever
    the module's mode (eval semantics). BatchNorms that follow no convolution are left in place (logged).
    Shapes are unchanged: the copy maps (N, C, H, W) to the same output as ``net.eval()``. ``net`` itself
    is not modified.
    """
    folded = copy.deepcopy(net)
    count = 0
    for module in list(folded.modules()):
        if isinstance(getattr(module, "conv", None), OctaveConv) and hasattr(module, "norm_high"):
            count += _fold_octave(module)
        elif isinstance(module, nn.Sequential):
            count += _fold_sequential(module)
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    if left:
        log.warning("fold_batchnorm: %d BatchNorm layer(s) follow no convolution and were kept", left)
    log.debug("fold_batchnorm: folded %d BatchNorm2d layer(s)", count)
    return folded


# ---------------------------------------------------------------- compile
class CompileUnavailableError(RuntimeError):
    """``compile=true`` was asked for but torch.compile does not work in this environment."""


_COMPILE_WORKS: set[str] = set()


def _probe(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 + 1.0


def check_compile(device: torch.device) -> None:
    """Raise :class:`CompileUnavailableError` (naming ``compile``) unless torch.compile works on ``device``.

    Compiles and runs a one-line function once per device type (the backend's compiler toolchain is what
    usually fails: Inductor needs a C++ compiler on the CPU, Triton on CUDA).
    """
    if device.type in _COMPILE_WORKS:
        return
    if not hasattr(torch, "compile"):
        raise CompileUnavailableError(f"compile=true: torch {torch.__version__} has no torch.compile")
    try:
        out = torch.compile(_probe)(torch.ones(4, device=device))
        ok = bool(torch.equal(out.cpu(), torch.full((4,), 3.0)))
    except Exception as err:  # a missing compiler, an unsupported Python, a broken backend
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CompileUnavailableError(
            f"compile=true: torch.compile does not work on {device.type} here ({type(err).__name__}: "
            f"{first[:300]}); run with compile=false"
        ) from err
    if not ok:
        raise CompileUnavailableError(
            "compile=true: torch.compile gave a wrong result; run with compile=false"
        )
    _COMPILE_WORKS.add(device.type)


# ---------------------------------------------------------------- preparing and running
def _check_device(options: InferenceOptions, device: torch.device) -> None:
    if options.precision == "bf16" and device.type == "cuda" and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(f"precision=bf16: the GPU {device} has no bf16 support; use precision=fp32")


def prepare_for_inference(net: nn.Module, options: InferenceOptions, device: torch.device) -> nn.Module:
    """A prepared copy of ``net``: eval mode, on ``device``, BN folded / channels_last / compiled as asked.

    The caller's module (its weights, device and train/eval mode) is never changed. The result maps
    (N, C, H, W) inputs to (N, C', H, W) outputs like ``net.eval()``; run it under
    :func:`inference_context` on inputs passed through :func:`to_input`. Raises
    :class:`CompileUnavailableError` (naming ``compile``) when ``compile=True`` and torch.compile does not
    work here.
    """
    _check_device(options, device)
    if options.compile:
        check_compile(device)
    prepared = fold_batchnorm(net) if options.fold_batchnorm else copy.deepcopy(net)
    prepared = prepared.eval().to(device)
    for param in prepared.parameters():
        param.requires_grad_(False)
    if options.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    if options.compile:
        prepared = torch.compile(prepared)
    return prepared


@contextlib.contextmanager
def inference_context(options: InferenceOptions, device: torch.device) -> Iterator[None]:
    """``torch.inference_mode()``, plus ``torch.autocast(device.type, dtype=torch.bfloat16)`` for bf16."""
    with torch.inference_mode():
        if options.precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield


def to_input(x: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    """(N, C, H, W) ``x`` in channels_last memory format when the option is on; anything else unchanged."""
    if options.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# ---------------------------------------------------------------- defaults and checks
def _cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (avx512_bf16 / AMX); emulated bf16 is slower."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_options(device: torch.device) -> InferenceOptions:
    """The fastest eager setting measured (module docstring) whose outputs stay within TOLERANCES.

    * CPU: channels_last + bf16 + fold_batchnorm (2.2-5.3x here, 65.7-72 dB from fp32, the fastest eager
      setting within 10 % noise of bf16 + channels_last); bf16 only where oneDNN runs it natively
      (avx512_bf16 / AMX), else channels_last + fold_batchnorm (1.2-2.4x here; emulated bf16 not measured).
    * CUDA (not measured: no GPU was available here): channels_last + bf16 (compute capability >= 8.0)
      + fold_batchnorm, the standard fast setting for convolutional networks on tensor-core GPUs.
    * Other devices: plain fp32 NCHW.

    ``fold_batchnorm`` is always on: it only removes work (no effect where there is no BatchNorm). ``compile``
    is never on: on top of channels_last + bf16 it gained 10-17 % per forward pass here, while its first
    call took 30-130 s and it needs a C++ compiler (CPU) or Triton (CUDA).
    """
    device = torch.device(device)
    if device.type == "cuda":
        bf16 = not torch.cuda.is_available() or torch.cuda.get_device_capability(device)[0] >= 8
        return InferenceOptions(channels_last=True, precision="bf16" if bf16 else "fp32", fold_batchnorm=True)
    if device.type == "cpu":
        precision = "bf16" if _cpu_has_bf16() else "fp32"
        return InferenceOptions(channels_last=True, precision=precision, fold_batchnorm=True)
    return InferenceOptions()


def resolve_options(
    device: torch.device,
    *,
    channels_last: bool | None = None,
    precision: str | None = None,
    fold_batchnorm: bool | None = None,
    compile: bool | None = None,
) -> InferenceOptions:
    """:func:`default_options` for ``device`` with every argument that is not None put in its place.

    Bad values raise ValueError naming the key and what it takes (e.g. ``precision=fp16x``).
    """
    given = {
        "channels_last": channels_last,
        "precision": precision,
        "fold_batchnorm": fold_batchnorm,
        "compile": compile,
    }
    chosen = default_options(device).as_dict()
    chosen.update({key: value for key, value in given.items() if value is not None})
    return InferenceOptions(**chosen)


def output_psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of ``other`` against ``reference``, same shape (e.g. (N, 3, H, W)), images in [0, 1].

    Not clamped (a stricter check than on saved images); inf when the two are equal.
    """
    if reference.shape != other.shape:
        raise ValueError(f"output_psnr: shapes differ, {tuple(reference.shape)} vs {tuple(other.shape)}")
    mse = torch.mean((reference.detach().double() - other.detach().double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
