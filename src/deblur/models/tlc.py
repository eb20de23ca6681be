"""Test-time local statistics (TLC; Chu et al., "Improving Image Restoration by Revisiting Global Statistics
Aggregation", ECCV 2022) for the channel attentions of MSFS-Net and FDDN.

A channel attention trained on 256 x 256 crops squeezes each channel to a statistic of a 256 x 256 region;
run on a whole 1280 x 720 image it squeezes the whole image instead, a statistic it never saw in training.
TLC keeps the whole image but makes each statistic local: at every position, the statistic of the window
around it, the window being the training crop scaled by ``base_size / train_size`` (the paper's and the
MSFS-Net code's ``base_size = 384`` for ``train_size = 256``), in that layer's feature resolution.

Converted, in place and reversibly, by :func:`convert_to_tlc` / :func:`revert_tlc`:

* RCAB's squeeze-and-excitation (:class:`deblur.models.rcab.ChannelAttention`, both networks): its
  ``squeeze`` (``nn.AdaptiveAvgPool2d(1)``) becomes :class:`LocalAvgPool2d`;
* NAFNet's simplified channel attention (:class:`deblur.models.nafnet.net.SimplifiedChannelAttention`, the
  authors' ``sca``): its child ``0`` (``nn.AdaptiveAvgPool2d(1)``) becomes :class:`LocalAvgPool2d`, as in
  the authors' ``NAFNetLocal``;
* FDDN's contrast-aware attention (:class:`deblur.models.cca.ContrastAwareChannelAttention`, FDB Eq. 11):
  its ``contrast`` (:class:`deblur.models.cca.ChannelContrast`, std + mean) becomes
  :class:`LocalChannelContrast`, local in both its mean and its standard deviation.

The replacements hold no parameters or buffers, so the state dict (keys and values) is unchanged, and
:func:`revert_tlc` puts back the global modules, after which the outputs are those of the unconverted
network bit for bit.

**Window of each layer** (as the MSFS-Net authors' ``local_arch.py``): one dry forward pass at
``train_size x train_size`` records the (H, W) of every statistic's input map, and the window is
``(H * base_size // train_size, W * base_size // train_size)`` -- 96 at 1/4 scale and 192 at 1/2 scale for
256 / 384. The recorded size is the one the layer sees after the network's own padding to a multiple (8 for
MSFS-Net, 4 for FDDN), so a ``train_size`` that is not such a multiple uses the padded size. The dry run is
made on the ``meta`` device (shapes only, no arithmetic, no change to the network's weights or BatchNorm
statistics); a network with an operation that has no meta implementation falls back to one real forward
pass (eval mode, no grad) on its parameters' device.

**Local statistic** (as the reference): the mean over every window position that lies wholly inside the
map ("valid" positions, H - kH + 1 of them along H), replicate-padded back to the map's size (floor of the
missing size on the left / top, ceil on the right / bottom), so positions near a border reuse the nearest
valid window. A window no smaller than the map in a dimension is clipped to the map: along that dimension
the statistic is the global one (kept as size 1 and broadcast by the attention's product), and a map no
larger than the window in both dimensions gets exactly the global module's result (the same function).

The box means are separable running sums: a cumulative sum along H, differences k apart, then the same
along W -- O(1) per pixel whatever the window (up to 384 at full scale here). Not ``kornia.filters
.box_blur``: it pads the borders (its windows there mix in padded pixels, unlike the valid windows +
replicate padding of the reference) and convolves with a k x k kernel, O(k^2) per pixel. Not
``avg_pool2d(stride=1)`` for the same O(k^2) cost. The running sums are taken in float32 (bf16 / fp16
inputs are promoted and the result cast back), 1-D only (so each sum spans one row or column, not the
whole image), which keeps their rounding small.

CCA's local std: ``sqrt(max(E_w[x^2] - E_w[x]^2, 0) + CONTRAST_EPS)`` with E_w the local mean, computed on
``x`` minus its per-channel global mean (the variance is shift-invariant; the shift avoids the cancellation
of E[x^2] - E[x]^2 on channels with a large mean). With the window covering the map it is exactly
:func:`deblur.models.cca.channel_contrast` (the same function is called).

Typical use (inference): build / load the network -> ``convert_to_tlc(net, base_size, train_size)`` ->
speed options (``deblur.speed.transforms``: BatchNorm folding, channels_last, bf16, torch.compile) -> run.
"""

