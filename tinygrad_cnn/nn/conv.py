"""Convolution and pooling with PyTorch's full argument lists, composed from
:func:`tinygrad_cnn.functional.conv2d`, ``unfold``, ``pad`` and the reductions (no backward here).

Adds to the core ops: ``groups`` and ``padding="same"/"valid"`` for conv2d; ``ceil_mode`` and
``return_indices`` for max pooling; ``ceil_mode``, ``count_include_pad`` and ``divisor_override``
for average pooling; adaptive average and max pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..validation import pair
from . import Module

IntOrPair = int | tuple[int, int]


def conv_padding(op: str, padding: Any, stride: tuple[int, int]) -> tuple[int, int] | str:
    """``padding`` checked: a pair of ints, or the strings ``"same"``/``"valid"``."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        return padding
    return pair(op, "padding", padding, 0)


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
    With ``groups > 1`` each group of channels is convolved separately and the results concatenated.
    """
    s = pair("conv2d", "stride", stride, 1)
    d = pair("conv2d", "dilation", dilation, 1)
    pad = conv_padding("conv2d", padding, s)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
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
    if groups == 1:
        return F.conv2d(input, weight, bias, s, pad, d)
    c_in, c_out = input.shape[1] if input.ndim == 4 else -1, weight.shape[0]
    if input.ndim != 4 or c_in % groups or c_out % groups or weight.shape[1] * groups != c_in:
        raise ValueError(
            f"conv2d: input {input.shape} and weight {weight.shape} do not fit groups={groups} "
            "(need input channels = groups * weight.shape[1], and output channels divisible by groups)"
        )
    gi, go = c_in // groups, c_out // groups
    outs = [
        F.conv2d(
            input[:, g * gi : (g + 1) * gi],
            weight[g * go : (g + 1) * go],
            None if bias is None else bias[g * go : (g + 1) * go],
            s,
            pad,
            d,
        )
        for g in range(groups)
    ]
    return F.concatenate(outs, 1)


# --------------------------------------------------------------------------- pooling


def _pool_geometry(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """kernel, stride, padding, dilation, output size and the extra padding at the end that
    ``ceil_mode`` needs, per axis, after PyTorch's checks."""
    arguments.check_image(op, x)
    k = pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None or stride == [] or stride == () else pair(op, "stride", stride, 1)
    p, d = pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    out, extra = [], []
    for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d):
        span = di * (ki - 1) + 1
        if span > n + 2 * pi:
            raise ValueError(
                f"{op}: kernel {ki} (spanning {span}) is larger than the padded input {n + 2 * pi} ({x.shape})"
            )
        o = (n + 2 * pi - span + (si - 1 if ceil_mode else 0)) // si + 1
        if ceil_mode and (o - 1) * si >= n + pi:  # the last window must start inside the input or its left padding
            o -= 1
        out.append(o)
        extra.append(max(0, (o - 1) * si + span - (n + 2 * pi)))
    return k, s, p, d, (out[0], out[1]), (extra[0], extra[1])


def _windows(x: Tensor, k: Any, s: Any, p: Any, d: Any, extra: tuple[int, int], value: float) -> Tensor:
    """(N, OH, OW, kh, kw, C) windows; ``extra`` rows/columns of ``value`` added at the end first."""
    if extra != (0, 0):
        x = F.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), value)
    return F.unfold(x, k, s, p, d, pad_value=value)


def max_pool2d(
    input: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling as ``torch.nn.functional.max_pool2d``: (N, C, H, W) -> (N, C, OH, OW).

    Padding counts as -inf; the gradient of a window goes to its first maximum in row-major order.
    ``return_indices=True`` also returns, for every output, the flat index ``row * W + col`` of
    that maximum in its (H, W) input plane (int64), as PyTorch.
    """
    x = arguments.tensor_argument("max_pool2d", input)
    k, s, p, d, _, extra = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    windows = _windows(x, k, s, p, d, extra, -np.inf)
    out = F.permute(P.Max.apply(windows, (3, 4), False), 0, 3, 1, 2)  # the first maximum's gradient
    if not return_indices:
        return out
    n, oh, ow, kh, kw, c = windows.shape
    first = windows.array.reshape(n, oh, ow, kh * kw, c).argmax(axis=3)  # (N, OH, OW, C)
    rows = np.arange(oh)[:, None] * s[0] - p[0] + (first // kw).transpose(0, 3, 1, 2) * d[0]
    cols = np.arange(ow)[None, :] * s[1] - p[1] + (first % kw).transpose(0, 3, 1, 2) * d[1]
    return out, Tensor.wrap((rows * x.shape[3] + cols).astype(np.int64))


def _avg_divisors(n: int, k: int, s: int, p: int, o: int, count_include_pad: bool) -> np.ndarray:
    """How many inputs each of the ``o`` windows along one axis averages, as PyTorch counts them."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


def avg_pool2d(
    input: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Average pooling as ``torch.nn.functional.avg_pool2d``: (N, C, H, W) -> (N, C, OH, OW).

    Each window's sum is divided by ``divisor_override`` if given, else by the number of its
    positions inside the zero-padded input (``count_include_pad``) or inside the input itself.
    """
    x = arguments.tensor_argument("avg_pool2d", input)
    k, s, p, d, o, extra = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    sums = F.permute(F.sum(_windows(x, k, s, p, d, extra, 0.0), (3, 4)), 0, 3, 1, 2)
    if divisor_override is not None:
        return sums / float(divisor_override)
    h, w = (_avg_divisors(n, ki, si, pi, oi, count_include_pad) for n, ki, si, pi, oi in zip(x.shape[2:], k, s, p, o))
    return sums * Tensor((1.0 / np.outer(h, w)).astype(x.dtype))


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
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "conv2d",
    "max_pool2d",
]
