"""Every op of tinygrad_cnn as a function: input checks, then primitives or compositions of them.

Nothing here writes a backward rule. Composites (conv2d, the pools, softmax, the losses, ...)
are built from the primitives in :mod:`tinygrad_cnn.primitives`, and reverse mode follows from
theirs. Names, shapes and defaults follow PyTorch (NCHW images, conv weight
``(C_out, C_in, kh, kw)``, linear weight ``(out, in)``); axes are called ``axis``, as in NumPy.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import primitives as P
from .random import default_generator
from .tensor import Axis, Tensor
from .testing.conventions import declare, first_max, first_min, mean_of_sides, passes_through
from .validation import pair

IntOrPair = int | tuple[int, int]

# --------------------------------------------------------------------------- helpers


def _as_tensor(x: Any, like: Tensor | None = None, op: str = "", name: str = "input") -> Tensor:
    """Wrap a scalar or array as a constant tensor; Python scalars take ``like``'s float dtype.

    Anything that is not numbers (None, strings, objects, ragged lists) is a TypeError naming ``op``.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)) and like.dtype.kind == "f":
        return Tensor(np.asarray(x, dtype=like.dtype))
    try:
        return Tensor(np.asarray(x) if isinstance(x, (int, float, bool)) else x)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{op or 'tensor op'}: {name} must be a Tensor or an array of numbers, got {type(x).__name__} ({e})"
        ) from None


def _tensor(op: str, x: Any, name: str = "input") -> Tensor:
    """The tensor argument ``name`` of ``op``: a Tensor, or an array/number/list wrapped as a constant."""
    return x if isinstance(x, Tensor) else _as_tensor(x, None, op, name)


def _binary(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    ta = _as_tensor(a, b if isinstance(b, Tensor) else None, op, "first operand")
    tb = _as_tensor(b, ta, op, "second operand")
    if ta.shape != tb.shape:
        try:
            np.broadcast_shapes(ta.shape, tb.shape)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {ta.shape} and {tb.shape} cannot be broadcast together "
                f"(aligned from the right:\n  {_aligned(ta.shape, tb.shape)})"
            ) from None
    return ta, tb


def _aligned(sa: tuple[int, ...], sb: tuple[int, ...]) -> str:
    n = builtins.max(len(sa), len(sb))

    def fmt(s: tuple[int, ...]) -> str:
        pad = " ".join(" " * 5 for _ in range(n - len(s))) + " " * (n > len(s) and len(s) > 0)
        return pad + " ".join(f"{d:>5}" for d in s)

    return f"{fmt(sa)}\n  {fmt(sb)}"


def _require_float(op: str, *tensors: Tensor, names: Sequence[str] = ("input",)) -> None:
    for t, name in zip(tensors, names):
        if t.dtype.kind != "f" or t.dtype.itemsize > 8:
            raise TypeError(
                f"{op}: {name} must be a floating-point tensor, got dtype {t.dtype} (convert with .astype(np.float32))"
            )


def _float_tensor(op: str, x: Any) -> Tensor:
    """The input of ``op`` as a tensor, which must be floating-point."""
    x = _tensor(op, x)
    _require_float(op, x)
    return x


def _axes(op: str, axis: Axis, ndim: int) -> tuple[int, ...]:
    """Normalise ``axis`` (None, int or tuple) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    try:
        items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}") from None
    out = []
    for a in items:
        if not isinstance(a, (int, np.integer)) or isinstance(a, (bool, np.bool_)):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def _axis(op: str, axis: Any, ndim: int) -> int:
    """One axis (an int, not a tuple), normalised to be non-negative."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return _axes(op, int(axis), ndim)[0]


# --------------------------------------------------------------------------- elementwise


def add(a: Any, b: Any) -> Tensor:
    """a + b with NumPy broadcasting."""
    return P.Add.apply(*_binary("add", a, b))


def sub(a: Any, b: Any) -> Tensor:
    """a - b with NumPy broadcasting."""
    return P.Sub.apply(*_binary("sub", a, b))


def mul(a: Any, b: Any) -> Tensor:
    """a * b with NumPy broadcasting."""
    return P.Mul.apply(*_binary("mul", a, b))


def div(a: Any, b: Any) -> Tensor:
    """a / b with NumPy broadcasting."""
    return P.Div.apply(*_binary("div", a, b))