from __future__ import annotations

from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from deblur.models.cca import CONTRAST_EPS, ChannelContrast, ContrastAwareChannelAttention, channel_contrast
from deblur.models.nafnet.net import SimplifiedChannelAttention
from deblur.models.rcab import ChannelAttention

Window = tuple[int, int]
#: (name of a statistic submodule, the attention module holding it, its attribute name)
Slot = tuple[str, nn.Module, str]

#: attention type -> name of its global-statistic submodule
_STATISTIC_ATTRIBUTE: dict[type[nn.Module], str] = {
    ChannelAttention: "squeeze",
    ContrastAwareChannelAttention: "contrast",
    SimplifiedChannelAttention: "0",  # an nn.Sequential: its first child is the pool
}


# ----------------------------------------------------------------------------------------------- statistics


def _check_window(window: Window) -> Window:
    if len(window) != 2 or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in window):
        raise ValueError(f"TLC window must be two positive integers (kH, kW), got {window!r}")
    return (window[0], window[1])


def _covers(window: Window, x: torch.Tensor) -> bool:
    return window[0] >= x.shape[-2] and window[1] >= x.shape[-1]


def _promote(x: torch.Tensor) -> torch.Tensor:
    """float32 for the running sums of half-precision inputs (their sums would lose most digits)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def valid_box_mean(x: torch.Tensor, window: Window) -> torch.Tensor:
    """Mean of (N, C, H, W) over every kH x kW window lying wholly inside the map.

    Shape: (N, C, H', W') with H' = H - kH + 1 where kH < H, else 1 (the window is clipped to the map and
    the mean is over the whole of H); the same for W.
    """
    for dim, k in zip((2, 3), window, strict=True):
        n = x.shape[dim]
        if k >= n:
            x = x.mean(dim=dim, keepdim=True)
            continue
        # running sum with a leading 0: sum of x[i : i + k] = s[i + k] - s[i]
        sums = F.pad(x.cumsum(dim=dim), (0, 0, 1, 0) if dim == 2 else (1, 0))
        x = (sums.narrow(dim, k, n - k + 1) - sums.narrow(dim, 0, n - k + 1)) / k
    return x


def replicate_back(out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Replicate-pad the windowed dimensions of :func:`valid_box_mean`'s result back to ``size`` = (H, W).

    Of the missing ``n - n'`` rows (columns), ``floor`` go on the top (left), ``ceil`` on the bottom
    (right). Dimensions of size 1 (window clipped to the map) stay 1, to broadcast.
    """
    missing = [n - m if m != 1 else 0 for n, m in zip(size, out.shape[-2:], strict=True)]
    if not any(missing):
        return out
    pad = (missing[1] // 2, (missing[1] + 1) // 2, missing[0] // 2, (missing[0] + 1) // 2)
    return F.pad(out, pad, mode="replicate")


def local_mean(x: torch.Tensor, window: Window) -> torch.Tensor:
    """TLC form of the global average pooling: the mean of the ``window`` around each position.

    Shapes: (N, C, H, W) -> (N, C, H or 1, W or 1), broadcastable to ``x``, in ``x``'s dtype; exactly
    ``F.adaptive_avg_pool2d(x, 1)`` when the window covers the map.
    """
    if _covers(window, x):
        return F.adaptive_avg_pool2d(x, 1)
    out = valid_box_mean(_promote(x), window)
    return replicate_back(out, (x.shape[-2], x.shape[-1])).to(x.dtype)


def local_contrast(x: torch.Tensor, window: Window, eps: float = CONTRAST_EPS) -> torch.Tensor:
    """TLC form of CCA's contrast: local population std + local mean over the ``window`` around each position.

    std = ``sqrt(max(E_w[x^2] - E_w[x]^2, 0) + eps)``, E_w the local mean (of x minus its per-channel global
    mean, for accuracy). Shapes: (N, C, H, W) -> (N, C, H or 1, W or 1), broadcastable to ``x``, in ``x``'s
    dtype; exactly :func:`deblur.models.cca.channel_contrast` when the window covers the map.
    """
    if _covers(window, x):
        return channel_contrast(x)
    xf = _promote(x)
    shift = xf.mean(dim=(2, 3), keepdim=True)
    centred = xf - shift
    mean = valid_box_mean(centred, window)
    variance = (valid_box_mean(centred * centred, window) - mean * mean).clamp_min(0.0)
    out = (variance + eps).sqrt() + mean + shift
    return replicate_back(out, (x.shape[-2], x.shape[-1])).to(x.dtype)


class _LocalWindow(nn.Module):
    """A parameter-free local statistic over a fixed ``window`` (kH, kW) in pixels of the map it sees."""

    def __init__(self, window: Window) -> None:
        super().__init__()
        self.window = _check_window(tuple(window))

    def extra_repr(self) -> str:
        return f"window={self.window}"


class LocalAvgPool2d(_LocalWindow):
    """Replaces ``nn.AdaptiveAvgPool2d(1)`` in a channel attention: :func:`local_mean` over ``window``.

    Shapes: (N, C, H, W) -> (N, C, H or 1, W or 1) (broadcastable to the input).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_mean(x, self.window)


class LocalChannelContrast(_LocalWindow):
    """Replaces :class:`deblur.models.cca.ChannelContrast`: :func:`local_contrast` over ``window``.

    Shapes: (N, C, H, W) -> (N, C, H or 1, W or 1) (broadcastable to the input).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_contrast(x, self.window)


_GLOBAL_FORMS = {"squeeze": nn.AdaptiveAvgPool2d, "0": nn.AdaptiveAvgPool2d, "contrast": ChannelContrast}
_LOCAL_FORMS = {"squeeze": LocalAvgPool2d, "0": LocalAvgPool2d, "contrast": LocalChannelContrast}


def _global_form(attribute: str) -> nn.Module:
    """A fresh global statistic module, as the attention modules build it."""
    return nn.AdaptiveAvgPool2d(1) if _GLOBAL_FORMS[attribute] is nn.AdaptiveAvgPool2d else ChannelContrast()


# ----------------------------------------------------------------------------------------------- conversion


def check_tlc_sizes(base_size: object, train_size: object) -> None:
    """ValueError naming the key unless ``tlc.base_size``, ``tlc.train_size`` are ints >= 1, base >= train."""
    for key, value in (("base_size", base_size), ("train_size", train_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"tlc.{key} must be a positive integer (pixels), got {value!r}")
    if base_size < train_size:  # type: ignore[operator]
        raise ValueError(
            f"tlc.base_size must be >= tlc.train_size (the local window is the training crop enlarged by "
            f"base_size / train_size), got base_size={base_size}, train_size={train_size}"
        )


def _statistic_slots(net: nn.Module) -> list[Slot]:
    """(name of the statistic submodule, its attention module, attribute) for every channel attention."""
    slots = []
    for name, module in net.named_modules():
        attribute = next((a for t, a in _STATISTIC_ATTRIBUTE.items() if isinstance(module, t)), None)
        if attribute is None:
            continue
        statistic = getattr(module, attribute)
        global_form = _GLOBAL_FORMS[attribute]
        is_global = isinstance(statistic, global_form) and (
            global_form is not nn.AdaptiveAvgPool2d or statistic.output_size in (1, (1, 1))
        )
        if not (is_global or isinstance(statistic, _LOCAL_FORMS[attribute])):
            raise TypeError(
                f"TLC: {name or 'network'}.{attribute} is a {type(statistic).__name__}, expected "
                f"{global_form.__name__} (global) or {_LOCAL_FORMS[attribute].__name__} (local)"
            )
        slots.append((f"{name}.{attribute}" if name else attribute, module, attribute))
    return slots


def _input_channels(net: nn.Module) -> int:
    channels = getattr(net, "in_channels", None)
    if isinstance(channels, int):
        return channels
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"TLC: cannot tell the input channels of {type(net).__name__} (no Conv2d)")
    return conv.in_channels


def _statistic_input_sizes(
    net: nn.Module, slots: list[Slot], size: int, device: torch.device
) -> dict[str, tuple[int, int]]:
    """One forward pass of a (1, C, size, size) input on ``device``; the (H, W) each statistic module sees.

    On the meta device only shapes are computed (parameters and buffers replaced by meta tensors for the
    call); elsewhere a real pass in eval mode without grad. The network's train / eval modes are restored.
    """
    sizes: dict[str, tuple[int, int]] = {}

    def recorder(name: str):  # noqa: ANN202
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            sizes.setdefault(name, (int(args[0].shape[-2]), int(args[0].shape[-1])))

        return hook

    reference = next(chain(net.parameters(), net.buffers()), None)
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    x = torch.zeros(1, _input_channels(net), size, size, device=device, dtype=dtype)
    modes = [(module, module.training) for module in net.modules()]
    hooks = [getattr(m, attr).register_forward_pre_hook(recorder(name)) for name, m, attr in slots]
    try:
        net.eval()
        with torch.no_grad():
            if device.type == "meta":
                tensors = {
                    name: torch.empty_like(t, device="meta")
                    for name, t in chain(net.named_parameters(), net.named_buffers())
                }
                functional_call(net, tensors, (x,), strict=False)
            else:
                net(x)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes:
            module.training = training
    return sizes


def _dry_run(net: nn.Module, slots: list[Slot], size: int) -> dict[str, tuple[int, int]]:
    """:func:`_statistic_input_sizes` on the meta device, or really where an operation has no meta kernel."""
    try:
        sizes = _statistic_input_sizes(net, slots, size, torch.device("meta"))
    except (NotImplementedError, RuntimeError):  # e.g. no meta kernel, or .item() on a meta tensor
        reference = next(chain(net.parameters(), net.buffers()), None)
        device = reference.device if reference is not None else torch.device("cpu")
        sizes = _statistic_input_sizes(net, slots, size, device)
    missed = [name for name, _, _ in slots if name not in sizes]
    if missed:
        raise RuntimeError(f"TLC: the dry run at {size}x{size} did not reach {', '.join(missed)}")
    return sizes


def convert_to_tlc(net: nn.Module, base_size: int = 384, train_size: int = 256) -> nn.Module:
    """Make every channel attention of ``net`` use local statistics (TLC), in place; returns ``net``.

    Args:
        net: a network with :class:`~deblur.models.rcab.ChannelAttention` (RCAB; MSFS-Net, FDDN),
            :class:`~deblur.models.cca.ContrastAwareChannelAttention` (FDDN's FDBs) and / or
            :class:`~deblur.models.nafnet.net.SimplifiedChannelAttention` (NAFNet) modules, found by type.
        base_size: the window at input resolution, in pixels (config key ``tlc.base_size``; paper: 384).
        train_size: the training crop size (``tlc.train_size``; 256 for GoPro training).

    Each statistic's window is its input size at a ``train_size x train_size`` input times
    ``base_size / train_size`` (floor), from a shape-only dry run (module docstring). A network already
    converted is first reverted, so calling again with other sizes re-converts. Convert before
    ``deblur.speed.transforms.prepare_for_inference`` (BatchNorm folding copies the converted network)
    and before ``torch.compile``.

    Raises:
        ValueError: ``tlc.base_size`` / ``tlc.train_size`` not positive integers or base < train; a network
            without channel attention (TLC would change nothing).
    """
    check_tlc_sizes(base_size, train_size)
    slots = _statistic_slots(net)
    if not slots:
        raise ValueError(
            f"TLC needs channel attention (RCAB / CCA) to make local; this network "
            f"({type(net).__name__}) has none: set tlc.enabled=false"
        )
    revert_tlc(net)
    sizes = _dry_run(net, slots, train_size)
    for name, module, attribute in slots:
        height, width = sizes[name]
        window = (height * base_size // train_size, width * base_size // train_size)
        setattr(module, attribute, _LOCAL_FORMS[attribute](window).train(module.training))
    return net


def revert_tlc(net: nn.Module) -> nn.Module:
    """Undo :func:`convert_to_tlc` in place (no-op on an unconverted network); returns ``net``."""
    for _, module, attribute in _statistic_slots(net):
        if isinstance(getattr(module, attribute), _LOCAL_FORMS[attribute]):
            setattr(module, attribute, _global_form(attribute).train(module.training))
    return net


def is_tlc(net: nn.Module) -> bool:
    """Whether any channel attention of ``net`` uses local statistics."""
    return any(isinstance(m, (LocalAvgPool2d, LocalChannelContrast)) for m in net.modules())


def tlc_windows(net: nn.Module) -> dict[str, Window]:
    """{statistic module name (e.g. ``latent.0.body.3.squeeze``): its (kH, kW)} of a converted network."""
    return {
        name: getattr(module, attribute).window
        for name, module, attribute in _statistic_slots(net)
        if isinstance(getattr(module, attribute), _LOCAL_FORMS[attribute])
    }
