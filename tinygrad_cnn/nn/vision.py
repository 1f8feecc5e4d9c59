"""Padding and resizing of images and sequences with PyTorch's conventions: ``pad`` (a flat list of
pads from the last dim backwards; constant, reflect, replicate or circular), ``interpolate``
(nearest, linear, bilinear) and their layers. All are composed from indexing, so their gradients
come from reverse mode: each output entry picks (or mixes) input entries, and the gradient goes
back to the entries it picked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..validation import pair
from . import Module

IntOrPair = int | tuple[int, int]
_MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(mode: str, n: int, before: int, after: int) -> np.ndarray:
    """For each of the n + before + after padded positions, the input position it copies."""
    i = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    period = 2 * (n - 1)  # reflect: mirror at the edges without repeating them
    i = np.abs(i) % period if period else np.zeros_like(i)
    return np.where(i >= n, period - i, i)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """``input`` padded by ``pad = (left, right, top, bottom, ...)``, pairs from the last dim backwards.
    constant: ``value`` (default 0; negative pads crop); reflect: mirrored without the edge;
    replicate: the edge repeated; circular: wrapped around."""
    x = arguments.tensor_argument("pad", input)
    pads = [int(p) for p in pad]
    if len(pads) % 2 or len(pads) // 2 > x.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * {x.ndim}, got {tuple(pad)}")
    if mode not in _MODES:
        raise NotImplementedError(f"pad: mode {mode!r} is not one of {_MODES}")
    pairs = [(pads[2 * k], pads[2 * k + 1]) for k in range(len(pads) // 2)]  # last dim first
    dims = [x.ndim - 1 - k for k in range(len(pairs))]
    if mode == "constant":
        out = x
        for d, (before, after) in zip(dims, pairs):  # crops first: negative pads
            n = out.shape[d]
            start, stop = -min(before, 0), n + min(after, 0)
            if start or stop != n:
                out = F.narrow(out, d, start, max(stop - start, 0))
        widths = [(0, 0)] * x.ndim
        for d, (before, after) in zip(dims, pairs):
            widths[d] = (max(before, 0), max(after, 0))
        return F.pad(out, widths, 0.0 if value is None else value) if any(map(any, widths)) else out
    if value is not None and value != 0:
        raise ValueError(f"pad: a fill value only makes sense with mode 'constant', not {mode!r}")
    out = x
    for d, (before, after) in zip(dims, pairs):
        n = x.shape[d]
        if mode == "reflect" and (before >= n or after >= n):
            raise ValueError(f"pad: reflect padding ({before}, {after}) must be smaller than dim {d}'s size {n}")
        if min(before, after) < 0 or n == 0:
            raise ValueError(f"pad: {mode} padding ({before}, {after}) of dim {d} (size {n}) is not possible")
        out = F.index_select(out, d, _source_index(mode, n, before, after))
    return out


def _output_size(op: str, x: Tensor, size: Any, scale_factor: Any) -> tuple[list[int], list[float]]:
    """Output sizes of the spatial dims (all but N, C) and the input-per-output scale of each."""
    spatial = x.shape[2:]
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    if size is not None:
        out = [int(size)] * len(spatial) if isinstance(size, (int, np.integer)) else [int(s) for s in size]
        if len(out) != len(spatial):
            raise ValueError(f"{op}: size {size} must have {len(spatial)} entries for input of shape {x.shape}")
        return out, [n / o for n, o in zip(spatial, out)]
    factors = [float(scale_factor)] * len(spatial) if not isinstance(scale_factor, Sequence) else list(scale_factor)
    if len(factors) != len(spatial) or min(factors) <= 0:
        raise ValueError(f"{op}: scale_factor {scale_factor} must be positive, one per spatial dim of {x.shape}")
    return [math.floor(n * f) for n, f in zip(spatial, factors)], [1 / f for f in factors]


def _nearest(x: Tensor, dim: int, index: np.ndarray) -> Tensor:
    """x's entries ``index`` along ``dim``. Each entry repeated r times (an integer upscale) is a
    broadcast view copied once, and every k-th entry (an integer downscale) a strided view: their
    backward passes are a sum over the repeats and a strided write, where picking by index would
    scatter-add."""
    n, o = x.shape[dim], len(index)
    if o % n == 0 and np.array_equal(index, np.arange(o) // (o // n)):
        r = o // n
        repeated = x.unsqueeze(dim + 1).expand(*x.shape[: dim + 1], r, *x.shape[dim + 1 :])
        return repeated.reshape(*x.shape[:dim], o, *x.shape[dim + 1 :])
    step = int(index[1] - index[0]) if o > 1 else 1
    if step > 0 and np.array_equal(index, np.arange(o) * step):
        return x[(slice(None),) * dim + (slice(0, step * (o - 1) + 1, step),)]
    return F.index_select(x, dim, index)


def interpolate(
    input: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input, as PyTorch:
    ``nearest`` copies input entry floor(i * scale); ``linear``/``bilinear`` mix the two neighbours
    of the sample point (i + 0.5) * scale - 0.5 (``align_corners=True``: i * (n - 1) / (out - 1))."""
    x = arguments.tensor_argument("interpolate", input)
    if x.ndim < 3:
        raise ValueError(f"interpolate: input must be (N, C, ...spatial), got shape {x.shape}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    linear = {"linear": 3, "bilinear": 4, "trilinear": 5}
    if mode not in ("nearest", *linear):
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, linear, bilinear, trilinear)")
    if mode in linear and x.ndim != linear[mode]:
        raise ValueError(f"interpolate: mode {mode!r} needs a {linear[mode]}-D input, got shape {x.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only has an effect with the linear modes")
    out_sizes, scales = _output_size("interpolate", x, size, scale_factor)
    if recompute_scale_factor:
        scales = [n / o for n, o in zip(x.shape[2:], out_sizes)]
    out = x
    for k, (n, o, scale) in enumerate(zip(x.shape[2:], out_sizes, scales)):
        d = 2 + k
        if mode == "nearest":
            out = _nearest(out, d, np.minimum(np.floor(np.arange(o) * scale).astype(np.int64), n - 1))
            continue
        arguments.require_float("interpolate", x)
        if align_corners:
            src = np.arange(o) * ((n - 1) / (o - 1) if o > 1 else 0.0)
        else:
            src = np.maximum((np.arange(o) + 0.5) * scale - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(np.int64), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        weight = (src - lo).astype(x.dtype).reshape((o,) + (1,) * (x.ndim - 1 - d))
        below = F.index_select(out, d, lo)
        out = below + (F.index_select(out, d, hi) - below) * weight
    return out


def unfold(
    input: Tensor, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0, stride: IntOrPair = 1
) -> Tensor:
    """PyTorch's im2col: (N, C, H, W) -> (N, C * kh * kw, L), L = OH * OW windows, each column one
    window in (c, i, j) order. (:func:`tinygrad_cnn.functional.unfold` gives the windows-first
    layout (N, OH, OW, kh, kw, C) that conv2d uses.)"""
    windows = F.unfold(input, kernel_size, stride, padding, dilation)  # (N, OH, OW, kh, kw, C)
    n, oh, ow, kh, kw, c = windows.shape
    return F.reshape(F.permute(windows, 0, 5, 3, 4, 1, 2), (n, c * kh * kw, oh * ow))


def fold(
    input: Tensor,
    output_size: IntOrPair,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> Tensor:
    """The adjoint of :func:`unfold`: columns (N, C * kh * kw, L) summed back onto an
    (N, C, H, W) image of ``output_size`` (overlapping windows add up)."""
    x = arguments.tensor_argument("fold", input)
    (h, w), (kh, kw) = pair("fold", "output_size", output_size, 1), pair("fold", "kernel_size", kernel_size, 1)
    d, p, s = (
        pair("fold", "dilation", dilation, 1),
        pair("fold", "padding", padding, 0),
        pair("fold", "stride", stride, 1),
    )
    oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    if x.ndim != 3 or x.shape[1] % (kh * kw) or x.shape[2] != oh * ow or oh < 1 or ow < 1:
        raise RuntimeError(
            f"fold: expected input of shape (N, C * {kh} * {kw}, {max(oh, 0) * max(ow, 0)}) for output_size "
            f"{(h, w)}, kernel_size {(kh, kw)}, dilation {d}, padding {p}, stride {s}; got {x.shape}"
        )
    n, c = x.shape[0], x.shape[1] // (kh * kw)
    windows = F.permute(F.reshape(x, (n, c, kh, kw, oh, ow)), 0, 4, 5, 2, 3, 1)
    image = P.Fold.apply(windows, (n, c, h + 2 * p[0], w + 2 * p[1]), (kh, kw), s, d)
    return image[:, :, p[0] : p[0] + h, p[1] : p[1] + w] if any(p) else image


class Upsample(Module):
    """``interpolate`` as a layer."""

    def __init__(
        self, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: bool | None = None
    ) -> None:
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        given = f"size={self.size}" if self.size is not None else f"scale_factor={float(self.scale_factor)}"
        return f"{given}, mode={self.mode!r}"


class _Pad(Module):
    mode = "constant"
    sides = 2  # 2 for the last dim (1d), 4 for the last two (2d)

    def __init__(self, padding: int | Sequence[int], value: float | None = None) -> None:
        self.padding = (
            (int(padding),) * self.sides if isinstance(padding, (int, np.integer)) else tuple(int(p) for p in padding)
        )
        if len(self.padding) != self.sides:
            raise ValueError(f"{type(self).__name__}: padding must be an int or {self.sides} ints, got {padding}")
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


class ZeroPad2d(_Pad):
    sides = 4

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)


class ConstantPad2d(_Pad):
    sides = 4

    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding, value)


class ReflectionPad2d(_Pad):
    mode, sides = "reflect", 4

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class ReplicationPad2d(_Pad):
    mode, sides = "replicate", 4

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class ConstantPad1d(_Pad):
    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding, value)


__all__ = [
    "ConstantPad1d",
    "ConstantPad2d",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "Upsample",
    "ZeroPad2d",
    "fold",
    "interpolate",
    "pad",
    "unfold",
]