def neg(x: Tensor) -> Tensor:
    x = _tensor("neg", x)
    if x.dtype == np.bool_:
        raise TypeError("neg: not defined for bool tensors (use ~ or np.logical_not on .data)")
    return P.Neg.apply(x)


def pow(x: Tensor, exponent: float) -> Tensor:
    """x ** exponent for a constant (Python or NumPy) scalar exponent."""
    if (
        isinstance(exponent, (Tensor, str, bytes, bool, np.bool_))
        or np.ndim(exponent) != 0
        or np.asarray(exponent).dtype.kind not in "iuf"
    ):
        raise TypeError(
            f"pow: the exponent must be a real scalar constant, got {exponent!r}; "
            "for x ** t with a tensor t use exp(t * log(x))"
        )
    x = _tensor("pow", x)
    p = float(exponent)
    if x.dtype.kind != "f" and not (p.is_integer() and p >= 0):
        raise TypeError(
            f"pow: a {x.dtype} tensor can only be raised to a non-negative integer power, got {exponent}; "
            "convert it first with .astype(np.float32)"
        )
    if x.dtype == np.bool_:
        raise TypeError("pow: not defined for bool tensors")
    return P.Pow.apply(x, p)


def exp(x: Tensor) -> Tensor:
    return P.Exp.apply(_float_tensor("exp", x))


def log(x: Tensor) -> Tensor:
    """Natural logarithm (log(0) = -inf, log of a negative = nan, as NumPy)."""
    return P.Log.apply(_float_tensor("log", x))


def sqrt(x: Tensor) -> Tensor:
    return P.Pow.apply(_float_tensor("sqrt", x), 0.5)


def relu(x: Tensor) -> Tensor:
    """max(x, 0), with relu'(0) = 0."""
    return P.ReLU.apply(_tensor("relu", x))


def sigmoid(x: Tensor) -> Tensor:
    return P.Sigmoid.apply(_float_tensor("sigmoid", x))


def tanh(x: Tensor) -> Tensor:
    return P.Tanh.apply(_float_tensor("tanh", x))


@declare(mean_of_sides(at=0.0))
def abs(x: Tensor) -> Tensor:
    """|x| = x * sign(x); the gradient at 0 is 0, as in PyTorch."""
    x = _tensor("abs", x)
    if x.dtype == np.bool_:
        return x
    return x * Tensor(np.sign(x.data))


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)), stable for any x, with the exact derivative sigmoid(x) everywhere;
    softplus(inf) = inf with gradient 1, as in PyTorch."""
    x = _float_tensor("softplus", x)
    infinite = x.data == np.inf
    if infinite.any():  # the shift below would give inf - inf there
        return where(infinite, x, softplus(where(infinite, 0.0, x)))
    m = Tensor(np.maximum(x.data, 0))  # a constant shift: log(e^-m + e^(x-m)) + m
    return m + ((-m).exp() + (x - m).exp()).log()


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``cond ? a : b`` elementwise; ``cond`` is a boolean constant."""
    given = cond.data if isinstance(cond, Tensor) else cond
    raw = np.asarray(given)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"where: cond must be a boolean array, got dtype {raw.dtype}")
    # A private copy: the tape keeps cond for the backward pass, and the caller's mask stays theirs.
    c = raw.astype(bool, copy=raw is given or raw.dtype != np.bool_)
    ta, tb = _binary("where", a, b)
    try:
        np.broadcast_shapes(c.shape, ta.shape, tb.shape)
    except ValueError:
        raise ValueError(
            f"where: cond of shape {c.shape} and values of shapes {ta.shape} and {tb.shape} "
            "cannot be broadcast together"
        ) from None
    return P.Where.apply(c, ta, tb)


@declare(passes_through())
def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """Limit values to [min, max]; the gradient passes where min <= x <= max (PyTorch's clamp)."""
    x = _tensor("clip", x)
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and (
            isinstance(bound, (str, bytes, Tensor)) or np.asarray(bound).dtype.kind not in "biuf"
        ):
            raise TypeError(f"clip: {name} must be a number (or an array of numbers), got {bound!r}")
    if min is not None and max is not None and np.any(np.asarray(min) > np.asarray(max)):
        raise ValueError(f"clip: min {min} is greater than max {max}")
    inside = np.ones(x.shape, dtype=bool)
    if min is not None:
        inside &= x.data >= min
    if max is not None:
        inside &= x.data <= max
    return P.Where.apply(inside, x, Tensor(np.clip(x.data, min, max)))


