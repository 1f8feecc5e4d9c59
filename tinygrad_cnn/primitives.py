"""Every primitive of tinygrad_cnn: one forward (on NumPy arrays) and one backward (its VJP).

This module is the whole table of derivative rules. Everything else in the library, conv2d,
pooling and the losses included, is composed from these in :mod:`tinygrad_cnn.functional`.

Notation: ``g`` is the gradient of the output, ``y`` the output. ``forward`` keeps arrays with
``ctx.save_for_backward`` and small values (shapes, axes) in ``ctx.values``. ``backward`` is
written with Tensor operations, so it can be differentiated again. A few hot rules also define
``backward_arrays``: the same formula on plain arrays, which the engine calls instead when no
graph is being recorded (see :func:`tinygrad_cnn.autograd.run_backward`); where a formula is slow
in plain NumPy, it calls a kernel of :mod:`tinygrad_cnn.kernels`. Elementwise binary ops broadcast
like NumPy; their rules sum ``g`` back to each input's shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels
from ._tensor import Tensor
from .autograd import Context, Primitive
from .testing.conventions import first_max, from_below

Shape = tuple[int, ...]
Grad = Tensor | None
ArrayGrad = np.ndarray | None


def sum_to(g: Tensor, shape: Shape) -> Tensor:
    """g summed back to ``shape`` (the adjoint of broadcasting ``shape`` to g's shape)."""
    if g.shape == shape:
        return g
    axes = kernels.broadcast_axes(g.shape, shape)
    return _reshape(Sum.apply(g, axes, False) if axes else g, shape)


def _reshape(g: Tensor, shape: Shape) -> Tensor:
    return g if g.shape == shape else Reshape.apply(g, shape)


def _masked(g: Tensor, keep: np.ndarray) -> Tensor:
    """g where ``keep``, 0 elsewhere even where g is inf or NaN (recorded: :func:`kernels.masked`'s twin)."""
    return Where.apply(keep, g, Tensor.wrap(np.zeros((), dtype=g.dtype)))


def _mT(t: Tensor) -> Tensor:
    """t with its last two axes swapped."""
    axes = list(range(t.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return Permute.apply(t, tuple(axes))


def _right_grad(a: Tensor, g: Tensor, b: Tensor) -> Tensor:
    """a^T @ g, the gradient of b in a @ b, laid out in memory like b: computed as (g^T @ a)^T
    when b is a transposed view (``linear``'s weight.T), so that the gradient reaches the weight
    laid out like it (an optimizer step over a transposed gradient ran 13x slower)."""
    return _mT(_mT(g) @ a) if b.ndim == 2 and kernels.transposed(b.array) else _mT(a) @ g


# --------------------------------------------------------------------------- elementwise


class Add(Primitive):
    """y = a + b.   da = g,  db = g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.values = (a.shape, b.shape)
        return kernels.binary(np.add, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor, Tensor]:
        sa, sb = ctx.values
        return sum_to(g, sa), sum_to(g, sb)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sa, sb = ctx.values
        return kernels.sum_to(g, sa), kernels.sum_to(g, sb)


class Sub(Primitive):
    """y = a - b.   da = g,  db = -g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.values = (a.shape, b.shape)
        return kernels.binary(np.subtract, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor, Grad]:
        sa, sb = ctx.values
        return sum_to(g, sa), (sum_to(-g, sb) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[np.ndarray, ArrayGrad]:
        sa, sb = ctx.values
        return kernels.sum_to(g, sa), (kernels.sum_to(-g, sb) if ctx.needs_input_grad[1] else None)


class Mul(Primitive):
    """y = a * b.   da = g * b,  db = g * a."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return kernels.binary(np.multiply, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad]:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(g * b, a.shape) if need_a else None, sum_to(g * a, b.shape) if need_b else None)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad]:
        a, b = ctx.saved_arrays
        need_a, need_b = ctx.needs_input_grad
        ga = kernels.sum_to(kernels.binary(np.multiply, g, b), a.shape) if need_a else None
        return ga, (kernels.sum_to(kernels.binary(np.multiply, g, a), b.shape) if need_b else None)


class Div(Primitive):
    """y = a / b.   da = g / b,  db = -g * a / b**2."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return kernels.binary(np.divide, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad]:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g / b, a.shape) if need_a else None
        gb = sum_to(-g * a / (b * b), b.shape) if need_b else None
        return ga, gb

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad]:
        a, b = ctx.saved_arrays
        need_a, need_b = ctx.needs_input_grad
        ga = kernels.sum_to(kernels.binary(np.divide, g, b), a.shape) if need_a else None
        gb = kernels.sum_to(-g * a / (b * b), b.shape) if need_b else None
        return ga, gb


class Neg(Primitive):
    """y = -x.   dx = -g."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return -x

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return -g

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        return -g


class Pow(Primitive):
    """y = x ** p for a constant scalar p.   dx = g * p * x ** (p - 1)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.values = (p,)
        return kernels.power(x, p)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        (p,) = ctx.values
        if p == 0:
            return g * 0.0
        return g * p * (x ** (p - 1) if p != 2 else x)


class Exp(Primitive):
    """y = exp(x).   dx = g * y."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * y


class Expm1(Primitive):
    """y = exp(x) - 1, exact near 0.   dx = g * (y + 1)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * (y + 1)


_LOGS = {None: np.log, 2: np.log2, 10: np.log10}


class Log(Primitive):
    """y = log_b(x): natural (b = e) by default, or base 2 or 10 (exact at powers of b).   dx = g / (x ln b)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, base: int | None = None) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.values = (base,)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _LOGS[base](x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        (base,) = ctx.values
        return g / x if base is None else g / (x * float(np.log(base)))


class ReLU(Primitive):
    """y = max(x, 0).   dx = g where y != 0, else 0   (relu'(0) = 0; 0 even where g is inf or NaN,
    and g where x is NaN: PyTorch's ``y <= 0 ? 0 : g``)."""

    convention = from_below(at=0.0)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = kernels.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _masked(g, y.array != 0)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_arrays
        return kernels.relu_grad(g, y)


class Sigmoid(Primitive):
    """y = 1 / (1 + exp(-x)).   dx = g * y * (1 - y)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = kernels.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class Tanh(Primitive):
    """y = tanh(x).   dx = g * (1 - y**2)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class Log1p(Primitive):
    """y = log(1 + x).   dx = g / (1 + x)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g / (x + 1)


class Sin(Primitive):
    """y = sin(x).   dx = g * cos(x)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g * Elementwise.apply(x, "cos")


class Elementwise(Primitive):
    """y = f(x) for a function f of the table ``ELEMENTWISE``, which gives its NumPy forward and its
    derivative f'(x) in tensor ops.   dx = g * f'(x)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, name: str) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.values = (name,)
        with np.errstate(divide="ignore", invalid="ignore"):
            return ELEMENTWISE[name][0](x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        (name,) = ctx.values
        return g * ELEMENTWISE[name][1](x)


def _f(name: str) -> Any:
    return lambda x: Elementwise.apply(x, name)


# name: (forward on arrays, derivative on tensors)
ELEMENTWISE: dict[str, tuple[Any, Any]] = {
    "cos": (np.cos, lambda x: -Sin.apply(x)),
    "tan": (np.tan, lambda x: _f("tan")(x) ** 2 + 1),
    "asin": (np.arcsin, lambda x: (1 - x * x) ** -0.5),
    "acos": (np.arccos, lambda x: -((1 - x * x) ** -0.5)),
    "atan": (np.arctan, lambda x: 1 / (x * x + 1)),
    "sinh": (np.sinh, _f("cosh")),
    "cosh": (np.cosh, _f("sinh")),
    "asinh": (np.arcsinh, lambda x: (x * x + 1) ** -0.5),
    "acosh": (np.arccosh, lambda x: (x * x - 1) ** -0.5),
    "atanh": (np.arctanh, lambda x: 1 / (1 - x * x)),
    "erf": (kernels.erf, lambda x: Exp.apply(-(x * x)) * (2 / math.sqrt(math.pi))),
}


class XLogY(Primitive):
    """y = a * log(b), and 0 where a == 0 (whatever b is, as PyTorch).   da = g * log(b) (0 where a == b == 0),
    db = g * a / b."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        ctx.values = (a.shape, b.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a == 0, 0, a * np.log(b)).astype(np.result_type(a, b), copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad]:
        a, b = ctx.saved_tensors
        a_shape, b_shape = ctx.values
        both_zero = (a.array == 0) & (b.array == 0)  # PyTorch: da = 0 there, not log(0)
        da = (
            Where.apply(both_zero, Tensor.wrap(np.zeros((), g.dtype)), g * Log.apply(b))
            if both_zero.any()
            else g * Log.apply(b)
        )
        return sum_to(da, a_shape), sum_to(g * a / b, b_shape)


class PowTensor(Primitive):
    """y = a ** b for tensors a, b.   da = g * b * a ** (b - 1),  db = g * y * log(a), 0 where a == 0
    and b >= 0 (PyTorch's convention there)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad]:
        a, b, y = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g * b * PowTensor.apply(a, b - 1), a.shape) if need_a else None
        gb = None
        if need_b:
            at_zero = (a.array == 0) & (b.array >= 0)
            safe = Where.apply(at_zero, Tensor(np.ones((), dtype=a.dtype)), a)
            log_a = Where.apply(at_zero, Tensor(np.zeros((), dtype=a.dtype)), Log.apply(safe))
            gb = sum_to(g * y * log_a, b.shape)
        return ga, gb


class Where(Primitive):
    """y = cond ? a : b for a constant boolean ``cond``.   da = g * cond,  db = g * !cond."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.values = (cond, a.shape, b.shape)
        return kernels.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[None, Grad, Grad]:
        cond, sa, sb = ctx.values
        cond = Tensor.wrap(np.broadcast_to(cond, g.shape))
        zero = Tensor(np.zeros((), dtype=g.dtype))
        _, need_a, need_b = ctx.needs_input_grad
        ga = sum_to(Where.apply(cond, g, zero), sa) if need_a else None
        gb = sum_to(Where.apply(cond, zero, g), sb) if need_b else None
        return None, ga, gb

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[None, ArrayGrad, ArrayGrad]:
        cond, sa, sb = ctx.values
        zero = np.zeros((), dtype=g.dtype)
        _, need_a, need_b = ctx.needs_input_grad
        ga = kernels.sum_to(kernels.where(cond, g, zero), sa) if need_a else None
        gb = kernels.sum_to(kernels.where(cond, zero, g), sb) if need_b else None
        return None, ga, gb


class Cast(Primitive):
    """y = x.astype(dtype).   dx = g.astype(x.dtype)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dtype: Any) -> np.ndarray:
        ctx.values = (x.dtype,)
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Cast.apply(g, ctx.values[0])


# --------------------------------------------------------------------------- reductions


class Sum(Primitive):
    """y = x.sum(axis, keepdims).   dx = g broadcast back to x's shape."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Shape, keepdims: bool) -> np.ndarray:
        ctx.values = (x.shape, axis)
        return kernels.sum_axes(x, axis, keepdims)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        x_shape, axis = ctx.values
        return Expand.apply(_reshape(g, kernels.keepdims_shape(x_shape, axis)), x_shape)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        x_shape, axis = ctx.values
        return np.broadcast_to(g.reshape(kernels.keepdims_shape(x_shape, axis)), x_shape)


class Max(Primitive):
    """y = x.max(axis, keepdims).   dx = g at the first maximum (row-major over ``axis``), 0 elsewhere.

    Sending the whole gradient to one element, the first maximum, is PyTorch's convention for
    max-pooling; it keeps gradients exact when values tie (MNIST's flat background ties a lot).
    A NaN counts as the maximum, as in NumPy and PyTorch.
    """

    convention = first_max()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Shape, keepdims: bool) -> np.ndarray:
        if 0 in (x.shape[a] for a in axis):
            raise ValueError(f"max: cannot reduce over zero-size axes {axis} of shape {x.shape}")
        y, where = kernels.max_and_where(x, axis)
        ctx.values = (x.shape, axis, where)
        return y.reshape(kernels.keepdims_shape(x.shape, axis)) if keepdims else y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        x_shape, axis, where = ctx.values
        spread = Expand.apply(_reshape(g, kernels.keepdims_shape(x_shape, axis)), x_shape)
        return _masked(spread, kernels.first_max_mask(x_shape, axis, where))

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        return kernels.to_first_max(g, *ctx.values)


# --------------------------------------------------------------------------- shape


class Reshape(Primitive):
    """y = x.reshape(shape).   dx = g.reshape(x.shape).

    A copy when x's memory order differs from its axis order (conv2d's outputs); the plain
    backward then lays dx out in memory like x (see :func:`kernels.reshape`).
    """

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Shape) -> np.ndarray:
        y, layout = kernels.reshape(x, shape)
        ctx.values = (x.shape, layout)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Reshape.apply(g, ctx.values[0])

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        return kernels.reshape(g, *ctx.values)[0]


class Permute(Primitive):
    """y = x.transpose(axes).   dx = g.transpose(argsort(axes))."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axes: Shape) -> np.ndarray:
        ctx.values = (tuple(sorted(range(len(axes)), key=axes.__getitem__)),)  # argsort(axes)
        return x.transpose(axes)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Permute.apply(g, ctx.values[0])

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        return g.transpose(ctx.values[0])


class Expand(Primitive):
    """y = broadcast_to(x, shape).   dx = g summed back to x's shape."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Shape) -> np.ndarray:
        ctx.values = (x.shape,)
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return sum_to(g, ctx.values[0])


class GetItem(Primitive):
    """y = x[index].   dx = zeros like x with g added at ``index`` (see :class:`IndexAdd`)."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, index: Any) -> np.ndarray:
        ctx.values = (x.shape, index)
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return IndexAdd.apply(g, *ctx.values)


class IndexAdd(Primitive):
    """y = zeros(shape); y[index] += g (repeated indices add up).   dg = dy[index].

    The adjoint of :class:`GetItem`, so gradients of indexing can be differentiated again.
    """

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, shape: Shape, index: Any) -> np.ndarray:
        ctx.values = (index,)
        return kernels.index_add(g, shape, index)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return GetItem.apply(g, ctx.values[0])


class Pad(Primitive):
    """y = x padded with a constant.   dx = g with the padding cropped off."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, pad_width: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
        ctx.values = (tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, x.shape)),)
        return kernels.pad_constant(x, pad_width, value)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return GetItem.apply(g, ctx.values[0])


