"""1-D pooling and power-average (Lp) pooling with PyTorch's arguments, composed from the 2-D pools
of :mod:`tinygrad_cnn.nn.conv`: a signal (N, C, L) or (C, L) is pooled as an image one row high
(N, C, 1, L), with 1 x k windows, so values, ``ceil_mode``, padding, indices and gradients are the
2-D pools' (no backward here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .._tensor import Tensor
from ..validation import pair, pool_arguments, single
from . import Module
from .conv import adaptive_avg_pool2d, adaptive_max_pool2d, as_image, as_signal, avg_pool2d, check_span, max_pool2d

IntOrSingle = int | tuple[int]
IntOrPair = int | tuple[int, int]


def _pool1d_arguments(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[int, int, int, int]:
    """A 1-D pool's kernel, stride (the kernel's when None or empty), padding and dilation, checked
    against each other (padding at most half the kernel) and the input's length."""
    k = single(op, "kernel_size", kernel_size, 1)
    default_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    s = k if default_stride else single(op, "stride", stride, 1)
    p, d = single(op, "padding", padding, 0), single(op, "dilation", dilation, 1)
    if p > k // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    check_span(op, x, k, p, d)
    return k, s, p, d


def max_pool1d(
    input: Tensor,
    kernel_size: IntOrSingle,
    stride: IntOrSingle | None = None,
    padding: IntOrSingle = 0,
    dilation: IntOrSingle = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling as ``torch.nn.functional.max_pool1d``: (N, C, L) or (C, L) -> (N, C, OL), stride
    defaulting to kernel_size. Padding counts as -inf; the gradient of a window goes to its first
    maximum; ``return_indices=True`` also returns each maximum's position along L (int64)."""
    x = arguments.tensor_argument("max_pool1d", input)
    image = as_image("max_pool1d", x)
    k, s, p, d = _pool1d_arguments("max_pool1d", x, kernel_size, stride, padding, dilation)
    return as_signal(max_pool2d(image, (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices))


def avg_pool1d(
    input: Tensor,
    kernel_size: IntOrSingle,
    stride: IntOrSingle | None = None,
    padding: IntOrSingle = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Average pooling as ``torch.nn.functional.avg_pool1d``: (N, C, L) or (C, L) -> (N, C, OL);
    each window's sum divided by its positions inside the zero-padded input (``count_include_pad``)
    or inside the input itself."""
    x = arguments.tensor_argument("avg_pool1d", input)
    image = as_image("avg_pool1d", x)
    k, s, p, _ = _pool1d_arguments("avg_pool1d", x, kernel_size, stride, padding, 1)
    return as_signal(avg_pool2d(image, (1, k), (1, s), (0, p), ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input: Tensor, output_size: IntOrSingle) -> Tensor:
    """(N, C, L) or (C, L) -> (N, C, output_size): the mean over PyTorch's adaptive windows
    [floor(i * L / O), ceil((i + 1) * L / O))."""
    x = arguments.tensor_argument("adaptive_avg_pool1d", input)
    image = as_image("adaptive_avg_pool1d", x)
    return as_signal(adaptive_avg_pool2d(image, (1, single("adaptive_avg_pool1d", "output_size", output_size, 1))))


def adaptive_max_pool1d(input: Tensor, output_size: IntOrSingle, return_indices: bool = False) -> Any:
    """(N, C, L) or (C, L) -> (N, C, output_size): the maximum over PyTorch's adaptive windows (with
    ``return_indices``, also each maximum's position along L)."""
    x = arguments.tensor_argument("adaptive_max_pool1d", input)
    image = as_image("adaptive_max_pool1d", x)
    size = single("adaptive_max_pool1d", "output_size", output_size, 1)
    return as_signal(adaptive_max_pool2d(image, (1, size), return_indices))


def _lp_pool(
    op: str, pool_max: Any, pool_avg: Any, x: Tensor, norm_type: float, kernel: Any, stride: Any, ceil_mode: bool
) -> Tensor:
    """PyTorch's Lp pooling: (sum over the window of x ** p) ** (1 / p), computed as its
    ``avg_pool(x ** p) * window size``; p = inf is max-pooling of |x|."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: norm_type must be a number, got {norm_type!r}")
    if norm_type == math.inf:
        return pool_max(F.abs(x), kernel, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -pool_max(-F.abs(x), kernel, stride, 0, 1, ceil_mode)
    if norm_type == 0:
        raise ValueError(f"{op}: norm_type must not be 0 (the result is the window sum of x ** 0 to the power 1/0)")
    out = pool_avg(x**norm_type, kernel, stride, 0, ceil_mode)
    size = math.prod(pair(op, "kernel_size", kernel, 1)) if op == "lp_pool2d" else single(op, "kernel_size", kernel, 1)
    # sign(out) * relu(|out|) is out itself; its gradient is 0 where out is 0, as PyTorch's
    return (F.sign(out) * F.relu(F.abs(out)) * float(size)) ** (1.0 / norm_type)


def lp_pool1d(
    input: Tensor,
    norm_type: float,
    kernel_size: IntOrSingle,
    stride: IntOrSingle | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Power-average pooling as ``torch.nn.functional.lp_pool1d``: (N, C, L) or (C, L) -> (N, C, OL),
    each output (sum of x ** norm_type over its window) ** (1 / norm_type); no padding."""
    x = arguments.tensor_argument("lp_pool1d", input)
    as_image("lp_pool1d", x)
    _pool1d_arguments("lp_pool1d", x, kernel_size, stride, 0, 1)
    return _lp_pool("lp_pool1d", max_pool1d, avg_pool1d, x, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: Tensor, norm_type: float, kernel_size: IntOrPair, stride: IntOrPair | None = None, ceil_mode: bool = False
) -> Tensor:
    """Power-average pooling as ``torch.nn.functional.lp_pool2d``: (N, C, H, W) or (C, H, W) ->
    (N, C, OH, OW), each output (sum of x ** norm_type over its window) ** (1 / norm_type)."""
    x = arguments.tensor_argument("lp_pool2d", input)
    if x.ndim not in (3, 4):
        raise ValueError(f"lp_pool2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {x.shape}")
    k, _, _, _ = pool_arguments("lp_pool2d", kernel_size, stride, 0, 1)
    if k[0] > x.shape[-2] or k[1] > x.shape[-1]:
        raise ValueError(f"lp_pool2d: kernel size {k} is larger than the input {x.shape[-2:]} (input shape {x.shape})")
    return _lp_pool("lp_pool2d", max_pool2d, avg_pool2d, x, norm_type, kernel_size, stride, ceil_mode)


class MaxPool1d(Module):
    """Max pooling of signals; stride defaults to kernel_size (see :func:`max_pool1d`)."""

    def __init__(
        self,
        kernel_size: IntOrSingle,
        stride: IntOrSingle | None = None,
        padding: IntOrSingle = 0,
        dilation: IntOrSingle = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        for name, value, least in (("kernel_size", kernel_size, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
            single("MaxPool1d", name, value, least)  # errors when built, not at first use
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Any:
        return max_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool1d(Module):
    """Average pooling of signals; stride defaults to kernel_size (see :func:`avg_pool1d`)."""

    def __init__(
        self,
        kernel_size: IntOrSingle,
        stride: IntOrSingle | None = None,
        padding: IntOrSingle = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        k = single("AvgPool1d", "kernel_size", kernel_size, 1)
        self.kernel_size = (k,)
        self.stride = (k if stride is None else single("AvgPool1d", "stride", stride, 1),)
        self.padding = (single("AvgPool1d", "padding", padding, 0),)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(Module):
    """(N, C, L) or (C, L) -> (N, C, output_size) by means over adaptive windows."""

    def __init__(self, output_size: IntOrSingle) -> None:
        single("AdaptiveAvgPool1d", "output_size", output_size, 1)
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(Module):
    """(N, C, L) or (C, L) -> (N, C, output_size) by maxima over adaptive windows."""

    def __init__(self, output_size: IntOrSingle, return_indices: bool = False) -> None:
        single("AdaptiveMaxPool1d", "output_size", output_size, 1)
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor) -> Any:
        return adaptive_max_pool1d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _LPPool(Module):
    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> None:
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def extra_repr(self) -> str:
        return (
            f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"ceil_mode={self.ceil_mode}"
        )


class LPPool1d(_LPPool):
    """Power-average pooling of signals (see :func:`lp_pool1d`)."""

    def __init__(
        self, norm_type: float, kernel_size: IntOrSingle, stride: IntOrSingle | None = None, ceil_mode: bool = False
    ) -> None:
        super().__init__(norm_type, kernel_size, stride, ceil_mode)

    def forward(self, input: Tensor) -> Tensor:
        return lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPool):
    """Power-average pooling of images (see :func:`lp_pool2d`)."""

    def __init__(
        self, norm_type: float, kernel_size: IntOrPair, stride: IntOrPair | None = None, ceil_mode: bool = False
    ) -> None:
        super().__init__(norm_type, kernel_size, stride, ceil_mode)

    def forward(self, input: Tensor) -> Tensor:
        return lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveMaxPool1d",
    "AvgPool1d",
    "LPPool1d",
    "LPPool2d",
    "MaxPool1d",
    "adaptive_avg_pool1d",
    "adaptive_max_pool1d",
    "avg_pool1d",
    "lp_pool1d",
    "lp_pool2d",
    "max_pool1d",
]
