"""Convolution and pooling layers with PyTorch's full argument lists, composed from
:func:`tinygrad_cnn.functional.conv2d`, ``max_pool2d``, ``avg_pool2d``, the reductions and the
primitives (no backward here).

Adds to the core ops: ``groups`` and ``padding="same"/"valid"`` for conv2d; the transposed
convolution (``conv_transpose2d``, ``ConvTranspose2d``); adaptive average and max pooling; the
pooling modules.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..validation import pair, pool_arguments, positive_int, single
from . import Module, _check_device, _float_dtype, _uniform
from .vision import pad

IntOrPair = int | tuple[int, int]
IntOrSingle = int | tuple[int]


def unbatched_image(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` of an (N, C, H, W) input that also takes PyTorch's unbatched (C, H, W): run as a batch
    of one, the batch dim taken off its result (each of them, for a tuple)."""

    @functools.wraps(fn)
    def _unbatched_call(input: Any, *args: Any, **kwargs: Any) -> Any:  # private: the tape names fn, not this
        if not (isinstance(input, Tensor) and input.ndim == 3):
            return fn(input, *args, **kwargs)
        out = fn(input.unsqueeze(0), *args, **kwargs)
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)

    return _unbatched_call


max_pool2d = unbatched_image(F.max_pool2d)
avg_pool2d = unbatched_image(F.avg_pool2d)