class Concatenate(Primitive):
    """y = concatenate(xs, axis).   dx_i = the slice of g that x_i occupies."""

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, axis: int, *xs: np.ndarray) -> np.ndarray:
        bounds = np.cumsum([0] + [x.shape[axis] for x in xs]).tolist()
        ctx.values = (axis, bounds)
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, ...]:
        axis, b = ctx.values
        lead = (slice(None),) * axis
        return (None,) + tuple(
            GetItem.apply(g, lead + (slice(b[i], b[i + 1]),)) if need else None
            for i, need in enumerate(ctx.needs_input_grad[1:])
        )


# --------------------------------------------------------------------------- linear algebra


class MatMul(Primitive):
    """y = a @ b for a, b with ndim >= 2 (batch dims broadcast).   da = g @ b^T,  db = a^T @ g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return kernels.matmul(a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad]:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (
            sum_to(g @ _mT(b), a.shape) if need_a else None,
            sum_to(_right_grad(a, g, b), b.shape) if need_b else None,
        )


class MatMulAdd(Primitive):
    """y = a @ b + c for 2-D a, b and a c that broadcasts to y's shape (a bias row).
    da = g @ b^T,  db = a^T @ g,  dc = g summed back to c's shape.

    MatMul then Add, with the bias added into the GEMM's fresh output in place: one pass fewer
    over y than two primitives (a layer's output is the largest array of its forward pass).
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        ctx.values = (c.shape,)
        y = kernels.matmul(a, b)
        kernels.add_row(y, c)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad, Grad]:
        a, b = ctx.saved_tensors
        need_a, need_b, need_c = ctx.needs_input_grad
        return (
            g @ _mT(b) if need_a else None,
            _right_grad(a, g, b) if need_b else None,
            sum_to(g, ctx.values[0]) if need_c else None,
        )

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad, ArrayGrad]:
        a, b = ctx.saved_arrays
        need_a, need_b, need_c = ctx.needs_input_grad
        return (
            kernels.matmul(g, b.T) if need_a else None,
            kernels.matmul_right_grad(a, g, b) if need_b else None,
            kernels.sum_to(g, ctx.values[0]) if need_c else None,
        )


