"""Custom ops written the documented way (docs/custom-ops.md: PyTorch's ``autograd.Function``),
each in a correct version and with a planted backward bug, and the one ``check_op`` call that
tests each pair.

Used by tests/test_planted_bugs.py and benchmarks/planted_bugs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn.primitives import sum_to
from tinygrad_cnn.testing import check_op
from tinygrad_cnn.testing.conventions import first_max, from_below
from tinygrad_cnn.testing.strategies import kinky_arrays, shapes

# --------------------------------------------------------------------------- x * |x|


class SignedSquare(tg.Function):
    """y = x |x|;   dy/dx = 2 |x|."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x.abs()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x.abs()


class SignedSquareSignBug(SignedSquare):
    """Bug: 2x instead of 2|x|, wrong only for x < 0."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x


# --------------------------------------------------------------------------- a * b, broadcasting


class BroadcastMul(tg.Function):
    """y = a * b with broadcasting;   da = sum_to(g b),  db = sum_to(g a)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return sum_to(g * b, a.shape), sum_to(g * a, b.shape)


class BroadcastMulNotSummed(BroadcastMul):
    """Bug: the broadcast gradients are not summed back (wrong shape)."""

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a


def _mean_to(g, shape):
    """Like sum_to, but averaging: right shape, wrong values."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.mean(axis=axes, keepdims=True).reshape(shape) if axes else g


class BroadcastMulSummedWrongly(BroadcastMul):
    """Bug: the broadcast gradients are averaged instead of summed (right shape, wrong values)."""

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _mean_to(g * b, a.shape), _mean_to(g * a, b.shape)


# --------------------------------------------------------------------------- x ** 3


class Cube(tg.Function):
    """y = x^3;   dy/dx = 3 x^2, written with Tensor operations (differentiable)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


class CubeFromData(Cube):
    """Bug: the backward is built from .data, so it is a constant to second-order gradients."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.Tensor(3 * x.data**2)


# --------------------------------------------------------------------------- max over the last axis


class RowMax(tg.Function):
    """y = x.max(-1);   dx = g at the first maximum of each row."""

    convention = first_max()

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.amax(dim=-1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        x = x.detach().numpy()
        first = np.argmax(x, axis=-1)[..., None]
        mask = np.arange(x.shape[-1]) == first
        return g.reshape(g.shape + (1,)) * tg.Tensor(mask.astype(x.dtype))


class RowMaxEveryTie(RowMax):
    """Bug: every tied maximum gets the whole gradient."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        x = x.detach().numpy()
        mask = x == x.max(axis=-1, keepdims=True)
        return g.reshape(g.shape + (1,)) * tg.Tensor(mask.astype(x.dtype))


# --------------------------------------------------------------------------- relu


class Relu(tg.Function):
    """y = max(x, 0);   dx = g (x > 0), so relu'(0) = 0 as in PyTorch."""

    convention = from_below(at=0.0)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(x.dtype)


