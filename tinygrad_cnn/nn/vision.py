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
from ..validation import pair, positive_int
from . import Module

IntOrPair = int | tuple[int, int]
_MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(mode: str, n: int, before: int, after: int) -> np.ndarray:
    """For each of the n + before + after padded positions, the input position it copies."""
    i = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":  # a negative pad crops first; the positive ones wrap around what is left, as PyTorch
        start, kept = max(-before, 0), n - max(-before, 0) - max(-after, 0)
        return start + np.arange(-max(before, 0), kept + max(after, 0)) % kept
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
            if stop < start:
                raise ValueError(f"pad: negative padding ({before}, {after}) crops more than dim {d}'s size {n}")
            if start or stop != n:
                out = F.narrow(out, d, start, stop - start)
        widths = [(0, 0)] * x.ndim
        for d, (before, after) in zip(dims, pairs):
            widths[d] = (max(before, 0), max(after, 0))
        return F.pad(out, widths, 0.0 if value is None else value) if any(map(any, widths)) else out
    if value is not None and value != 0:
        raise ValueError(f"pad: a fill value only makes sense with mode 'constant', not {mode!r}")
    if (
        x.ndim - len(pairs) not in (1, 2) or len(pairs) > 3
    ):  # PyTorch's rule: the spatial dims of (N, C, ...) or (C, ...)
        raise NotImplementedError(
            f"pad: {mode} padding of the last {len(pairs)} dim(s) needs a {len(pairs) + 1}-D or {len(pairs) + 2}-D "
            f"input, got shape {x.shape} (padding {tuple(pads)})"
        )
    out = x
    for d, (before, after) in zip(dims, pairs):
        n = x.shape[d]
        if mode == "reflect" and (before >= n or after >= n):
            raise ValueError(f"pad: reflect padding ({before}, {after}) must be smaller than dim {d}'s size {n}")
        kept = n + min(before, 0) + min(after, 0)  # circular crops first, the others pad first
        if n == 0 or (kept if mode == "circular" else n + before + after) < 1:
            raise ValueError(f"pad: {mode} padding ({before}, {after}) of dim {d} (size {n}) leaves nothing")
        if mode == "circular" and max(before, after) > kept:
            raise ValueError(
                f"pad: circular padding ({before}, {after}) of dim {d} (size {n}) wraps around more than once"
            )
        out = F.index_select(out, d, _source_index(mode, n, before, after))  # a negative pad crops
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
    layout (N, OH, OW, kh, kw, C) that conv2d uses.) An unbatched (C, H, W) gives (C * kh * kw, L)."""
    x = arguments.tensor_argument("unfold", input)
    if x.ndim == 3:
        return F.squeeze(unfold(F.unsqueeze(x, 0), kernel_size, dilation, padding, stride), 0)
    windows = F.unfold(x, kernel_size, stride, padding, dilation)  # (N, OH, OW, kh, kw, C)
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
    (N, C, H, W) image of ``output_size`` (overlapping windows add up); unbatched (C * kh * kw, L)
    columns give a (C, H, W) image."""
    x = arguments.tensor_argument("fold", input)
    if x.ndim == 2:
        return F.squeeze(fold(F.unsqueeze(x, 0), output_size, kernel_size, dilation, padding, stride), 0)
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


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r * r, H, W) -> (*, C, H * r, W * r), r = ``upscale_factor``, as PyTorch:
    ``y[..., c, h * r + i, w * r + j] = x[..., c * r * r + i * r + j, h, w]`` (a reshape, a
    permutation and a reshape)."""
    x = arguments.tensor_argument("pixel_shuffle", input)
    r = positive_int("pixel_shuffle", "upscale_factor", upscale_factor)
    if x.ndim < 3 or x.shape[-3] % (r * r):
        raise ValueError(
            f"pixel_shuffle: expected an input (*, C * {r * r}, H, W) whose channels divide by upscale_factor ** 2 "
            f"= {r * r}, got shape {x.shape}"
        )
    *batch, c, h, w = x.shape
    b = len(batch)
    grid = F.reshape(x, (*batch, c // (r * r), r, r, h, w))
    spread = F.permute(grid, *range(b), b, b + 3, b + 1, b + 4, b + 2)  # (*, C, H, r, W, r)
    return F.reshape(spread, (*batch, c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r * r, H, W), r = ``downscale_factor``: the inverse of
    :func:`pixel_shuffle`, as PyTorch."""
    x = arguments.tensor_argument("pixel_unshuffle", input)
    r = positive_int("pixel_unshuffle", "downscale_factor", downscale_factor)
    if x.ndim < 3 or x.shape[-2] % r or x.shape[-1] % r:
        raise ValueError(
            f"pixel_unshuffle: expected an input (*, C, H, W) with H and W divisible by downscale_factor {r}, "
            f"got shape {x.shape}"
        )
    *batch, c, h, w = x.shape
    b = len(batch)
    blocks = F.reshape(x, (*batch, c, h // r, r, w // r, r))
    gathered = F.permute(blocks, *range(b), b, b + 2, b + 4, b + 1, b + 3)  # (*, C, r, r, H / r, W / r)
    return F.reshape(gathered, (*batch, c * r * r, h // r, w // r))


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """(N, C, *) -> (N, C, *) with the channels, seen as ``groups`` groups of C / groups, interleaved
    (ShuffleNet's channel shuffle, as PyTorch): output channel ``i * groups + g`` is input channel
    ``g * (C / groups) + i``."""
    x = arguments.tensor_argument("channel_shuffle", input)
    g = positive_int("channel_shuffle", "groups", groups)
    if x.ndim < 3 or x.shape[1] % g:
        raise ValueError(
            f"channel_shuffle: expected an input (N, C, *) with more than 2 dims and C divisible by groups={g}, "
            f"got shape {x.shape}"
        )
    n, c = x.shape[:2]
    grouped = F.reshape(x, (n, g, c // g, *x.shape[2:]))
    return F.reshape(F.transpose(grouped, 1, 2), x.shape)


class Upsample(Module):
    """``interpolate`` as a layer."""

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor: Any = (
            tuple(float(f) for f in scale_factor)
            if isinstance(scale_factor, tuple)
            else (float(scale_factor) if scale_factor else None)
        )
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return interpolate(
            input, self.size, self.scale_factor, self.mode, self.align_corners, self.recompute_scale_factor
        )

    def extra_repr(self) -> str:
        given = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{given}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour upsampling of (N, C, H, W) images: ``Upsample(size, scale_factor, "nearest")``."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear upsampling of (N, C, H, W) images with ``align_corners=True``, as PyTorch's (unlike
    ``Upsample(mode="bilinear")``, whose default is False)."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C * r * r, H, W) -> (*, C, H * r, W * r) (see :func:`pixel_shuffle`)."""

    def __init__(self, upscale_factor: int) -> None:
        self.upscale_factor = positive_int("PixelShuffle", "upscale_factor", upscale_factor)

    def forward(self, input: Tensor) -> Tensor:
        return pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H * r, W * r) -> (*, C * r * r, H, W) (see :func:`pixel_unshuffle`)."""

    def __init__(self, downscale_factor: int) -> None:
        self.downscale_factor = positive_int("PixelUnshuffle", "downscale_factor", downscale_factor)

    def forward(self, input: Tensor) -> Tensor:
        return pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class ChannelShuffle(Module):
    """Interleave ``groups`` groups of channels (see :func:`channel_shuffle`)."""

    def __init__(self, groups: int) -> None:
        self.groups = positive_int("ChannelShuffle", "groups", groups)

    def forward(self, input: Tensor) -> Tensor:
        return channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class Unfold(Module):
    """PyTorch's im2col as a layer: (N, C, H, W) -> (N, C * kh * kw, L) (see :func:`unfold`)."""

    def __init__(
        self, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0, stride: IntOrPair = 1
    ) -> None:
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Module):
    """PyTorch's col2im as a layer: (N, C * kh * kw, L) -> (N, C, *output_size) (see :func:`fold`)."""

    def __init__(
        self,
        output_size: IntOrPair,
        kernel_size: IntOrPair,
        dilation: IntOrPair = 1,
        padding: IntOrPair = 0,
        stride: IntOrPair = 1,
    ) -> None:
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding}, stride={self.stride}"
        )


class _Pad(Module):
    """``pad`` with a fixed padding (an int for every side, or one per side, last dim first) as a layer."""

    mode = "constant"
    sides = 2  # 2 for the last dim (1d), 4 for the last two (2d)

    def __init__(self, padding: int | Sequence[int], value: float | None = None) -> None:
        self.padding = (
            (int(padding),) * self.sides if isinstance(padding, (int, np.integer)) else tuple(int(p) for p in padding)
        )
        if len(self.padding) != self.sides:
            raise ValueError(f"{type(self).__name__}: padding must be an int or {self.sides} ints, got {padding}")
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return pad(input, self.padding, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPad(_Pad):
    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPad):
    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding, value)