@declare(mean_of_sides())
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient (as PyTorch)."""
    ta, tb = _binary("maximum", a, b)
    if not (ta.requires_grad or tb.requires_grad):  # a constant: NumPy's result and dtype exactly
        return Tensor(np.maximum(ta.data, tb.data))
    return where(ta.data > tb.data, ta, where(ta.data < tb.data, tb, ta * 0.5 + tb * 0.5))


@declare(mean_of_sides())
def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient (as PyTorch)."""
    ta, tb = _binary("minimum", a, b)
    if not (ta.requires_grad or tb.requires_grad):  # a constant: NumPy's result and dtype exactly
        return Tensor(np.minimum(ta.data, tb.data))
    return where(ta.data < tb.data, ta, where(ta.data > tb.data, tb, ta * 0.5 + tb * 0.5))


def astype(x: Tensor, dtype: Any) -> Tensor:
    """Convert to ``dtype``; differentiable between floating types (a cast to an integer or bool
    dtype gives a constant, as a comparison does)."""
    x = _tensor("astype", x)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype: {dtype!r} is not a NumPy dtype") from None
    if dt.kind not in "biufc":
        raise TypeError(f"astype: tensors hold numbers or booleans, cannot convert to {dt}")
    if dt == x.dtype:
        return x
    return P.Cast.apply(x, dt)


def compare(fn: Callable[[Any, Any], np.ndarray], a: Any, b: Any) -> Tensor:
    """A comparison (not differentiable): a boolean tensor."""
    ta, tb = _binary(fn.__name__, a, b)
    return Tensor(fn(ta.data, tb.data))


