"""Convolution and pooling layers with PyTorch's full argument lists, composed from
:func:`tinygrad_cnn.functional.conv2d`, ``max_pool2d``, ``avg_pool2d`` and the reductions (no backward
here).

Adds to the core ops: ``groups`` and ``padding="same"/"valid"`` for conv2d; adaptive average and max
pooling; the pooling modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..functional import avg_pool2d, max_pool2d
from ..validation import pair, pool_arguments
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
    "MaxPool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "conv2d",
    "max_pool2d",
]