class Convolution(Primitive):
    """conv2d's core, a 2-D convolution (cross-correlation, as PyTorch's) with a bias: the sliding
    windows of a zero-padded image times a weight.

    x (N, C, H, W), w (kh, kw, C, C_out), b (C_out,) or None -> y (N, OH, OW, C_out),
    y[n,i,j,o] = sum over p,q,c of xp[n, c, i*sh + p*dh, j*sw + q*dw] * w[p,q,c,o] + b[o], where
    xp is x padded with ``padding`` (ph, pw) rows and columns of zeros on each side (the windows
    are :class:`Unfold`'s of xp), computed as im2col(xp) @ w + b.
    dx = Fold(g @ w^T) with the padding cropped off: the transposed convolution of g by w
    (:class:`ConvTranspose`),  db = g summed over (N, OH, OW),
    dw = im2col(xp)^T @ g, itself a convolution: of x seen as (C, N, H, W) by g seen as the
    kernel (OH, OW, N, C_out), its stride the dilation and its dilation the stride (cropped to kh x kw).

    The im2col matrix is copied and multiplied a cache-sized block of rows at a time, and kept
    only when it is one block (else the plain backward copies it again for dw); its rows, and so
    y's memory, run batch-inner, and the padding goes into its copy (see
    :class:`kernels.Im2col`). The plain backward folds dx one kernel offset at a time,
    leaving out the padding (:func:`kernels.fold_products`). A pointwise conv (1x1, unpadded)
    takes no im2col copy and no fold: GEMMs on x's own memory (:func:`kernels.pointwise_conv_forward`).
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None,
        stride: Shape,
        dilation: Shape,
        padding: Shape = (0, 0),
    ) -> np.ndarray:
        y, cols = kernels.conv_forward(x, w, b, stride, dilation, padding)
        ctx.save_for_backward(x, w)
        ctx.values = (stride, dilation, padding, cols)  # cols: the im2col matrix if small enough to keep, else None
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad, Grad]:
        x, w = ctx.saved_tensors
        stride, dilation, padding, _ = ctx.values
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = _conv_input_grad(g, w, x.shape, stride, dilation, padding, 1) if need_x else None
        gw = _conv_weight_grad(x, g, w.shape, stride, dilation, padding, 1) if need_w else None
        return gx, gw, sum_to(g, (g.shape[3],)) if need_b else None

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad, ArrayGrad]:
        x, w = ctx.saved_arrays
        stride, dilation, padding, cols = ctx.values
        gx, gw, gb = kernels.conv_grads(x, w, g, stride, dilation, padding, cols, ctx.needs_input_grad[:3])
        gw = None if gw is None else kernels.laid_out_like(gw, w)  # w is conv2d's permuted view of the weight
        return gx, gw, gb


def _conv_input_grad(
    g: Tensor, w: Tensor, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> Tensor:
    """conv2d's input gradient (N, C, H, W) from g (N, OH, OW, C_out): the transposed convolution of g by w."""
    return ConvTranspose.apply(Permute.apply(g, (0, 3, 1, 2)), w, None, x_shape[2:], stride, dilation, padding, groups)


