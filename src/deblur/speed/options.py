"""The speed options, their stated tolerances, and the fixed rules that need no timing: for inference
(:class:`InferenceOptions`, :func:`default_options`) and for training (:class:`TrainingOptions`,
:func:`fixed_training_options`).

Options (:class:`InferenceOptions`), each with its tolerance in :data:`TOLERANCES` (the minimum PSNR, in
dB, of the option's output against the fp32 NCHW output, images in [0, 1]; tests/unit/test_speedups.py):

* ``channels_last``: weights and 4-D inputs in ``torch.channels_last`` (NHWC) memory format;
* ``precision="bf16"``: ``torch.autocast(device_type, dtype=torch.bfloat16)`` around the forward pass
  (weights stay fp32; both networks add the fp32 input back at the end, so outputs come out in fp32);
* ``fold_batchnorm``: eval-mode BatchNorm2d folded into the preceding convolution(s)
  (:func:`deblur.speed.transforms.fold_batchnorm`);
* ``compile``: ``torch.compile(net)`` (recompiles with dynamic shapes when the image size changes).

Applying them: :mod:`deblur.speed.transforms`. Which options to use is measured, not assumed
(:mod:`deblur.speed.inference_probe`): options left unset (None / ``null``) are chosen by timing the
candidates on the network and a representative input, and the choice is cached per device, torch version,
network and input size. ``speed=fixed`` (or no network to time) gives :func:`default_options`, a rule that
does not depend on timings. What was measured on which machine is in ``docs/benchmarks/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

#: values of the ``speed`` key: time the options left null, or use the fixed rule
MODES = ("probe", "fixed")
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



# ---------------------------------------------------------------- defaults and checks
def _cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (avx512_bf16 / AMX) rather than emulating it.

    Used only to leave emulated bf16 out of the probe's candidates; whether native bf16 is *faster*
    than fp32 differs from CPU to CPU and is measured (:mod:`deblur.speed.inference_probe`)."""
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


def check_speed_mode(mode: str) -> None:
    """Raise ValueError naming the ``speed`` key unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"speed must be one of {', '.join(MODES)}, got {mode!r}")


# ---------------------------------------------------------------- training
#: Lightning precisions the training probe chooses between (``trainer.precision=auto``)
TRAIN_PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class TrainingOptions:
    """How to train: ``channels_last`` (train.yaml's key) and the Lightning ``trainer.precision``."""

    channels_last: bool = False
    precision: str = "32-true"

    def label(self) -> str:
        return f"{self.precision}{', channels_last' if self.channels_last else ''}"

    def as_dict(self) -> dict[str, bool | str]:
        return {"channels_last": self.channels_last, "precision": self.precision}


def fixed_training_options(device: torch.device) -> TrainingOptions:
    """The training fixed rule: ``32-true`` (fp32, results do not depend on bf16 units); channels_last on
    CPU and CUDA (fp32 in another summation order: the same loss and gradients up to rounding,
    ``tests/unit/test_training_layout.py``), NCHW elsewhere."""
    return TrainingOptions(channels_last=torch.device(device).type in ("cpu", "cuda"), precision="32-true")
