"""Prepare a trained network for fast inference: BatchNorm folding, channels_last, torch.compile, bf16.

Each transform keeps the outputs within its stated tolerance of the plain fp32 NCHW forward pass
(:data:`deblur.speed.options.TOLERANCES`, tests/unit/test_speedups.py). Which options to use is
:mod:`deblur.speed.options` (the fixed rule) or :mod:`deblur.speed.inference_probe` (timed).

Usage::

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
from collections.abc import Iterator

import torch
from torch import nn

from deblur.models.msfs.octconv import OctaveConv
from deblur.speed.options import InferenceOptions

log = logging.getLogger(__name__)


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