class ReluOneAtZero(Relu):
    """Bug: relu'(0) = 1."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x >= 0).to(x.dtype)


# --------------------------------------------------------------------------- 2x2 max pooling


class MaxPool2x2(tg.Function):
    """y[n, c, i, j] = max of x[n, c, 2i:2i+2, 2j:2j+2];   the gradient goes to each window's first maximum."""

    convention = first_max()

    @staticmethod
    def forward(ctx, x):
        n, c, h, w = x.shape
        windows = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        ctx.first = windows.argmax(dim=-1).numpy()
        ctx.shape = x.shape
        return windows.amax(dim=-1)

    @staticmethod
    def backward(ctx, g):
        n, c, h, w = ctx.shape
        mask = (np.arange(4) == ctx.first[..., None]).astype(g.dtype)
        spread = g.reshape(g.shape + (1,)) * tg.Tensor(mask)  # (n, c, h/2, w/2, 4)
        return spread.reshape(n, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


class MaxPool2x2OffByOne(MaxPool2x2):
    """Bug: each window's gradient goes to the argmax position of the next window along the width."""

    @staticmethod
    def backward(ctx, g):
        n, c, h, w = ctx.shape
        first = np.roll(ctx.first, 1, axis=-1)
        mask = (np.arange(4) == first[..., None]).astype(g.dtype)
        spread = g.reshape(g.shape + (1,)) * tg.Tensor(mask)
        return spread.reshape(n, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


# --------------------------------------------------------------------------- strided 1-D correlation


class Correlate1d(tg.Function):
    """y[i] = sum_k w[k] x[s i + k] for stride s = 2;   dx[s i + k] += g[i] w[k],  dw[k] = sum_i g[i] x[s i + k]."""

    stride = 2

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        s, k = Correlate1d.stride, w.shape[0]
        out = (x.shape[0] - k) // s + 1
        idx = s * np.arange(out)[:, None] + np.arange(k)
        ctx.idx = idx
        return x[idx] @ w

    @staticmethod
    def backward(ctx, g):  # NumPy on the arrays: first order only
        x, w, g = (t.detach().numpy() for t in (*ctx.saved_tensors, g))
        gx = np.zeros(x.shape, dtype=g.dtype)
        np.add.at(gx, ctx.idx, g[:, None] * w)
        return gx, g @ x[ctx.idx]


class Correlate1dWrongStride(Correlate1d):
    """Bug: the input gradient is scattered with stride 1."""

    @staticmethod
    def backward(ctx, g):
        x, w, g = (t.detach().numpy() for t in (*ctx.saved_tensors, g))
        idx = np.arange(ctx.idx.shape[0])[:, None] + np.arange(w.shape[0])
        gx = np.zeros(x.shape, dtype=g.dtype)
        np.add.at(gx, idx, g[:, None] * w)
        return gx, g @ x[ctx.idx]


@st.composite
def signal_and_kernel(draw: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(1, 3))
    n = draw(st.integers(k, 9))
    return draw(kinky_arrays((n,))), draw(kinky_arrays((k,)))


# --------------------------------------------------------------------------- tanh, float16 cast


class Tanh(tg.Function):
    """y = tanh(x);   dx = g (1 - y^2)."""

    @staticmethod
    def forward(ctx, x):
        y = x.tanh()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class TanhHalfSaved(Tanh):
    """Bug: to save memory in float32 training, y is rounded to float16: right in float64 only."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if y.dtype == np.float32:
            y = y.astype(np.float16).astype(np.float32)
        return g * (1 - y * y)


# --------------------------------------------------------------------------- the pairs


def _pool_images() -> st.SearchStrategy[np.ndarray]:
    return st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)).flatmap(
        lambda s: kinky_arrays((s[0], s[1], 2 * s[2], 2 * s[3]))
    )


# name -> (correct op, buggy op, check_op keyword arguments)
PAIRS: dict[str, tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]] = {
    "sign error for x < 0": (SignedSquare.apply, SignedSquareSignBug.apply, {}),
    "broadcast not summed back": (BroadcastMul.apply, BroadcastMulNotSummed.apply, {"inputs": 2}),
    "broadcast summed wrongly": (BroadcastMul.apply, BroadcastMulSummedWrongly.apply, {"inputs": 2}),
    "backward built from .data": (Cube.apply, CubeFromData.apply, {}),
    "max gradient to every tie": (
        RowMax.apply,
        RowMaxEveryTie.apply,
        {"inputs": [shapes(min_dims=1, max_dims=3, max_side=4)]},
    ),
    "relu'(0) = 1": (Relu.apply, ReluOneAtZero.apply, {}),
    "pooling off by one window": (MaxPool2x2.apply, MaxPool2x2OffByOne.apply, {"inputs": [_pool_images()]}),
    "conv-like wrong stride": (
        Correlate1d.apply,
        Correlate1dWrongStride.apply,
        {"inputs": signal_and_kernel(), "second_order": False},  # its backward is NumPy: first order only
    ),
    "float16 cast in float32": (Tanh.apply, TanhHalfSaved.apply, {}),
}


def run(op: Callable[..., Any], kwargs: dict[str, Any], seed: int | None = None) -> None:
    """The one call."""
    check_op(op, seed=seed, **kwargs)