def conv_padding(op: str, padding: Any, stride: tuple[int, int]) -> tuple[int, int] | str:
    """``padding`` checked: a pair of ints, or the strings ``"same"``/``"valid"``."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        return padding
    return pair(op, "padding", padding, 0)


@unbatched_image
def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution as ``torch.nn.functional.conv2d``.

    input (N, C_in, H, W), weight (C_out, C_in // groups, kh, kw), bias (C_out,) -> (N, C_out, OH, OW).
    ``padding="same"`` pads ``dilation * (k - 1)`` in total per axis, the odd one at the end, as PyTorch.
    With ``groups`` G > 1, input channels g*C_in/G ... (g+1)*C_in/G - 1 feed only output channels
    g*C_out/G ... (g+1)*C_out/G - 1 (depthwise: groups = C_in), all groups in one primitive.
    """
    s = pair("conv2d", "stride", stride, 1)
    d = pair("conv2d", "dilation", dilation, 1)
    pad = conv_padding("conv2d", padding, s)
    if isinstance(pad, str):
        kh, kw = weight.shape[2:] if weight.ndim == 4 else (1, 1)
        if pad == "valid":
            pad = (0, 0)
        else:
            total = (d[0] * (kh - 1), d[1] * (kw - 1))
            if total[0] % 2 or total[1] % 2:  # asymmetric: the extra row/column goes at the end
                widths = (
                    (0, 0),
                    (0, 0),
                    (total[0] // 2, total[0] - total[0] // 2),
                    (total[1] // 2, total[1] - total[1] // 2),
                )
                input, pad = F.pad(input, widths), (0, 0)
            else:
                pad = (total[0] // 2, total[1] // 2)
    return F.conv2d(input, weight, bias, s, pad, d, groups)


def check_conv_layer(layer: str, in_channels: Any, out_channels: Any, groups: Any, device: Any) -> None:
    """A convolution layer's channel counts and groups (positive ints, the channels divisible by
    the groups) and device (the CPU), or an error naming ``layer``; when it is built, not at first use."""
    positive_int(layer, "in_channels", in_channels)
    positive_int(layer, "out_channels", out_channels)
    positive_int(layer, "groups", groups)
    _check_device(layer, device)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )


def conv_extra_repr(layer: Any) -> str:
    """PyTorch's ``extra_repr`` of a convolution layer (``Conv2d``, ``ConvTranspose2d``): channels,
    kernel and stride always, the other arguments only where they differ from their defaults."""
    zeros, ones = (0,) * len(layer.kernel_size), (1,) * len(layer.kernel_size)
    s = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    if layer.padding != zeros:
        s += f", padding={layer.padding}"
    if layer.dilation != ones:
        s += f", dilation={layer.dilation}"
    if getattr(layer, "output_padding", zeros) != zeros:
        s += f", output_padding={layer.output_padding}"
    if layer.groups != 1:
        s += f", groups={layer.groups}"
    s += "" if layer.bias is not None else ", bias=False"
    return s + (f", padding_mode={layer.padding_mode}" if layer.padding_mode != "zeros" else "")


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(layer: str, padding_mode: Any) -> str:
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{layer}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    return str(padding_mode)


def mode_padding(padding: tuple[int, ...] | str, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
    """The flat ``F.pad`` list (last dim first) by which a convolution layer with a ``padding_mode``
    other than zeros pads its input before convolving without padding, as PyTorch: ``"same"`` puts
    the odd one of ``dilation * (k - 1)`` at the end."""
    if isinstance(padding, str):
        totals = [d * (k - 1) if padding == "same" else 0 for k, d in zip(kernel, dilation)]
        pads = [(t // 2, t - t // 2) for t in totals]
    else:
        pads = [(p, p) for p in padding]
    return [v for before_after in reversed(pads) for v in before_after]


# --------------------------------------------------------------------------- transposed convolution


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """2-D transposed convolution as ``torch.nn.functional.conv_transpose2d`` (the gradient of
    :func:`conv2d` with respect to its input, sometimes called "deconvolution").

    input (N, C_in, H, W) or unbatched (C_in, H, W), weight (C_in, C_out // groups, kh, kw),
    bias (C_out,) -> (N, C_out, OH, OW) (or (C_out, OH, OW)), with
    OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + output_padding[0] + 1, likewise OW:

        y[n, o, i*sh + p*dh - ph, j*sw + q*dw - pw] += x[n, c, i, j] * weight[c, o, p, q]   (+ bias[o])

    One primitive, :class:`~tinygrad_cnn.primitives.ConvTranspose`: conv2d's input gradient (the
    products of x's pixels with the weight added onto the image one kernel offset at a time, the
    padding left out), its gradient conv2d's forward and weight gradient, to any order.
    """
    op = "conv_transpose2d"
    x, w = arguments.tensor_argument(op, input), arguments.tensor_argument(op, weight, "weight")
    if x.ndim == 3:  # unbatched, as PyTorch accepts
        out = conv_transpose2d(F.unsqueeze(x, 0), w, bias, stride, padding, output_padding, groups, dilation)
        return F.squeeze(out, 0)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {x.shape}")
    arguments.require_float(op, x)
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (C_in, C_out // groups, kh, kw), got shape {w.shape}")
    groups = positive_int(op, "groups", groups)
    c_in, c_group, kh, kw = w.shape
    if x.shape[1] != c_in:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight {w.shape} expects {c_in} "
            "(its first dimension)"
        )
    if c_in % groups:
        raise ValueError(f"{op}: input channels {c_in} (weight {w.shape}) are not divisible by groups={groups}")
    c_out = c_group * groups
    bias = arguments.conv_weight_and_bias(op, x, w, bias, c_out)
    if kh < 1 or kw < 1 or c_group < 1:
        raise ValueError(f"{op}: weight {w.shape} is empty; kernels must be at least 1x1 with an output channel")
    s, p, d = pair(op, "stride", stride, 1), pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1)
    extra = pair(op, "output_padding", output_padding, 0)
    if any(e >= si and e >= di for e, si, di in zip(extra, s, d)):
        raise ValueError(
            f"{op}: output_padding {extra} must be smaller than either stride {s} or dilation {d} (in each dimension)"
        )
    h, wd = x.shape[2:]
    full = ((h - 1) * s[0] + d[0] * (kh - 1) + 1, (wd - 1) * s[1] + d[1] * (kw - 1) + 1)
    size = (full[0] - 2 * p[0] + extra[0], full[1] - 2 * p[1] + extra[1])
    if min(size) < 1:
        raise ValueError(
            f"{op}: input {x.shape} with kernel {(kh, kw)}, stride {s}, padding {p}, dilation {d} and "
            f"output_padding {extra} gives output size {size}, which is too small"
        )
    # conv2d's weight layout (kh, kw, C_out // groups, C_in): the conv2d whose input gradient this is
    w_conv = P.Permute.apply(w, (2, 3, 1, 0))
    spare = (extra[0] // s[0], extra[1] // s[1])
    if spare != (0, 0):  # output_padding of a stride or more (a larger dilation): windows of zeros reach the end rows
        x = P.Pad.apply(x, ((0, 0), (0, 0), (0, spare[0]), (0, spare[1])), 0.0)
    return P.ConvTranspose.apply(x, w_conv, bias, size, s, d, p, groups)


def transposed_output_padding(
    op: str,
    input_shape: tuple[int, ...],
    output_size: Sequence[int],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """The ``output_padding`` that makes a transposed convolution of an input of ``input_shape``
    ((N, C, *spatial) or (C, *spatial)) produce ``output_size`` (the spatial sizes, or the whole
    output shape), as ``ConvTranspose2d(...)(x, output_size)`` in PyTorch: each size must lie between
    the smallest output, (H - 1) * sh - 2 * ph + dh * (kh - 1) + 1, and that plus ``stride - 1``."""
    try:
        sizes = [operator.index(v) for v in output_size]
    except (TypeError, ValueError):
        raise TypeError(f"{op}: output_size must be a sequence of ints, got {output_size!r}") from None
    nd = len(kernel)
    if len(sizes) == len(input_shape):  # the whole shape: keep the spatial sizes
        sizes = sizes[-nd:]
    if len(sizes) != nd:
        raise ValueError(
            f"{op}: for {len(input_shape)}-D input, output_size must have {nd} or {len(input_shape)} elements "
            f"(got {len(sizes)}: {output_size!r})"
        )
    spatial = input_shape[-nd:]
    geometry = zip(spatial, kernel, stride, padding, dilation)
    smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, k, s, p, d in geometry]
    largest = [m + s - 1 for m, s in zip(smallest, stride)]
    if any(not lo <= v <= hi for v, lo, hi in zip(sizes, smallest, largest)):
        raise ValueError(
            f"{op}: requested an output size of {tuple(sizes)}, but valid sizes range from {tuple(smallest)} "
            f"to {tuple(largest)} (for an input of spatial size {tuple(spatial)})"
        )
    return tuple(v - m for v, m in zip(sizes, smallest))


class ConvTranspose2d(Module):
    """2-D transposed convolution.   x: (N, in_channels, H, W) or (in_channels, H, W) ->
    (N, out_channels, OH, OW), OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1
    (see :func:`conv_transpose2d`); ``forward(x, output_size)`` picks ``output_padding`` to reach
    ``output_size`` (OH, OW), as PyTorch.

    weight (in_channels, out_channels // groups, kh, kw) and bias (out_channels,) start uniform in
    ±1/sqrt(out_channels // groups * kh * kw), PyTorch's default (its fan-in is computed from
    the weight's second dimension).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrPair = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        op = "ConvTranspose2d"
        check_conv_layer(op, in_channels, out_channels, groups, device)
        if padding_mode != "zeros":
            raise ValueError(f"{op}: only padding_mode='zeros' is supported (as in PyTorch), got {padding_mode!r}")
        dt = _float_dtype(op, dtype)
        kh, kw = pair(op, "kernel_size", kernel_size, 1)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding = pair(op, "stride", stride, 1), pair(op, "padding", padding, 0)
        self.output_padding = pair(op, "output_padding", output_padding, 0)
        self.dilation = pair(op, "dilation", dilation, 1)
        self.groups, self.padding_mode = groups, padding_mode
        bound = 1 / math.sqrt(out_channels // groups * kh * kw)
        self.weight = _uniform((in_channels, out_channels // groups, kh, kw), bound, dt)
        self.bias = _uniform((out_channels,), bound, dt) if bias else None

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        x = arguments.tensor_argument("ConvTranspose2d", input)
        extra = self.output_padding
        if output_size is not None:
            oh, ow = transposed_output_padding(
                "ConvTranspose2d", x.shape, output_size, self.kernel_size, self.stride, self.padding, self.dilation
            )
            extra = (oh, ow)
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, extra, self.groups, self.dilation)

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


# --------------------------------------------------------------------------- 1-D convolutions


def as_image(op: str, x: Tensor) -> Tensor:
    """A signal (N, C, L) or unbatched (C, L) seen as an image one row high, (N, C, 1, L) or
    (C, 1, L), for the 2-D op that computes the 1-D one (:func:`as_signal` undoes it)."""
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: input must be 2-D (C, L) or 3-D (N, C, L), got shape {x.shape}")
    arguments.require_float(op, x)
    return F.unsqueeze(x, -2)


def as_signal(out: Any) -> Any:
    """The 2-D op's (…, 1, L) result (or each of a tuple of them) as a signal again."""
    return tuple(F.squeeze(o, -2) for o in out) if isinstance(out, tuple) else F.squeeze(out, -2)


def check_span(op: str, x: Tensor, kernel: int, padding: int, dilation: int) -> None:
    """A kernel (dilated) no longer than the padded signal, or an error naming ``op``."""
    n, span = x.shape[-1] + 2 * padding, dilation * (kernel - 1) + 1
    if span > n:
        dilated = f" (dilated to {span})" if dilation > 1 else ""
        raise ValueError(
            f"{op}: kernel size {kernel}{dilated} is larger than the padded input length {n} "
            f"(input shape {x.shape}, padding {padding})"
        )


def conv1d_padding(op: str, padding: Any, stride: int) -> int | str:
    """A 1-D convolution's ``padding`` checked: an int (or a sequence of one), ``"same"`` or ``"valid"``."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, 'same' or 'valid', got {padding!r}")
        if padding == "same" and stride != 1:
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        return padding
    return single(op, "padding", padding, 0)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSingle = 1,
    padding: IntOrSingle | str = 0,
    dilation: IntOrSingle = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution as ``torch.nn.functional.conv1d``.

    input (N, C_in, L) or unbatched (C_in, L), weight (C_out, C_in // groups, k), bias (C_out,) ->
    (N, C_out, OL), OL = (L + 2 * padding - dilation * (k - 1) - 1) // stride + 1; ``padding`` may
    be ``"same"`` or ``"valid"``. Computed as :func:`conv2d` of the signal seen as an image one row
    high and the kernel as a 1 x k one, so the gradients are conv2d's.
    """
    op = "conv1d"
    x, w = arguments.tensor_argument(op, input), arguments.tensor_argument(op, weight, "weight")
    image = as_image(op, x)
    if w.ndim != 3:
        raise ValueError(f"{op}: weight must be 3-D (C_out, C_in // groups, k), got shape {w.shape}")
    s, d = single(op, "stride", stride, 1), single(op, "dilation", dilation, 1)
    groups = positive_int(op, "groups", groups)
    c_out, c_group, k = w.shape
    if x.shape[-2] != c_group * groups or c_out % groups:
        raise ValueError(
            f"{op}: input {x.shape} and weight {w.shape} do not fit groups={groups} (need input channels = "
            "groups * weight.shape[1], and output channels divisible by groups)"
        )
    bias = arguments.conv_weight_and_bias(op, x, w, bias, c_out)
    if k < 1:
        raise ValueError(f"{op}: weight {w.shape} has an empty kernel; kernels must be at least 1 long")
    p = conv1d_padding(op, padding, s)
    if p != "same":
        check_span(op, x, k, 0 if p == "valid" else int(p), d)
    image_padding = p if isinstance(p, str) else (0, p)
    return as_signal(conv2d(image, F.unsqueeze(w, 2), bias, (1, s), image_padding, (1, d), groups))


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSingle = 1,
    padding: IntOrSingle = 0,
    output_padding: IntOrSingle = 0,
    groups: int = 1,
    dilation: IntOrSingle = 1,
) -> Tensor:
    """1-D transposed convolution as ``torch.nn.functional.conv_transpose1d`` (the gradient of
    :func:`conv1d` with respect to its input).

    input (N, C_in, L) or unbatched (C_in, L), weight (C_in, C_out // groups, k), bias (C_out,) ->
    (N, C_out, OL), OL = (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1.
    Computed as :func:`conv_transpose2d` one row high.
    """
    op = "conv_transpose1d"
    x, w = arguments.tensor_argument(op, input), arguments.tensor_argument(op, weight, "weight")
    image = as_image(op, x)
    if w.ndim != 3:
        raise ValueError(f"{op}: weight must be 3-D (C_in, C_out // groups, k), got shape {w.shape}")
    s, p, d = single(op, "stride", stride, 1), single(op, "padding", padding, 0), single(op, "dilation", dilation, 1)
    extra = single(op, "output_padding", output_padding, 0)
    if extra >= s and extra >= d:
        raise ValueError(f"{op}: output_padding {extra} must be smaller than either stride {s} or dilation {d}")
    if x.shape[-2] != w.shape[0]:
        raise ValueError(
            f"{op}: input has {x.shape[-2]} channels (shape {x.shape}) but weight {w.shape} expects {w.shape[0]} "
            "(its first dimension)"
        )
    size = (x.shape[-1] - 1) * s - 2 * p + d * (w.shape[2] - 1) + extra + 1
    if w.shape[2] >= 1 and size < 1:
        raise ValueError(
            f"{op}: input {x.shape} with kernel {w.shape[2]}, stride {s}, padding {p}, dilation {d} and "
            f"output_padding {extra} gives output length {size}, which is too small"
        )
    out = conv_transpose2d(image, F.unsqueeze(w, 2), bias, (1, s), (0, p), (0, extra), groups, (1, d))
    return as_signal(out)


class Conv1d(Module):
    """1-D convolution.   x: (N, in_channels, L) or (in_channels, L) -> (N, out_channels, OL)
    (see :func:`conv1d`).

    weight (out_channels, in_channels // groups, k) and bias (out_channels,) start uniform in
    ±1/sqrt(in_channels // groups * k), PyTorch's default. ``padding`` is an int, ``"valid"`` or
    ``"same"``; ``padding_mode`` ``"reflect"``, ``"replicate"`` or ``"circular"`` pads the input
    that way (``F.pad``) before a convolution without padding, as PyTorch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSingle,
        stride: IntOrSingle = 1,
        padding: IntOrSingle | str = 0,
        dilation: IntOrSingle = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        op = "Conv1d"
        check_conv_layer(op, in_channels, out_channels, groups, device)
        self.padding_mode = check_padding_mode(op, padding_mode)
        dt = _float_dtype(op, dtype)
        k, self.stride, self.dilation = (
            single(op, "kernel_size", kernel_size, 1),
            (single(op, "stride", stride, 1),),
            (single(op, "dilation", dilation, 1),),
        )
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (k,)
        p = conv1d_padding(op, padding, self.stride[0])
        self.padding: tuple[int] | str = p if isinstance(p, str) else (p,)
        self.groups = groups
        bound = 1 / math.sqrt(in_channels // groups * k)
        self.weight = _uniform((out_channels, in_channels // groups, k), bound, dt)
        self.bias = _uniform((out_channels,), bound, dt) if bias else None

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = pad(input, mode_padding(self.padding, self.kernel_size, self.dilation), self.padding_mode)
        return conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


class ConvTranspose1d(Module):
    """1-D transposed convolution.   x: (N, in_channels, L) or (in_channels, L) ->
    (N, out_channels, OL) (see :func:`conv_transpose1d`); ``forward(x, output_size)`` picks
    ``output_padding`` to reach ``output_size``, as PyTorch.

    weight (in_channels, out_channels // groups, k) and bias (out_channels,) start uniform in
    ±1/sqrt(out_channels // groups * k), PyTorch's default.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSingle,
        stride: IntOrSingle = 1,
        padding: IntOrSingle = 0,
        output_padding: IntOrSingle = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrSingle = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        op = "ConvTranspose1d"
        check_conv_layer(op, in_channels, out_channels, groups, device)
        if padding_mode != "zeros":
            raise ValueError(f"{op}: only padding_mode='zeros' is supported (as in PyTorch), got {padding_mode!r}")
        dt = _float_dtype(op, dtype)
        k, self.stride, self.dilation = (
            single(op, "kernel_size", kernel_size, 1),
            (single(op, "stride", stride, 1),),
            (single(op, "dilation", dilation, 1),),
        )
        self.padding = (single(op, "padding", padding, 0),)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (k,)
        self.output_padding = (single(op, "output_padding", output_padding, 0),)
        self.groups, self.padding_mode = groups, padding_mode
        bound = 1 / math.sqrt(out_channels // groups * k)
        self.weight = _uniform((in_channels, out_channels // groups, k), bound, dt)
        self.bias = _uniform((out_channels,), bound, dt) if bias else None

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        x = arguments.tensor_argument("ConvTranspose1d", input)
        extra = self.output_padding
        if output_size is not None:
            (e,) = transposed_output_padding(
                "ConvTranspose1d", x.shape, output_size, self.kernel_size, self.stride, self.padding, self.dilation
            )
            extra = (e,)
        return conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, extra, self.groups, self.dilation)

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


# --------------------------------------------------------------------------- pooling


def _adaptive_bounds(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows along one axis: [floor(i*n/o), ceil((i+1)*n/o)) for i < o."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _output_size(op: str, x: Tensor, output_size: Any) -> tuple[int, int]:
    arguments.check_image(op, x)
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    out = tuple(x.shape[2 + i] if v is None else v for i, v in enumerate(size))
    if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in out):
        raise ValueError(f"{op}: output_size must hold positive ints (or None), got {output_size!r}")
    return int(out[0]), int(out[1])


@unbatched_image
def adaptive_avg_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """(N, C, H, W) -> (N, C, *output_size): the mean over PyTorch's adaptive windows.

    Computed as ``A_h @ x @ A_w.T`` with constant averaging matrices (two matrix products), so any
    sizes work and the gradient follows from matmul's.
    """
    x = arguments.tensor_argument("adaptive_avg_pool2d", input)
    oh, ow = _output_size("adaptive_avg_pool2d", x, output_size)
    h, w = x.shape[2:]
    if (oh, ow) == (1, 1):
        return F.mean(x, (2, 3), True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))

    def averaging(n: int, o: int) -> Tensor:
        start, end = _adaptive_bounds(n, o)
        j = np.arange(n)
        inside = (j >= start[:, None]) & (j < end[:, None])
        return Tensor((inside / (end - start)[:, None]).astype(x.dtype))

    return F.matmul(F.matmul(averaging(h, oh), x), averaging(w, ow).T)


@unbatched_image
def adaptive_max_pool2d(
    input: Tensor, output_size: int | tuple[int | None, int | None], return_indices: bool = False
) -> Any:
    """(N, C, H, W) -> (N, C, *output_size): the maximum over PyTorch's adaptive windows
    (with ``return_indices``, also the flat ``row * W + col`` index of each maximum)."""
    x = arguments.tensor_argument("adaptive_max_pool2d", input)
    oh, ow = _output_size("adaptive_max_pool2d", x, output_size)
    h, w = x.shape[2:]
    if h % oh == 0 and w % ow == 0:
        return max_pool2d(x, (h // oh, w // ow), return_indices=return_indices)
    hs, he = _adaptive_bounds(h, oh)
    ws, we = _adaptive_bounds(w, ow)
    cells = [P.Max.apply(x[:, :, hs[i] : he[i], ws[j] : we[j]], (2, 3), False) for i in range(oh) for j in range(ow)]
    out = F.reshape(F.stack(cells, 2), x.shape[:2] + (oh, ow))
    if not return_indices:
        return out
    index = np.empty(out.shape, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            block = x.array[:, :, hs[i] : he[i], ws[j] : we[j]]
            flat = block.reshape(block.shape[:2] + (-1,)).argmax(axis=2)
            bw = we[j] - ws[j]
            index[:, :, i, j] = (hs[i] + flat // bw) * w + ws[j] + flat % bw
    return out, Tensor.wrap(index)


class MaxPool2d(Module):
    """Max pooling; stride defaults to kernel_size (see :func:`max_pool2d`)."""

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        pool_arguments("MaxPool2d", kernel_size, stride, padding, dilation)  # errors when built, not at first use
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        return max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """Average pooling; stride defaults to kernel_size (see :func:`avg_pool2d`)."""

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        pool_arguments("AvgPool2d", kernel_size, stride, padding, 1)
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size), e.g. ``AdaptiveAvgPool2d(1)`` for global average pooling."""

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size) by maxima over adaptive windows."""

    def __init__(self, output_size: int | tuple[int | None, int | None], return_indices: bool = False) -> None:
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x: Tensor) -> Any:
        return adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "check_conv_layer",
    "conv2d",
    "conv_extra_repr",
    "conv_transpose2d",
    "max_pool2d",
]