def _conv_weight_grad(
    x: Tensor, g: Tensor, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> Tensor:
    """conv2d's weight gradient, of ``w_shape`` (kh, kw, C/G, C_out), from its input x (N, C, H, W) and
    its output's gradient g (N, OH, OW, C_out), in recorded Tensor ops (see :class:`Convolution`,
    :class:`GroupedConvolution`)."""
    kh, kw, cg, c_out = w_shape
    if groups == 1:  # a convolution of x with images and channels swapped, by g (strides and dilations swap)
        gw = Convolution.apply(
            Permute.apply(x, (1, 0, 2, 3)), Permute.apply(g, (1, 2, 0, 3)), None, dilation, stride, padding
        )
        return Permute.apply(GetItem.apply(gw, (slice(None), slice(kh), slice(kw))), (1, 2, 0, 3))
    (ph, pw), (n, oh, ow, _) = padding, g.shape
    xp = Pad.apply(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), 0.0) if (ph, pw) != (0, 0) else x
    u = _reshape(Unfold.apply(xp, (kh, kw), stride, dilation), (n, oh, ow, kh, kw, groups, cg))
    g_split = _reshape(g, (n, oh, ow, groups, c_out // groups))
    return _reshape(Einsum.apply("nijpqgc,nijgm->pqcgm", u, g_split), w_shape)


class GroupedConvolution(Primitive):
    """conv2d's core with ``groups`` G > 1: :class:`Convolution` with each group of C/G input
    channels read only by its own C_out/G output channels (depthwise when both are 1).

    x (N, C, H, W), w (kh, kw, C/G, C_out), b (C_out,) or None -> y (N, OH, OW, C_out), laid out
    batch-inner as Convolution's; for output channel o = g*M + m of group g (M = C_out/G),
    y[n,i,j,o] = sum over p,q,c of xp[n, g*C/G + c, i*sh + p*dh, j*sw + q*dw] * w[p,q,c,o] + b[o]
    (xp: x zero-padded by ``padding``). With u = Unfold(xp) split as (N, OH, OW, kh, kw, G, C/G)
    and g, w split by group (the output channels as (G, M)):
    dx = Fold(einsum("nijgm,pqcgm->nijpqgc", g, w)) with the padding cropped off, the grouped
    transposed convolution of g by w (:class:`ConvTranspose`),
    dw = einsum("nijpqgc,nijgm->pqcgm", u, g),  db = g summed over (N, OH, OW).

    The fast path (:func:`kernels.grouped_conv_forward` and the gradients next to it): depthwise
    convolutions as one ``np.einsum`` over the windows of the image laid out (H, W, N, C) (dx per
    phase of the image's positions modulo the stride); other groups as a group-major im2col copy
    and one batched GEMM over the groups, dx one batched GEMM per kernel offset, added onto the
    image a band of rows at a time.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None,
        stride: Shape,
        dilation: Shape,
        padding: Shape,
        groups: int,
    ) -> np.ndarray:
        ctx.save_for_backward(x, w)
        ctx.values = (stride, dilation, padding, groups)
        return kernels.grouped_conv_forward(x, w, b, stride, dilation, padding, groups)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad, Grad]:
        x, w = ctx.saved_tensors
        stride, dilation, padding, groups = ctx.values
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = _conv_input_grad(g, w, x.shape, stride, dilation, padding, groups) if need_x else None
        gw = _conv_weight_grad(x, g, w.shape, stride, dilation, padding, groups) if need_w else None
        return gx, gw, sum_to(g, (g.shape[3],)) if need_b else None

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad, ArrayGrad]:
        x, w = ctx.saved_arrays
        stride, dilation, padding, groups = ctx.values
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_rows = kernels.conv_rows(g)
        gx = kernels.grouped_conv_input_grad(g_rows, w, x.shape, stride, dilation, padding, groups) if need_x else None
        gw = kernels.grouped_conv_weight_grad(x, g_rows, w.shape, stride, dilation, padding, groups) if need_w else None
        gw = None if gw is None else kernels.laid_out_like(gw, w)  # w is conv2d's permuted view of the weight
        return gx, gw, kernels.sum_to(g_rows, (w.shape[3],)) if need_b else None


class ConvTranspose(Primitive):
    """conv_transpose2d's core: the adjoint of the convolution (:class:`Convolution`, with ``groups``
    :class:`GroupedConvolution`) by w from images of ``size`` to images of x's size, plus a bias;
    y is that conv2d's input gradient for an output gradient x.

    x (N, C_in, H, W), w (kh, kw, C_out/G, C_in) (conv2d's weight layout for C_out channels in and
    C_in out), b (C_out,) or None, size (OH, OW) -> y (N, C_out, OH, OW), where the convolution of
    a (N, C_out, OH, OW) image with this stride, dilation and zero padding has (H, W) windows:
    y[n, g*K + o, i*sh + p*dh - ph, j*sw + q*dw - pw] += x[n, g*M + m, i, j] * w[p, q, o, g*M + m]
    (K = C_out/G, M = C_in/G; positions that fall on the padding left out), + b.
    dx = the convolution of g by w (Convolution),  dw = that convolution's weight gradient with
    the roles of input and output gradient swapped: im2col(g padded)^T @ x's rows (per group),
    db = g summed over (N, OH, OW).

    Every plain-array path is one of conv2d's kernels: the forward is conv2d's input gradient
    (:func:`kernels.fold_products`, grouped :func:`kernels.grouped_conv_input_grad`: the window
    gradient never in memory), dx its forward (:func:`kernels.conv_forward`), dw its weight
    gradient (:func:`kernels.conv_weight_grad`, reusing dx's im2col matrix when that kept it).
    x's channels are read as batch-inner rows (H*W*N, C_in) (:func:`kernels.image_rows`, a view
    for the outputs of conv2d and of this op), and y is laid out (OH, OW, N, C_out) as conv2d's
    outputs. Rows and columns at the end that no window reaches (``output_padding``) are zeros plus b.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None,
        size: Shape,
        stride: Shape,
        dilation: Shape,
        padding: Shape,
        groups: int,
    ) -> np.ndarray:
        n, _, h, wd = x.shape
        kh, kw, per_group, _ = w.shape
        w_in, y_shape = w, (n, per_group * groups, *size)
        windows = kernels.out_hw((size[0] + 2 * padding[0], size[1] + 2 * padding[1]), (kh, kw), stride, dilation)
        if windows != (h, wd):
            raise ValueError(
                f"ConvTranspose: an output of size {tuple(size)} has {windows} windows of kernel {(kh, kw)} "
                f"(stride {stride}, dilation {dilation}, padding {padding}), not the input's {(h, wd)}"
            )
        x_rows = kernels.image_rows(x)
        if not w.flags.c_contiguous:  # conv_transpose2d's permuted view: one copy in slabs, not one per kernel
            w = kernels.copy_in_slabs(w, np.empty(w.shape, dtype=w.dtype))
        y = kernels.conv_transpose_forward(x, x_rows, w, b, y_shape, stride, dilation, padding, groups)
        ctx.save_for_backward(x, w_in)
        ctx.values = (stride, dilation, padding, groups, x_rows, w)  # x's rows and w laid out for the kernels
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad, Grad]:
        x, w = ctx.saved_tensors
        stride, dilation, padding, groups = ctx.values[:4]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = None
        if need_x:
            conv = (
                Convolution.apply(g, w, None, stride, dilation, padding)
                if groups == 1
                else GroupedConvolution.apply(g, w, None, stride, dilation, padding, groups)
            )
            gx = Permute.apply(conv, (0, 3, 1, 2))
        if need_w:
            gw = _conv_weight_grad(g, Permute.apply(x, (0, 2, 3, 1)), w.shape, stride, dilation, padding, groups)
        return gx, gw, Sum.apply(g, (0, 2, 3), False) if need_b else None

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad, ArrayGrad]:
        _, w_in = ctx.saved_arrays
        stride, dilation, padding, groups, x_rows, w = ctx.values
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw = kernels.conv_transpose_grads(g, w, x_rows, stride, dilation, padding, groups, (need_x, need_w))
        gw = None if gw is None else kernels.laid_out_like(gw, w_in)  # w_in: conv_transpose2d's permuted view
        return gx, gw, kernels.sum_axes(g, (0, 2, 3), False) if need_b else None


