"""Make a trained network run faster at inference without changing its outputs beyond a stated tolerance.

Options (:class:`InferenceOptions`), each with its tolerance in :data:`TOLERANCES` (the minimum PSNR, in
dB, of the option's output against the fp32 NCHW output, images in [0, 1]; tests/unit/test_speedups.py):

* ``channels_last``: weights and 4-D inputs in ``torch.channels_last`` (NHWC) memory format;
* ``precision="bf16"``: ``torch.autocast(device_type, dtype=torch.bfloat16)`` around the forward pass
  (weights stay fp32; both networks add the fp32 input back at the end, so outputs come out in fp32);
* ``fold_batchnorm``: eval-mode BatchNorm2d folded into the preceding convolution(s) (:func:`fold_batchnorm`);
* ``compile``: ``torch.compile(net)`` (recompiles with dynamic shapes when the image size changes).

Which options to use is measured, not assumed (:mod:`deblur.speed_probe`): options left unset (None /
``null``) are chosen by timing the candidates on the network and a representative input, and the choice
is cached per device, torch version, network and input size. ``speed=fixed`` (or no network to time)
gives :func:`default_options`, a rule that does not depend on timings. What was measured on which machine
is in ``docs/benchmarks/``.

Usage::

    options = resolve_options(device, net=net, example=x, channels_last=None, precision=None)  # probe
    fast = prepare_for_inference(net, options, device)  # a prepared copy; ``net`` is left as it was
    with inference_context(options, device):
        y = fast(to_input(x, options)).float()          # x, y: (N, 3, H, W)

``compile`` changes nothing but speed (within its tolerance); its first call compiles (tens of seconds to
minutes) and it needs a C++ compiler (CPU) or Triton (CUDA), so it is on only when asked for.
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

from deblur.models.msfs.octconv import OctaveConv

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
#: the config keys of the options, as deblur-predict / deblur-eval take them (null = measured or fixed rule)
OPTION_KEYS = ("channels_last", "precision", "fold_batchnorm", "compile")
#: per option, the minimum PSNR (dB) of its output against the fp32 NCHW output, images in [0, 1]
TOLERANCES: dict[str, float] = {"channels_last": 60.0, "fold_batchnorm": 60.0, "compile": 60.0, "bf16": 45.0}


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a network at inference. The field defaults are the plain fp32 NCHW eager forward pass."""

    channels_last: bool = False
    precision: str = "fp32"
    fold_batchnorm: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for key in ("channels_last", "fold_batchnorm", "compile"):
            value = getattr(self, key)
            if not isinstance(value, bool):
                raise ValueError(
                    f"{key} must be true or false (or null to choose by measuring), got {value!r}"
                )
        if self.precision not in PRECISIONS:
            allowed = ", ".join(repr(p) for p in PRECISIONS)
            raise ValueError(
                f"precision must be one of {allowed} (or null to choose by measuring), got {self.precision!r}"
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
    """Whether oneDNN runs bf16 natively on this CPU (avx512_bf16 / AMX) rather than emulating it.

    Used only to leave emulated bf16 out of the probe's candidates; whether native bf16 is *faster*
    than fp32 differs from CPU to CPU and is measured (:mod:`deblur.speed_probe`)."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_available(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively: CPUs through oneDNN (:func:`_cpu_has_bf16`), GPUs of compute
    capability >= 8.0 (``torch.cuda.is_bf16_supported(including_emulation=False)``). Other devices: False.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_has_bf16()
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return False


def default_options(device: torch.device) -> InferenceOptions:
    """The fixed rule: the options used without a probe (``speed=fixed``, tiny inputs, no network given).

    It depends on the device type only, never on timings, so it gives the same outputs on every run:

    * precision ``fp32`` everywhere (bf16 changes outputs by up to its 45 dB tolerance, and whether it is
      faster differs between CPUs of the same kind);
    * ``channels_last`` on CPUs and CUDA GPUs: fp32 arithmetic in another summation order, tested within
      its 60 dB tolerance (``tests/unit/test_speedups.py``); NCHW on other device types (not tested there);
    * ``fold_batchnorm`` on: fp32 arithmetic, it only removes work (a no-op without BatchNorm);
    * ``compile`` off (it needs a compiler toolchain and minutes of compiling).

    On CUDA, fp32 convolutions follow ``torch.backends.cudnn.allow_tf32`` (PyTorch's default: on).
    """
    device = torch.device(device)
    if device.type in ("cpu", "cuda"):
        return InferenceOptions(channels_last=True, precision="fp32", fold_batchnorm=True)
    return InferenceOptions()


#: the fixed rule under the name the ``speed`` key uses
fixed_options = default_options


def explicit_options(
    channels_last: bool | None = None,
    precision: str | None = None,
    fold_batchnorm: bool | None = None,
    compile: bool | None = None,
) -> dict[str, Any]:
    """The options that are set (not None), checked: bad values raise ValueError naming the key and what
    it takes (e.g. ``precision=fp16x``)."""
    given = {
        "channels_last": channels_last,
        "precision": precision,
        "fold_batchnorm": fold_batchnorm,
        "compile": compile,
    }
    given = {key: value for key, value in given.items() if value is not None}
    InferenceOptions(**given)  # validates each given value
    return given


def resolve_options(
    device: torch.device,
    *,
    net: nn.Module | None = None,
    example: torch.Tensor | None = None,
    mode: str = "probe",
    cache: Any = None,
    channels_last: bool | None = None,
    precision: str | None = None,
    fold_batchnorm: bool | None = None,
    compile: bool | None = None,
    **probe_kwargs: Any,
) -> InferenceOptions:
    """The options to run ``net`` with on ``device``: every option that is not None as given; the others
    chosen by :func:`deblur.speed_probe.resolve_speed` (a timed probe of ``net`` on ``example`` when
    ``mode="probe"`` and both are given, else the fixed rule :func:`default_options`).

    ``resolve_options(device)`` alone (no network) is the fixed rule with nothing probed. Bad values raise
    ValueError naming the key and what it takes (e.g. ``precision=fp16x``, ``speed=fast``).
    """
    from deblur.speed_probe import resolve_speed

    return resolve_speed(
        device, net=net, example=example, mode=mode, cache=cache, channels_last=channels_last,
        precision=precision, fold_batchnorm=fold_batchnorm, compile=compile, **probe_kwargs,
    ).options  # fmt: skip


def output_psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of ``other`` against ``reference``, same shape (e.g. (N, 3, H, W)), images in [0, 1].

    Not clamped (a stricter check than on saved images); inf when the two are equal.
    """
    if reference.shape != other.shape:
        raise ValueError(f"output_psnr: shapes differ, {tuple(reference.shape)} vs {tuple(other.shape)}")
    mse = torch.mean((reference.detach().double() - other.detach().double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