class ConstantPad2d(_ConstantPad):
    sides = 4

    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding, value)


class ZeroPad1d(ConstantPad1d):
    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    extra_repr = _Pad.extra_repr


class ZeroPad2d(ConstantPad2d):
    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    extra_repr = _Pad.extra_repr


class _ModePad(_Pad):
    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class ReflectionPad1d(_ModePad):
    mode = "reflect"


class ReflectionPad2d(_ModePad):
    mode, sides = "reflect", 4


class ReplicationPad1d(_ModePad):
    mode = "replicate"


class ReplicationPad2d(_ModePad):
    mode, sides = "replicate", 4


class _CircularPad(_ModePad):
    mode = "circular"

    def forward(self, input: Tensor) -> Tensor:
        dims = (self.sides // 2 + 1, self.sides // 2 + 2)
        if input.ndim not in dims:
            raise ValueError(
                f"{type(self).__name__}: expected {dims[0]}D or {dims[1]}D input (got {input.ndim}D input)"
            )
        return super().forward(input)


class CircularPad1d(_CircularPad):
    pass


class CircularPad2d(_CircularPad):
    sides = 4


__all__ = [
    "ChannelShuffle",
    "CircularPad1d",
    "CircularPad2d",
    "ConstantPad1d",
    "ConstantPad2d",
    "Fold",
    "PixelShuffle",
    "PixelUnshuffle",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "Unfold",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "ZeroPad1d",
    "ZeroPad2d",
    "channel_shuffle",
    "fold",
    "interpolate",
    "pad",
    "pixel_shuffle",
    "pixel_unshuffle",
    "unfold",
]