# --------------------------------------------------------------------------- sliding windows


class Unfold(Primitive):
    """Sliding windows ("im2col") of an NCHW image, windows first and channels last.

    x: (N, C, H, W) -> y: (N, OH, OW, kh, kw, C) with
    y[n, i, j, p, q, c] = x[n, c, i*sh + p*dh, j*sw + q*dw], OH = (H - dh*(kh-1) - 1) // sh + 1.
    The forward is a strided view (no copy).
    dx = :class:`Fold` of g (the adjoint: every window adds its gradient back onto the pixels it read).
    """

    computes = False  # only moves values (see Primitive.computes)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
        ctx.values = (x.shape, kernel, stride, dilation)
        return kernels.windows(x, kernel, stride, dilation)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Fold.apply(g, *ctx.values)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        return kernels.fold(g, *ctx.values)


class Fold(Primitive):
    """The adjoint of :class:`Unfold`: g (N, OH, OW, kh, kw, C) -> (N, C, H, W), overlaps summed.
    dg = Unfold of the gradient."""

    @staticmethod
    def forward(
        ctx: Context, g: np.ndarray, x_shape: Shape, kernel: Shape, stride: Shape, dilation: Shape
    ) -> np.ndarray:
        ctx.values = (kernel, stride, dilation)
        return kernels.fold(g, x_shape, kernel, stride, dilation)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Unfold.apply(g, *ctx.values)


