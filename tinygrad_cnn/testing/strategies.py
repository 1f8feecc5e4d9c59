"""Hypothesis strategies for property-based tests of tinygrad_cnn ops (and of your own ops).

This module needs `Hypothesis <https://hypothesis.readthedocs.io>`_ (the ``testing`` extra:
``pip install "tinygrad_cnn[testing]"``); :func:`~tinygrad_cnn.testing.gradcheck` does not.
:func:`~tinygrad_cnn.testing.check_op` draws from these, so most tests need nothing else.

* :func:`kinky_arrays` (``kinks=`` in :func:`arrays`/:func:`tensors`): arrays that seek kinks and
  ties (values from a small set, exact kink points, MNIST-like constant regions) beside smooth
  draws; pair them with a declared convention (:mod:`tinygrad_cnn.testing.conventions`).
* :func:`shapes`, :func:`broadcastable_shapes`: array shapes, and pairs that broadcast.
* :func:`arrays`, :func:`tensors`: finite float arrays / Tensors of a given or drawn shape.
* :func:`conv2d_configs`, :func:`pool2d_configs`: valid convolution / pooling arguments.
* :func:`away_from`, :func:`distinct_values` (``unique=True``): inputs kept away from kinks and
  ties, for checks of ops that declare no convention (a finite difference straddling a kink
  measures the mean of the one-sided slopes, which no convention returns).

Example: testing your own op
----------------------------
::

    import numpy as np
    from hypothesis import given
    from tinygrad_cnn import Function, Tensor
    from tinygrad_cnn.testing import gradcheck, gradgradcheck
    from tinygrad_cnn.testing.strategies import kinky_arrays, shapes

    class Softsign(Function):
        "y = x / (1 + |x|),  dy/dx = 1 / (1 + |x|)**2"

        @staticmethod
        def forward(ctx, x):                  # x: a Tensor, as in PyTorch
            ctx.save_for_backward(x)
            return x / (1 + x.abs())

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors          # the input Tensor: the rule stays differentiable
            return g / ((1 + x.abs()) ** 2)

    # Zeros and ties on purpose: Softsign is smooth at 0 (|x| is not, and its second derivative
    # jumps there; gradgradcheck accepts any value between the one-sided slopes at such a step).
    @given(kinky_arrays(shapes(max_dims=3, max_side=4)))
    def test_softsign_gradient(x):
        assert gradcheck(Softsign.apply, Tensor(x, requires_grad=True))

    @given(kinky_arrays(shapes(max_dims=2, max_side=4)))
    def test_softsign_second_order(x):
        assert gradgradcheck(Softsign.apply, Tensor(x, requires_grad=True))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover - exercised only without the dev extra
    raise ImportError(
        "tinygrad_cnn.testing.strategies needs Hypothesis: pip install hypothesis "
        "(tinygrad_cnn.testing.gradcheck works without it)"
    ) from e

from .._tensor import Tensor

__all__ = [
    "Conv2dConfig",
    "Pool2dConfig",
    "arrays",
    "away_from",
    "broadcastable_shapes",
    "conv2d_configs",
    "distinct_values",
    "kink_values",
    "kinky_arrays",
    "pool2d_configs",
    "shapes",
    "tensors",
]

Shape = tuple[int, ...]
T = TypeVar("T")


def _resolve(value: T | st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


# --------------------------------------------------------------------------- shapes


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5) -> st.SearchStrategy[Shape]:
    """Shapes with ``min_dims..max_dims`` axes, each of size ``min_side..max_side``."""
    if not 0 <= min_dims <= max_dims or not 0 <= min_side <= max_side:
        raise ValueError(
            f"shapes: need 0 <= min_dims <= max_dims and 0 <= min_side <= max_side, got "
            f"dims {min_dims}..{max_dims}, sides {min_side}..{max_side}"
        )
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def broadcastable_shapes(
    min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5
) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """Pairs of shapes that broadcast together under NumPy's rules.

    Both are drawn from one result shape: each keeps a trailing part of it (so leading axes may be
    missing from either) and any of its axes may be replaced by 1. Each shape has between
    ``min_dims`` and ``max_dims`` axes; axes of size 1 appear whatever ``min_side`` is.
    """

    @st.composite
    def pairs(draw: Callable[..., Any]) -> tuple[Shape, Shape]:
        full = draw(shapes(min_dims, max_dims, min_side, max_side))
        result = []
        for _ in range(2):
            ndim = draw(st.integers(min_dims, len(full)))
            tail = full[len(full) - ndim :]
            ones = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
            result.append(tuple(1 if one else n for n, one in zip(tail, ones, strict=True)))
        return result[0], result[1]

    return pairs()


# --------------------------------------------------------------------------- values


def _float_width(dtype: np.dtype) -> Literal[16, 32, 64]:
    widths: dict[int, Literal[16, 32, 64]] = {2: 16, 4: 32, 8: 64}
    if dtype.kind != "f" or dtype.itemsize not in widths:
        raise TypeError(f"expected float16, float32 or float64, got dtype {dtype}")
    return widths[dtype.itemsize]


def distinct_values(
    shape: Shape | st.SearchStrategy[Shape],
    margin: float = 1e-2,
    min_value: float = -3.0,
    max_value: float = 3.0,
    dtype: Any = np.float64,
) -> st.SearchStrategy[np.ndarray]:
    """Arrays in ``[min_value, max_value]`` whose elements are pairwise at least ``margin`` apart.

    Built as a shuffled, evenly spaced grid plus jitter smaller than the slack between grid
    points, so no two elements ever tie (or come within ``margin``): ``max``, ``max_pool2d`` and
    ``maximum`` then have a unique winner that a finite-difference step of ``eps < margin / 2``
    cannot change. Needs ``size * margin <= max_value - min_value``.
    """
    dt = np.dtype(dtype)
    _float_width(dt)
    if margin <= 0 or max_value <= min_value:
        raise ValueError(
            f"distinct_values: need margin > 0 and min_value < max_value, got margin {margin}, "
            f"range [{min_value}, {max_value}]"
        )

    def check(size: int) -> float:
        spacing = (max_value - min_value) / max(size, 1)
        if spacing < margin:
            raise ValueError(
                f"distinct_values: {size} elements cannot be {margin} apart within "
                f"[{min_value}, {max_value}]; widen the range or use a smaller shape/margin"
            )
        return spacing

    if not isinstance(shape, st.SearchStrategy):
        check(math.prod(shape))

    @st.composite
    def draw_values(draw: Callable[..., Any]) -> np.ndarray:
        shp = tuple(draw(_resolve(shape)))
        size = math.prod(shp)
        spacing = check(size)
        order = np.asarray(draw(st.permutations(range(size))), dtype=np.float64)
        room = 0.45 * (spacing - margin)  # < half the slack, so neighbours stay margin apart
        if room > 0 and size:
            jitter_elements = st.floats(-room, room, allow_subnormal=False)
            jitter = draw(hnp.arrays(np.float64, size, elements=jitter_elements))
        else:
            jitter = np.zeros(size)
        values = min_value + (order + 0.5) * spacing + jitter
        return values.astype(dt).reshape(shp)

    return draw_values()


_SMALL_SET = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)


def kink_values(
    kinks: Sequence[float] = (0.0,),
    min_value: float = -3.0,
    max_value: float = 3.0,
) -> list[float]:
    """The small set of values kink-seeking draws pick from: the kink points and a few round
    numbers (so that maxima tie and zeros are exact), all within ``[min_value, max_value]``."""
    chosen = {float(k) for k in kinks} | set(_SMALL_SET) | {float(min_value), float(max_value)}
    return sorted(v for v in chosen if min_value <= v <= max_value)


def kinky_arrays(
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    kinks: Sequence[float] = (0.0,),
    min_value: float = -3.0,
    max_value: float = 3.0,
) -> st.SearchStrategy[np.ndarray]:
    """Arrays that seek kinks and ties instead of avoiding them, alongside smooth draws.

    Each array is drawn in one of four ways: smooth floats in ``[min_value, max_value]``; every
    element from a small set (:func:`kink_values`: the ``kinks`` points and round numbers, so
    values tie and sit exactly on kinks); each element from the small set or a smooth float; or,
    for arrays with two or more axes, MNIST-like constant regions (a background value from the
    small set with blobs of another, and a few smooth values), where every pooling window of the
    background is a tie. A value within 1e-6 of a small-set value is snapped onto it (a kink that
    close is one finite differences cannot resolve; an exact one is what is sought). Pair them
    with a declared convention (see :mod:`tinygrad_cnn.testing.conventions`): gradcheck then
    checks the convention at the kinks.
    """
    dt = np.dtype(dtype)
    width = _float_width(dt)
    shape = shapes() if shape is None else shape
    small = kink_values(kinks, min_value, max_value)
    smooth = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width)
    exact = st.sampled_from(small)

    @st.composite
    def draw_array(draw: Callable[..., Any]) -> np.ndarray:
        shp = tuple(draw(_resolve(shape)))
        mode = draw(st.sampled_from(["smooth", "small set", "mixed", "regions"]))
        if mode == "smooth":
            return draw(hnp.arrays(dt, shp, elements=smooth))
        if mode == "small set":
            return draw(hnp.arrays(dt, shp, elements=exact))
        if mode == "mixed" or len(shp) < 2:
            return draw(hnp.arrays(dt, shp, elements=st.one_of(exact, smooth)))
        # Constant regions: a background, rectangles of another value, a few smooth pixels.
        image = np.full(shp, draw(exact), dtype=np.float64)
        h, w = shp[-2], shp[-1]
        for _ in range(draw(st.integers(0, 3))):
            top, left = draw(st.integers(0, max(h - 1, 0))), draw(st.integers(0, max(w - 1, 0)))
            bottom, right = draw(st.integers(top, h)), draw(st.integers(left, w))
            image[..., top:bottom, left:right] = draw(exact)
        flat = image.reshape(-1)
        if flat.size:
            for k in draw(st.lists(st.integers(0, flat.size - 1), max_size=3)):
                flat[k] = draw(smooth)
        return image.astype(dt)

    points = np.array(small)

    def snap(a: np.ndarray) -> np.ndarray:
        """Values within 1e-6 of a kink or round value become it: a kink a hair away from a value
        is one that finite differences cannot resolve, and an exact one is what is sought."""
        if a.size == 0 or points.size == 0:
            return a
        flat = a.astype(np.float64).reshape(-1)
        nearest = points[np.argmin(np.abs(flat[:, None] - points[None, :]), axis=1)]
        close = np.abs(flat - nearest) <= 1e-6 * np.maximum(1.0, np.abs(nearest))
        return np.where(close, nearest, flat).reshape(a.shape).astype(dt)

    return draw_array().map(snap)


def arrays(
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    elements: st.SearchStrategy[float] | None = None,
    min_value: float = -3.0,
    max_value: float = 3.0,
    unique: bool = False,
    margin: float = 1e-2,
    kinks: Sequence[float] | None = None,
) -> st.SearchStrategy[np.ndarray]:
    """Finite float arrays of ``shape`` (a tuple or a strategy; default :func:`shapes`).

    Elements are drawn from ``[min_value, max_value]`` (no NaN, no infinity, no subnormals)
    unless ``elements`` is given. With ``unique=True`` they come from :func:`distinct_values`
    (pairwise at least ``margin`` apart); with ``kinks`` (a sequence of kink points, possibly
    empty) from :func:`kinky_arrays`, which seeks the kinks and ties instead.
    """
    dt = np.dtype(dtype)
    width = _float_width(dt)
    shape = shapes() if shape is None else shape
    if sum((unique, kinks is not None, elements is not None)) > 1:
        raise ValueError("arrays: pass at most one of elements, unique=True and kinks")
    if unique:
        return distinct_values(shape, margin, min_value, max_value, dt)
    if kinks is not None:
        return kinky_arrays(shape, dt, kinks, min_value, max_value)
    if elements is None:
        elements = st.floats(
            min_value, max_value, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width
        )
    return hnp.arrays(dt, shape, elements=elements)


def tensors(
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    elements: st.SearchStrategy[float] | None = None,
    requires_grad: bool = True,
    min_value: float = -3.0,
    max_value: float = 3.0,
    unique: bool = False,
    margin: float = 1e-2,
    kinks: Sequence[float] | None = None,
) -> st.SearchStrategy[Tensor]:
    """Tensors holding :func:`arrays` (same arguments), with ``requires_grad`` set as asked."""
    return arrays(shape, dtype, elements, min_value, max_value, unique, margin, kinks).map(
        lambda a: Tensor.wrap(a).requires_grad_(requires_grad)
    )


def away_from(points: Sequence[float] = (0.0,), margin: float = 1e-2) -> Callable[[Any], Any]:
    """A function that pushes values out of ``(p - margin, p + margin)`` for every point ``p``.

    Use it with ``.map`` on a strategy of floats, arrays or Tensors (the type, dtype and
    ``requires_grad`` are kept)::

        tensors(shape=(3, 4)).map(away_from((0.0,)))          # relu, abs
        arrays(shape=(5,)).map(away_from((-1.0, 1.0)))         # clip(-1, 1)

    An element closer than ``margin`` to ``p`` moves to ``p - margin`` or ``p + margin``
    (whichever is nearer; ``p`` itself goes up), so results can lie up to ``margin`` outside the
    drawn range. Mapping rather than filtering keeps Hypothesis from rejecting most arrays.
    Points must be at least ``2 * margin`` apart.
    """
    pts = sorted(float(p) for p in points)
    if margin <= 0:
        raise ValueError(f"away_from: margin must be positive, got {margin}")
    if any(b - a < 2 * margin for a, b in zip(pts[:-1], pts[1:], strict=True)):
        raise ValueError(f"away_from: points {pts} must be at least 2 * margin = {2 * margin} apart")

    def push(value: Any) -> Any:
        if isinstance(value, Tensor):
            return Tensor.wrap(push(value.array)).requires_grad_(value.requires_grad)
        arr = np.array(value, dtype=np.float64)
        for p in pts:
            d = arr - p
            near = np.abs(d) < margin
            arr = np.where(near, np.where(d >= 0, p + margin, p - margin), arr)
        if isinstance(value, np.ndarray):
            return arr.astype(value.dtype)
        if isinstance(value, np.generic):
            return value.dtype.type(arr)
        return float(arr)

    return push


# --------------------------------------------------------------------------- conv / pool configs


def _out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


class Conv2dConfig(NamedTuple):
    """Arguments of one valid ``conv2d`` call (all pairs are (height, width))."""

    input_shape: tuple[int, int, int, int]  # (N, C_in, H, W)
    weight_shape: tuple[int, int, int, int]  # (C_out, C_in, kh, kw)
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    bias: bool

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """(N, C_out, OH, OW)."""
        n, _, h, w = self.input_shape
        c_out, _, kh, kw = self.weight_shape
        return (
            n,
            c_out,
            _out(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
            _out(w, kw, self.stride[1], self.padding[1], self.dilation[1]),
        )


class Pool2dConfig(NamedTuple):
    """Arguments of one valid ``max_pool2d`` / ``avg_pool2d`` call (pairs are (height, width))."""

    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """(N, C, OH, OW)."""
        n, c, h, w = self.input_shape
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        return (n, c, _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1]))


def conv2d_configs(
    max_batch: int = 2,
    max_in_channels: int = 3,
    max_out_channels: int = 3,
    min_side: int = 1,
    max_side: int = 6,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_padding: int = 2,
    max_dilation: int = 2,
    bias: bool | None = None,
) -> st.SearchStrategy[Conv2dConfig]:
    """Valid :class:`Conv2dConfig`: the (dilated) kernel always fits the padded input.

    Height and width are drawn independently (non-square kernels, strides, paddings and
    dilations). ``bias=None`` draws whether there is a bias.
    """

    @st.composite
    def axis(draw: Callable[..., Any]) -> tuple[int, int, int, int, int]:
        side = draw(st.integers(min_side, max_side))
        p = draw(st.integers(0, max_padding))
        padded = side + 2 * p
        k = draw(st.integers(1, max(1, min(max_kernel, padded))))
        d = 1 if k == 1 else draw(st.integers(1, max(1, min(max_dilation, (padded - 1) // (k - 1)))))
        s = draw(st.integers(1, max_stride))
        return side, k, s, p, d

    @st.composite
    def configs(draw: Callable[..., Any]) -> Conv2dConfig:
        n = draw(st.integers(1, max_batch))
        c_in = draw(st.integers(1, max_in_channels))
        c_out = draw(st.integers(1, max_out_channels))
        h, w = draw(axis()), draw(axis())
        has_bias = draw(st.booleans()) if bias is None else bias
        return Conv2dConfig(
            (n, c_in, h[0], w[0]), (c_out, c_in, h[1], w[1]), (h[2], w[2]), (h[3], w[3]), (h[4], w[4]), has_bias
        )

    if min(min_side, max_batch, max_in_channels, max_out_channels, max_kernel, max_stride, max_dilation) < 1:
        raise ValueError("conv2d_configs: sizes, kernel, stride and dilation bounds must be >= 1")
    return configs()


def _every_window_sees_input(size: int, k: int, s: int, p: int, d: int) -> bool:
    for o in range(_out(size, k, s, p, d)):
        if not any(p <= o * s + t * d < p + size for t in range(k)):
            return False
    return True


def pool2d_configs(
    max_batch: int = 2,
    max_channels: int = 3,
    min_side: int = 1,
    max_side: int = 6,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_dilation: int = 2,
    padding: bool = True,
) -> st.SearchStrategy[Pool2dConfig]:
    """Valid :class:`Pool2dConfig` under PyTorch's rules: ``padding <= kernel // 2`` and the
    (dilated) kernel fits the padded input.

    Also, every window covers at least one real (non-padding) element: a window made only of
    padding has max ``-inf`` and no gradient, which PyTorch allows but no test wants. Use
    ``max_dilation=1`` for ``avg_pool2d`` (it has no dilation) and ``padding=False`` to draw no
    padding.
    """

    @st.composite
    def axis(draw: Callable[..., Any]) -> tuple[int, int, int, int, int]:
        side = draw(st.integers(min_side, max_side))
        p = draw(st.integers(0, max_kernel // 2)) if padding else 0
        padded = side + 2 * p
        k = draw(st.integers(max(1, 2 * p), min(max_kernel, padded)))
        d = 1 if k == 1 else draw(st.integers(1, max(1, min(max_dilation, (padded - 1) // (k - 1)))))
        s = draw(st.integers(1, max_stride))
        while not _every_window_sees_input(side, k, s, p, d):
            d -= 1  # terminates: with d == 1 and p <= k // 2 every window overlaps the input
        return side, k, s, p, d

    @st.composite
    def configs(draw: Callable[..., Any]) -> Pool2dConfig:
        n = draw(st.integers(1, max_batch))
        c = draw(st.integers(1, max_channels))
        h, w = draw(axis()), draw(axis())
        return Pool2dConfig((n, c, h[0], w[0]), (h[1], w[1]), (h[2], w[2]), (h[3], w[3]), (h[4], w[4]))

    if min(min_side, max_batch, max_channels, max_kernel, max_stride, max_dilation) < 1:
        raise ValueError("pool2d_configs: sizes, kernel, stride and dilation bounds must be >= 1")
    return configs()