# --------------------------------------------------------------------------- reductions


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (None: all)."""
    x = _tensor("sum", x)
    return P.Sum.apply(x, _axes("sum", axis, x.ndim), keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``; the mean of zero elements is NaN, as in NumPy and PyTorch."""
    x = _tensor("mean", x)
    axes = _axes("mean", axis, x.ndim)
    if x.dtype == np.float16:  # reduce in float32, as PyTorch: the sum and the count overflow float16
        return astype(mean(astype(x, np.float32), axes, keepdims), np.float16)
    count = math.prod(x.shape[a] for a in axes)
    return sum(x, axes, keepdims) / count


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis`` (NumPy's default ``ddof=0``)."""
    x = _tensor("var", x)
    if not isinstance(ddof, (int, np.integer)) or isinstance(ddof, bool) or ddof < 0:
        raise ValueError(f"var: ddof must be a non-negative int, got {ddof!r}")
    axes = _axes("var", axis, x.ndim)
    if x.dtype == np.float16:  # in float32, as PyTorch (see mean)
        return astype(var(astype(x, np.float32), axes, keepdims, ddof), np.float16)
    count = math.prod(x.shape[a] for a in axes)
    centred = x - mean(x, axes, keepdims=True)
    return sum(centred * centred, axes, keepdims) / builtins.max(count - ddof, 0)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; the gradient goes to the first maximum in row-major order."""
    x = _tensor("max", x)
    axes = _axes("max", axis, x.ndim)
    if x.size == 0 and (not axes or 0 in (x.shape[a] for a in axes)):
        raise ValueError(
            f"max: cannot reduce over zero-size axes {axes} of a tensor of shape {x.shape} "
            "(a maximum of no elements is undefined)"
        )
    return P.Max.apply(x, axes, keepdims)


@declare(first_min())
def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis``; the gradient goes to the first minimum in row-major order."""
    x = _tensor("min", x)
    if x.dtype == np.bool_:
        raise TypeError("min: not defined for bool tensors")
    axes = _axes("min", axis, x.ndim)
    if x.size == 0 and (not axes or 0 in (x.shape[a] for a in axes)):
        raise ValueError(
            f"min: cannot reduce over zero-size axes {axes} of a tensor of shape {x.shape} "
            "(a minimum of no elements is undefined)"
        )
    return -max(-x, axes, keepdims)


# --------------------------------------------------------------------------- shape


def _shape_arg(shape: tuple[Any, ...], op: str = "reshape", what: str = "shape") -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, (bool, np.bool_)):
            raise TypeError(f"{op}: {what} must be ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def reshape(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """Reshape (one dimension may be -1), e.g. ``x.reshape(n, -1)`` or ``x.reshape((n, -1))``."""
    x = _tensor("reshape", x)
    new = _shape_arg(shape)
    if new == x.shape:
        return x
    if any(n < -1 for n in new) or new.count(-1) > 1:
        raise ValueError(f"reshape: invalid shape {new}: sizes must be >= 0, with at most one -1")
    try:
        np.empty(x.shape, dtype=[]).reshape(new)  # validates without touching the data
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {new}"
        ) from None
    return P.Reshape.apply(x, new)


def transpose(x: Tensor, *axes: int | Sequence[int]) -> Tensor:
    """Permute axes (no arguments: reverse them), as ``ndarray.transpose``."""
    x = _tensor("transpose", x)
    perm = _shape_arg(axes, "transpose", "axes") if axes else tuple(reversed(range(x.ndim)))
    if (
        len(perm) != x.ndim
        or any(not -x.ndim <= a < x.ndim for a in perm)
        or sorted(a % x.ndim for a in perm) != list(range(x.ndim))
    ):
        raise ValueError(f"transpose: {perm} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    perm = tuple(a % x.ndim for a in perm)
    return x if perm == tuple(range(x.ndim)) else P.Permute.apply(x, perm)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    x = _tensor("swapaxes", x)
    a, b = _axis("swapaxes", axis1, x.ndim), _axis("swapaxes", axis2, x.ndim)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, *perm)


def flatten(x: Tensor, start_axis: int = 1, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis..end_axis`` into one (default: keep the batch axis)."""
    x = _tensor("flatten", x)
    start, end = _axis("flatten", start_axis, x.ndim), _axis("flatten", end_axis, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    return reshape(x, x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :])


def broadcast_to(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    x = _tensor("broadcast_to", x)
    new = _shape_arg(shape, "broadcast_to")
    try:
        np.broadcast_shapes(x.shape, new)
        assert np.broadcast_shapes(x.shape, new) == new
    except (ValueError, AssertionError):
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {new}") from None
    return x if new == x.shape else P.Expand.apply(x, new)


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with basic slicing and integer/boolean array indexing, as NumPy."""
    x = _tensor("getitem", x)
    # Index arrays are copied: the tape keeps them for the backward pass, the caller's stay theirs.
    if isinstance(index, (Tensor, np.ndarray)):
        index = np.array(index.data if isinstance(index, Tensor) else index)
    elif isinstance(index, tuple):
        index = tuple(
            np.array(i.data if isinstance(i, Tensor) else i) if isinstance(i, (Tensor, np.ndarray)) else i
            for i in index
        )
    elif isinstance(index, list):
        index = np.asarray(index)
    try:
        return P.GetItem.apply(x, index)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's ``pad_width`` convention: an int, a ``(before, after)``
    pair for every axis, or one pair per axis."""
    x = _tensor("pad", x)
    raw = np.asarray(pad_width) if not isinstance(pad_width, str) else np.asarray(None)
    if raw.dtype.kind not in "iu" and raw.size:
        raise TypeError(f"pad: pad_width must be an int or (before, after) pairs of ints, got {pad_width!r}")
    try:
        widths = np.broadcast_to(raw.astype(np.int64), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor of shape {x.shape}") from None
    if (widths < 0).any():
        raise ValueError(f"pad: negative padding {pad_width!r}")
    if isinstance(value, (str, bytes, Tensor)) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "biuf":
        raise TypeError(f"pad: value must be a number, got {value!r}")
    if x.ndim == 0:
        return x  # nothing to pad, as np.pad
    return P.Pad.apply(x, tuple((int(a), int(b)) for a, b in widths), value)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"concatenate: expects a list or tuple of tensors, got {type(tensors).__name__}")
    ts = [_as_tensor(t, None, "concatenate", f"tensor {i}") for i, t in enumerate(tensors)]
    if not ts:
        raise ValueError("concatenate: needs at least one tensor")
    if ts[0].ndim == 0:
        raise ValueError("concatenate: cannot join 0-d tensors (use stack)")
    ax = _axis("concatenate", axis, ts[0].ndim)
    for i, t in enumerate(ts):
        if t.ndim != ts[0].ndim or t.shape[:ax] + t.shape[ax + 1 :] != ts[0].shape[:ax] + ts[0].shape[ax + 1 :]:
            raise ValueError(
                f"concatenate: tensor {i} has shape {t.shape}, which does not match {ts[0].shape} outside axis {axis}"
            )
    return P.Concatenate.apply(ax, *ts)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"stack: expects a list or tuple of tensors, got {type(tensors).__name__}")
    ts = [_as_tensor(t, None, "stack", f"tensor {i}") for i, t in enumerate(tensors)]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    ax = _axis("stack", axis, ts[0].ndim + 1)
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {ts[0].shape}")
    return concatenate([reshape(t, t.shape[:ax] + (1,) + t.shape[ax:]) for t in ts], axis=ax)


# --------------------------------------------------------------------------- linear algebra


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with ``numpy.matmul``'s rules: 1-D operands are promoted to a row
    (left) or a column (right) and that axis is removed again; batch axes broadcast."""
    ta, tb = _as_tensor(a, None, "matmul", "first operand"), _as_tensor(b, None, "matmul", "second operand")
    if ta.ndim == 0 or tb.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {ta.shape} and {tb.shape}")
    k_a, k_b = ta.shape[-1], tb.shape[-2] if tb.ndim > 1 else tb.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: inner dimensions {k_a} vs {k_b} do not match (shapes {ta.shape} and {tb.shape})")
    if ta.dtype != tb.dtype and ta.dtype.kind == tb.dtype.kind == "f":
        raise TypeError(f"matmul: dtypes {ta.dtype} and {tb.dtype} differ; convert one with .astype()")
    try:
        np.broadcast_shapes(ta.shape[:-2], tb.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {ta.shape} and {tb.shape} cannot be broadcast") from None
    a2 = reshape(ta, (1, k_a)) if ta.ndim == 1 else ta
    b2 = reshape(tb, (k_b, 1)) if tb.ndim == 1 else tb
    out = P.MatMul.apply(a2, b2)
    if ta.ndim == 1:  # drop the promoted row axis first, then the promoted column axis
        out = reshape(out, out.shape[:-2] + out.shape[-1:])
    if tb.ndim == 1:
        out = reshape(out, out.shape[:-1])
    return out


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias.   x: (..., in), weight: (out, in), bias: (out,) -> (..., out)."""
    x, weight = _tensor("linear", x), _tensor("linear", weight, "weight")
    bias = None if bias is None else _tensor("linear", bias, "bias")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1] if x.ndim else 'no'} features (shape {x.shape}) "
            f"but weight {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    _require_float("linear", x, weight, names=("input", "weight"))
    for name, t in (("input", x), ("bias", bias)):
        if t is not None and t.dtype != weight.dtype:
            raise TypeError(
                f"linear: {name} dtype {t.dtype} differs from weight dtype {weight.dtype}; convert with .astype()"
            )
    flat = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x
    out = matmul(flat, weight.T) if bias is None else P.MatMulAdd.apply(flat, weight.T, bias)
    return reshape(out, x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else out


# --------------------------------------------------------------------------- convolution and pooling


def _check_image(op: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    _require_float(op, x)


def _out_size(
    op: str,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    sizes = []
    for axis, k, s, p, d in zip(("height", "width"), kernel, stride, padding, dilation):
        n = x_shape[2 if axis == "height" else 3] + 2 * p
        span = d * (k - 1) + 1
        if span > n:
            raise ValueError(
                f"{op}: kernel {axis} {k}"
                + (f" (dilated to {span})" if d > 1 else "")
                + f" is larger than the padded input {axis} {n} (input shape {x_shape}, padding {p})"
            )
        sizes.append((n - span) // s + 1)
    return sizes[0], sizes[1]


def unfold(
    x: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    pad_value: float = 0.0,
) -> Tensor:
    """Sliding windows of an image: (N, C, H, W) -> (N, OH, OW, kh, kw, C).

    The building block of :func:`conv2d` and the pools. The layout differs from
    ``torch.nn.functional.unfold`` (which returns (N, C*kh*kw, L)): windows are indexed first and
    channels last, so that reshaping to (N*OH*OW, kh*kw*C) gives the im2col matrix directly.
    """
    x = _tensor("unfold", x)
    _check_image("unfold", x)
    k = pair("unfold", "kernel_size", kernel_size, 1)
    s, p, d = (
        pair("unfold", "stride", stride, 1),
        pair("unfold", "padding", padding, 0),
        pair("unfold", "dilation", dilation, 1),
    )
    _out_size("unfold", x.shape, k, s, p, d)
    return P.Unfold.apply(_pad_hw(x, p, pad_value), k, s, d)


def _pad_hw(x: Tensor, padding: tuple[int, int], value: float) -> Tensor:
    """x (N, C, H, W) padded by ``padding`` rows and columns of ``value`` on each side (x itself if none)."""
    ph, pw = padding
    return P.Pad.apply(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), value) if (ph, pw) != (0, 0) else x


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch).

    x: (N, C_in, H, W), weight: (C_out, C_in, kh, kw), bias: (C_out,) -> (N, C_out, OH, OW),
    OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1. Computed as unfold and a windowed matrix product
    (im2col + one GEMM), so the backward is the product's two transposes and a fold.
    """
    x, weight = _tensor("conv2d", x), _tensor("conv2d", weight, "weight")
    bias = None if bias is None else _tensor("conv2d", bias, "bias")
    _check_image("conv2d", x)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in, kh, kw), got shape {weight.shape}")
    c = x.shape[1]
    c_out, c_in, kh, kw = weight.shape
    if c != c_in:
        raise ValueError(f"conv2d: input has {c} channels (shape {x.shape}) but weight {weight.shape} expects {c_in}")
    if weight.dtype != x.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"conv2d: bias has shape {bias.shape}, expected ({c_out},)")
    if bias is not None and bias.dtype != x.dtype:
        raise TypeError(f"conv2d: bias dtype {bias.dtype} differs from input dtype {x.dtype}")
    if kh < 1 or kw < 1:
        raise ValueError(f"conv2d: weight {weight.shape} has an empty kernel ({kh}x{kw}); kernels must be at least 1x1")
    s, p, d = (
        pair("conv2d", "stride", stride, 1),
        pair("conv2d", "padding", padding, 0),
        pair("conv2d", "dilation", dilation, 1),
    )
    _out_size("conv2d", x.shape, (kh, kw), s, p, d)  # a kernel larger than the input: an error naming conv2d
    out = P.Convolution.apply(_pad_hw(x, p, 0.0), transpose(weight, 2, 3, 1, 0), bias, s, d)  # (N, OH, OW, C_out)
    # A batch-inner (OH, OW, N, C_out) result seen as NCHW: no transpose copy (see Convolution).
    return transpose(out, 0, 3, 1, 2)


def _pool_windows(
    op: str,
    x: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
    pad_value: float,
) -> Tensor:
    """Pooling windows as a (N, OH, OW, kh, kw, C) view, after PyTorch's argument checks."""
    x = _tensor(op, x)
    _check_image(op, x)
    k = pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else pair(op, "stride", stride, 1)
    p, d = pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    _out_size(op, x.shape, k, s, p, d)  # a kernel larger than the input: an error naming this op
    return unfold(x, k, s, p, d, pad_value=pad_value)


@declare(first_max())
def max_pool2d(
    x: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0, dilation: IntOrPair = 1
) -> Tensor:
    """Max pooling: (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    Padding counts as -inf. The gradient of each window goes to its first maximum in row-major
    order, as in PyTorch.
    """
    windows = _pool_windows("max_pool2d", x, kernel_size, stride, padding, dilation, -np.inf)
    return transpose(max(windows, axis=(3, 4)), 0, 3, 1, 2)


def avg_pool2d(x: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Tensor:
    """Average pooling: (N, C, H, W) -> (N, C, OH, OW); zero padding is counted in the average
    (PyTorch's default ``count_include_pad=True``)."""
    windows = _pool_windows("avg_pool2d", x, kernel_size, stride, padding, 1, 0.0)
    return transpose(mean(windows, axis=(3, 4)), 0, 3, 1, 2)


# --------------------------------------------------------------------------- softmax family


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed stably (the maximum is subtracted first)."""
    x = _float_tensor("log_softmax", x)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"log_softmax: axis must be an int, got {axis!r}")
    ax = _axes("log_softmax", axis, x.ndim)[0]
    if x.shape[ax] == 0:
        raise ValueError(f"log_softmax: axis {axis} of shape {x.shape} has no elements to normalise over")
    return P.LogSoftmax.apply(x, ax)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return P.Exp.apply(log_softmax(x, axis))


def logsumexp(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x), axis)) without overflow; its gradient is softmax(x)."""
    x = _float_tensor("logsumexp", x)
    axes = _axes("logsumexp", axis, x.ndim)
    m = x.data.max(axis=axes, keepdims=True) if x.size else np.zeros(())
    m = Tensor(np.where(np.isfinite(m), m, 0).astype(x.dtype))  # a constant shift
    out = log(sum(exp(x - m), axes, keepdims=True)) + m
    return out if keepdims else reshape(out, tuple(n for i, n in enumerate(x.shape) if i not in axes))


# --------------------------------------------------------------------------- losses


def _reduce(op: str, losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(losses)
    if reduction == "sum":
        return sum(losses)
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _class_targets(op: str, scores: Tensor, target: Any) -> np.ndarray:
    try:
        t = np.asarray(target.data if isinstance(target, Tensor) else target)
    except (TypeError, ValueError):
        raise TypeError(
            f"{op}: target must hold integer class indices, got {type(target).__name__} {str(target)[:40]}"
        ) from None
    if scores.ndim != 2:
        raise ValueError(f"{op}: expected scores of shape (N, C), got {scores.shape}")
    _require_float(op, scores)
    if scores.shape[1] == 0 and scores.shape[0]:
        raise ValueError(f"{op}: scores of shape {scores.shape} have no classes")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {t.dtype}")
    if t.shape != scores.shape[:1]:
        raise ValueError(f"{op}: target has shape {t.shape}, expected ({scores.shape[0]},) for scores {scores.shape}")
    if t.size and (t.min() < 0 or t.max() >= scores.shape[1]):
        bad = t.max() if t.max() >= scores.shape[1] else t.min()
        raise ValueError(f"{op}: target {bad} is out of range for {scores.shape[1]} classes (0..{scores.shape[1] - 1})")
    return t


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer class targets.   log_probs: (N, C), target: (N,)."""
    log_probs = _tensor("nll_loss", log_probs)
    t = _class_targets("nll_loss", log_probs, target)
    target_class = np.zeros(log_probs.shape, dtype=bool)
    target_class[np.arange(len(t)), t] = True
    # picked with where, not multiplied by a one-hot: -inf (a masked logit) times 0 would be NaN
    return _reduce("nll_loss", -sum(where(target_class, log_probs, 0.0), axis=1), reduction)


def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of raw scores.   logits: (N, C), target: (N,) integer classes."""
    logits = _tensor("cross_entropy", logits)
    _class_targets("cross_entropy", logits, target)
    return nll_loss(log_softmax(logits, axis=1), target, reduction)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``input`` and ``target`` must have the same shape."""
    input = _tensor("mse_loss", input)
    t = _as_tensor(target, input, "mse_loss", "target")
    if t.shape != input.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {t.shape} differ")
    diff = input - t
    return _reduce("mse_loss", diff * diff, reduction)


def binary_cross_entropy(probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """-(t log p + (1-t) log(1-p)) of probabilities; each log is clamped at -100, as PyTorch."""
    probs = _tensor("binary_cross_entropy", probs)
    _require_float("binary_cross_entropy", probs)
    t = _as_tensor(target, probs, "binary_cross_entropy", "target")
    if t.shape != probs.shape:
        raise ValueError(f"binary_cross_entropy: input shape {probs.shape} and target shape {t.shape} differ")
    if probs.size and (np.nanmin(probs.data) < 0 or np.nanmax(probs.data) > 1):
        raise ValueError(
            f"binary_cross_entropy: input must hold probabilities in [0, 1], got values in "
            f"[{np.nanmin(probs.data):g}, {np.nanmax(probs.data):g}]; for raw scores use "
            "binary_cross_entropy_with_logits"
        )
    losses = -(t * _clamped_log(probs) + (1 - t) * _clamped_log(1 - probs))
    return _reduce("binary_cross_entropy", losses, reduction)


def _clamped_log(p: Tensor) -> Tensor:
    """max(log p, -100) with a finite gradient everywhere: 0 where the clamp is active
    (clipping p first keeps Log's backward away from 0/0 at p = 0)."""
    return clip(log(clip(p, min=math.exp(-100.0))), min=-100.0)


def binary_cross_entropy_with_logits(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of raw scores, stable for any logit: softplus(z) - t z."""
    logits = _tensor("binary_cross_entropy_with_logits", logits)
    t = _as_tensor(target, logits, "binary_cross_entropy_with_logits", "target")
    if t.shape != logits.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {logits.shape} and target shape {t.shape} differ"
        )
    return _reduce("binary_cross_entropy_with_logits", softplus(logits) - logits * t, reduction)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only)."""
    x = _tensor("dropout", x)
    if isinstance(p, (str, bytes, bool)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout: p must be a number in [0, 1], got {p!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = default_generator().random(x.shape) >= p
    return x * Tensor(keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype))