# --------------------------------------------------------------------------- softmax


def einsum_subscripts(equation: str, ndims: list[int]) -> str:
    """``equation`` in explicit form (``"ij,jk->ik"``), ``...`` spelled out as letters, after checks:
    one term per operand, each as long as its operand's ndim, no index twice within a term."""
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"{len(terms)} terms for {len(ndims)} operands")
    used = set(equation) - set(",->.")
    if not all(c.isalpha() for c in used):
        raise ValueError("subscripts must be letters")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    ell = max((n - len(t.replace("...", "")) for t, n in zip(terms, ndims) if "..." in t), default=0)
    fill = "".join(spare[:ell])
    expanded = []
    for t, n in zip(terms, ndims):
        if "..." in t:
            t = t.replace("...", fill[ell - (n - len(t.replace("...", ""))) :])
        if len(t) != n:
            raise ValueError(f"term {t!r} has {len(t)} subscripts for an operand with {n} dimensions")
        if len(set(t)) != len(t):
            raise ValueError(f"an index repeated within one operand ({t!r}, a diagonal) is not supported")
        expanded.append(t)
    if arrow:
        out = output.replace("...", fill)
    else:  # implicit output: the indices seen once, in alphabetical order
        joined = "".join(expanded)
        out = fill + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in fill))
    return ",".join(expanded) + "->" + out


class Einsum(Primitive):
    """y = einsum("a,b,...->out", x0, x1, ...).   dx_i = einsum("out,<the others>->a_i", g, <the others>),
    broadcast along the indices only x_i has."""

    @staticmethod
    def forward(ctx: Context, equation: str, *xs: np.ndarray) -> np.ndarray:
        ctx.values = (equation,)
        ctx.save_for_backward(*xs)
        return np.asarray(np.einsum(equation, *xs, optimize=len(xs) > 2))

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, ...]:
        xs = ctx.saved_tensors
        (equation,) = ctx.values
        inputs, out = equation.split("->")
        terms = inputs.split(",")
        grads: list[Grad] = [None]
        for i, need in enumerate(ctx.needs_input_grad[1:]):
            if not need:
                grads.append(None)
                continue
            others = [(t, x) for j, (t, x) in enumerate(zip(terms, xs)) if j != i]
            known = set(out).union(*(set(t) for t, _ in others))
            mine = terms[i]
            kept = "".join(c for c in mine if c in known)
            gi = Einsum.apply(",".join([out] + [t for t, _ in others]) + "->" + kept, g, *(x for _, x in others))
            if kept != mine:  # an index only x_i has: its gradient is the same all along it
                spread = tuple(xs[i].shape[k] if c in kept else 1 for k, c in enumerate(mine))
                gi = Expand.apply(_reshape(gi, spread), xs[i].shape)
            grads.append(gi)
        return tuple(grads)


class Standardize(Primitive):
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, the mean and biased variance over
    ``axes``: batch, layer and group normalisation. weight and bias (either may be None) have x's
    ndim and broadcast against it (length 1 along the axes where they are constant).
    With n values per mean, s = 1 / sqrt(var + eps), x̂ = (x - mean) * s and ĝ = g * weight:
    dx = s * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂)) (the means over ``axes`` broadcast back),
    dweight = g * x̂ and dbias = g, each summed over the axes where the weight has length 1.

    ``stats``, a list if given, receives the mean and variance (axes kept) as constants (a batch
    norm's running statistics). A per-channel affine map is folded into one scale and shift
    (:func:`kernels.standardize`).
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray | None,
        bias: np.ndarray | None,
        axes: Shape,
        eps: float,
        stats: list[Any] | None = None,
    ) -> np.ndarray:
        y, standardized, mean, var = kernels.standardize(x, axes, eps, weight, bias)
        if stats is not None:
            stats.extend((mean, var))
        affine = weight if weight is not None else bias
        ctx.save_for_backward(x, weight, standardized)
        ctx.values = (axes, eps, None if affine is None else affine.shape, mean, var)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Grad, Grad, Grad]:
        x, weight, _ = ctx.saved_tensors
        axes, eps, affine_shape, _, _ = ctx.values
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        n = math.prod(x.shape[i] for i in axes)
        centred = x - Sum.apply(x, axes, True) / n  # s and x̂ again from x, so that their dependence on x is recorded
        s = (Sum.apply(centred * centred, axes, True) / n + eps) ** -0.5
        standardized = centred * s
        kept = () if affine_shape is None else tuple(i for i, k in enumerate(affine_shape) if k == 1)
        gw = (Sum.apply(g * standardized, kept, True) if kept else g * standardized) if need_w else None
        gb = (Sum.apply(g, kept, True) if kept else g) if need_b else None
        gx = None
        if need_x:
            g_hat = g if weight is None else g * weight
            mean_g, mean_gx = Sum.apply(g_hat, axes, True) / n, Sum.apply(g_hat * standardized, axes, True) / n
            gx = s * (g_hat - mean_g - standardized * mean_gx)
        return gx, gw, gb

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> tuple[ArrayGrad, ArrayGrad, ArrayGrad]:
        x, weight, standardized = ctx.saved_arrays
        axes, eps, affine_shape, mean, var = ctx.values
        return kernels.standardize_grads(
            g, x, standardized, weight, affine_shape, mean, var, axes, eps, ctx.needs_input_grad[:3]
        )


class Softmax(Primitive):
    """y = exp(x - max) / sum(exp(x - max)) over ``axis``.   dx = y * (g - sum(g * y)), the sum over ``axis``.

    One op rather than Exp of LogSoftmax: a pass fewer each way, and no exp in the backward."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        ctx.values = (axis,)
        y = x - x.max(axis=axis, keepdims=True)
        np.exp(y, out=y)
        y /= kernels.sum_axes(y, (axis,), True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return y * (g - Sum.apply(g * y, ctx.values, True))

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_arrays
        gy = g * y
        gy -= y * kernels.sum_axes(gy, ctx.values, True)
        return gy


class LogSoftmax(Primitive):
    """y = x - logsumexp(x, axis).   dx = g - exp(y) * sum(g, axis).

    Stable for large logits: the maximum is subtracted before exponentiating.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        ctx.values = (axis,)
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(kernels.sum_axes(np.exp(shifted), (axis,), True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g - Exp.apply(y) * Sum.apply(g, ctx.values, True)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_arrays
        return g - np.exp(y) * kernels.sum_axes(g, ctx.values, True)


class NLLLoss(Primitive):
    """The negative log-likelihood of class targets: with p = x[i, t_i] picked from each row of
    x (M, C) by the targets t (M,) and weighted by w (M,) (a class weight; 0 for an ignored row),
    y = -w * p per row (``reduction`` "none"), their sum ("sum") or their sum / sum(w) ("mean").
    dx[i, t_i] = -w_i * g_i ("none"), -w_i * g ("sum"), -w_i * g / sum(w) ("mean"), 0 elsewhere."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, target: np.ndarray, weight: np.ndarray, reduction: str) -> np.ndarray:
        rows = np.arange(len(target))
        losses = -(weight * x[rows, target])
        ctx.values = (x.shape, target, weight, reduction)
        if reduction == "none":
            return losses
        total = losses.sum()
        return total / weight.sum() if reduction == "mean" else total

    @staticmethod
    def _per_row(ctx: Context, g: Any) -> Any:
        """-w times the gradient each row's loss got (a Tensor or an array of shape (M,) or ())."""
        _, _, weight, reduction = ctx.values
        with np.errstate(divide="ignore", invalid="ignore"):  # every target ignored: NaN, as PyTorch
            scale = -weight / weight.sum() if reduction == "mean" else -weight
        return g * scale

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        x_shape, target, _, _ = ctx.values
        picks = np.zeros(x_shape, dtype=bool)
        picks[np.arange(len(target)), target] = True
        per_row = _reshape(NLLLoss._per_row(ctx, g), (len(target), 1))
        return _masked(per_row, picks)

    @staticmethod
    def backward_arrays(ctx: Context, g: np.ndarray) -> np.ndarray:
        x_shape, target, weight, _ = ctx.values
        gx = np.zeros(x_shape, dtype=np.result_type(g, weight))
        gx[np.arange(len(target)), target] = NLLLoss._per_row(ctx, g)
        return gx
