"""Every op of tinygrad_cnn as a function: input checks, then primitives or compositions of them.

Nothing here writes a backward rule. Composites (conv2d, the pools, softmax, the losses, ...)
are built from the primitives in :mod:`tinygrad_cnn.primitives`, and reverse mode follows from
theirs. Names, arguments, shapes and defaults follow PyTorch (NCHW images, conv weight
``(C_out, C_in, kh, kw)``, linear weight ``(out, in)``, ``dim``/``keepdim``, with NumPy's
``axis``/``keepdims`` accepted as aliases, as PyTorch accepts them). Dtypes promote as in PyTorch
(see :mod:`tinygrad_cnn._dtypes`). The neural-network ones are also at PyTorch's path,
:mod:`tinygrad_cnn.nn.functional`.
"""

from __future__ import annotations

import builtins
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _dtypes
from . import primitives as P
from ._tensor import Axis, Tensor
from .arguments import (
    as_constant as _as_tensor,
)
from .arguments import (
    check_image as _check_image,
)
from .arguments import (
    conv_weight_and_bias as _conv_weight_and_bias,
)
from .arguments import (
    dim as _axis,
)
from .arguments import (
    dims as _axes,
)
from .arguments import (
    float_tensor as _float_tensor,
)
from .arguments import (
    require_float as _require_float,
)
from .arguments import (
    tensor_argument as _tensor,
)
from .random import default_generator
from .testing.conventions import declare, first_max, mean_of_sides, passes_through, split_max, split_min
from .validation import pair, pool_arguments

IntOrPair = int | tuple[int, int]

_wrap = Tensor.wrap

# --------------------------------------------------------------------------- helpers


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float, bool, complex, np.number, np.bool_))


def _promoted(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` as tensors of their common dtype under PyTorch's promotion rules (a Python
    scalar takes the tensor's dtype unless it is of a higher kind: int tensor + 2.5 is float32)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.dtype == b.dtype:
            return a, b
        dt = _dtypes.result_type(a.array, b.array)
    elif isinstance(a, Tensor) and _is_scalar(b):
        if a.dtype.kind == "f" and not isinstance(b, (complex, np.complexfloating)):
            return a, _wrap(np.asarray(b, dtype=a.dtype))
        dt = _dtypes.result_type(a.array, b)
    elif isinstance(b, Tensor) and _is_scalar(a):
        if b.dtype.kind == "f" and not isinstance(a, (complex, np.complexfloating)):
            return _wrap(np.asarray(a, dtype=b.dtype)), b
        dt = _dtypes.result_type(a, b.array)
    else:
        ta, tb = _as_tensor(a, None, op, "first operand"), _as_tensor(b, None, op, "second operand")
        dt = _dtypes.result_type(ta.array, tb.array)
        a, b = ta, tb
    ta = _cast(a, dt) if isinstance(a, Tensor) else _wrap(np.asarray(a, dtype=dt))
    tb = _cast(b, dt) if isinstance(b, Tensor) else _wrap(np.asarray(b, dtype=dt))
    return ta, tb


def _cast(x: Tensor, dtype: np.dtype) -> Tensor:
    return x if x.dtype == dtype else P.Cast.apply(x, dtype)


def _binary(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    ta, tb = _promoted(op, a, b)
    if ta.shape != tb.shape:
        try:
            np.broadcast_shapes(ta.shape, tb.shape)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {ta.shape} and {tb.shape} cannot be broadcast together "
                f"(aligned from the right:\n  {_aligned(ta.shape, tb.shape)})"
            ) from None
    return ta, tb


def _dim(op: str, dim: Any, axis: Any, name: str = "dim") -> Any:
    """``dim``, or NumPy's alias ``axis`` (not both)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both {name}={dim!r} and its alias axis={axis!r}")
        return axis
    return dim


def _keepdim(op: str, keepdim: bool, keepdims: bool | None) -> bool:
    """``keepdim``, or NumPy's alias ``keepdims``."""
    return bool(keepdim if keepdims is None else keepdims)


def _aligned(sa: tuple[int, ...], sb: tuple[int, ...]) -> str:
    n = builtins.max(len(sa), len(sb))

    def fmt(s: tuple[int, ...]) -> str:
        pad = " ".join(" " * 5 for _ in range(n - len(s))) + " " * (n > len(s) and len(s) > 0)
        return pad + " ".join(f"{d:>5}" for d in s)

    return f"{fmt(sa)}\n  {fmt(sb)}"


# --------------------------------------------------------------------------- elementwise


def _scaled(op: str, b: Any, alpha: Any) -> Any:
    if alpha == 1:
        return b
    if isinstance(alpha, (bool, np.bool_)) or not _is_scalar(alpha):
        raise TypeError(f"{op}: alpha must be a number, got {alpha!r}")
    return mul(b, alpha)


def add(a: Any, b: Any, *, alpha: Any = 1) -> Tensor:
    """a + alpha * b with broadcasting."""
    return P.Add.apply(*_binary("add", a, _scaled("add", b, alpha)))


def sub(a: Any, b: Any, *, alpha: Any = 1) -> Tensor:
    """a - alpha * b with broadcasting."""
    return P.Sub.apply(*_binary("sub", a, _scaled("sub", b, alpha)))


subtract = sub


def mul(a: Any, b: Any) -> Tensor:
    """a * b with broadcasting."""
    return P.Mul.apply(*_binary("mul", a, b))


multiply = mul


def div(a: Any, b: Any, *, rounding_mode: str | None = None) -> Tensor:
    """a / b with broadcasting; integers divide to the default float dtype, as in PyTorch.
    ``rounding_mode="trunc"`` or ``"floor"``: rounded (a constant, keeping integer dtypes)."""
    ta, tb = _binary("div", a, b)
    if rounding_mode is not None:
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(
                f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {rounding_mode!r}"
            )
        if ta.dtype.kind in "biu":
            if (tb.array == 0).any():
                raise ZeroDivisionError("ZeroDivisionError: integer division by zero")
            q = np.floor_divide(ta.array, tb.array)
            if rounding_mode == "trunc":
                q = q + ((np.remainder(ta.array, tb.array) != 0) & ((ta.array < 0) != (tb.array < 0)))
            return _wrap(np.asarray(q, dtype=ta.dtype))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.true_divide(ta.array, tb.array)
        return _wrap(np.floor(q) if rounding_mode == "floor" else np.trunc(q))
    if ta.dtype.kind in "biu":
        dt = _dtypes.get_default_dtype()
        ta, tb = _cast(ta, dt), _cast(tb, dt)
    return P.Div.apply(ta, tb)


divide = true_divide = div


def remainder(a: Any, b: Any) -> Tensor:
    """a - floor(a / b) * b (Python's and PyTorch's sign convention: the sign of b)."""
    ta, tb = _binary("remainder", a, b)
    if ta.dtype.kind in "iu" and (tb.array == 0).any():
        raise ZeroDivisionError("ZeroDivisionError: integer division by zero")
    q = div(ta.detach(), tb.detach(), rounding_mode="floor")
    return ta - q * tb if ta.requires_grad or tb.requires_grad else _wrap(np.remainder(ta.array, tb.array))


def neg(x: Tensor) -> Tensor:
    x = _tensor("neg", x)
    if x.dtype == np.bool_:
        raise TypeError(
            "neg: negation, the `-` operator, on a bool tensor is not supported. "
            "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead."
        )
    return P.Neg.apply(x)


negative = neg


def pow(x: Any, exponent: Any) -> Tensor:
    """x ** exponent, each a tensor or a number (broadcast). With a constant exponent the rule is
    ``p * x ** (p - 1)``; with a tensor exponent e, ``d/de = x ** e * log(x)`` (0 where x == 0)."""
    if isinstance(exponent, Tensor) or not _is_scalar(exponent):
        if isinstance(exponent, (str, bytes)):
            raise TypeError(f"pow: the exponent must be a number or a tensor, got {exponent!r}")
        tx, te = _binary("pow", x, exponent)
        if not (tx.requires_grad or te.requires_grad):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _wrap(np.asarray(np.power(tx.array, te.array)))
        _require_float("pow", tx)
        return P.PowTensor.apply(tx, te)
    if isinstance(exponent, (bool, np.bool_)) or isinstance(exponent, (complex, np.complexfloating)):
        raise TypeError(f"pow: the exponent must be a real number or a tensor, got {exponent!r}")
    x = _tensor("pow", x)
    if x.dtype == np.bool_:
        raise TypeError("pow: not defined for bool tensors")
    if x.dtype.kind != "f" and not float(exponent).is_integer():
        x = _cast(x, _dtypes.get_default_dtype())
    if x.dtype.kind != "f" and exponent < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return P.Pow.apply(x, float(exponent))


def exp(x: Tensor) -> Tensor:
    return P.Exp.apply(_float_tensor("exp", x))


def log(x: Tensor) -> Tensor:
    """Natural logarithm (log(0) = -inf, log of a negative = nan, as NumPy)."""
    return P.Log.apply(_float_tensor("log", x))


def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate near 0."""
    return P.Log1p.apply(_float_tensor("log1p", x))


def log2(x: Tensor) -> Tensor:
    """Base-2 logarithm (exact at powers of 2); integers compute in the default float dtype."""
    return P.Log.apply(_float_input("log2", x), 2)


def log10(x: Tensor) -> Tensor:
    """Base-10 logarithm (exact at powers of 10); integers compute in the default float dtype."""
    return P.Log.apply(_float_input("log10", x), 10)


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate near 0; integers compute in the default float dtype."""
    return P.Expm1.apply(_float_input("expm1", x))


def reciprocal(x: Tensor) -> Tensor:
    """1 / x; integers divide in the default float dtype, as PyTorch."""
    return div(1.0, _float_input("reciprocal", x))


def _float_input(op: str, x: Any) -> Tensor:
    """x as a tensor, integers and bools cast to the default float dtype (PyTorch's unary float ops)."""
    x = _tensor(op, x)
    return x if x.dtype.kind == "f" else _cast(x, _dtypes.get_default_dtype())


def sqrt(x: Tensor) -> Tensor:
    return P.Pow.apply(_float_tensor("sqrt", x), 0.5)


def rsqrt(x: Tensor) -> Tensor:
    """1 / sqrt(x)."""
    return P.Pow.apply(_float_tensor("rsqrt", x), -0.5)


def square(x: Tensor) -> Tensor:
    return pow(x, 2)


def sin(x: Tensor) -> Tensor:
    return P.Sin.apply(_float_tensor("sin", x))


def cos(x: Tensor) -> Tensor:
    return P.Elementwise.apply(_float_input("cos", x), "cos")


def _elementwise(name: str) -> Callable[[Tensor], Tensor]:
    def op(x: Tensor) -> Tensor:
        return P.Elementwise.apply(_float_input(name, x), name)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{name}(x) elementwise (integers as the default float dtype); derivative: primitives.ELEMENTWISE."
    return op


tan = _elementwise("tan")
asin = arcsin = _elementwise("asin")
acos = arccos = _elementwise("acos")
atan = arctan = _elementwise("atan")
sinh = _elementwise("sinh")
cosh = _elementwise("cosh")
asinh = arcsinh = _elementwise("asinh")
acosh = arccosh = _elementwise("acosh")
atanh = arctanh = _elementwise("atanh")


def relu(x: Tensor) -> Tensor:
    """max(x, 0), with relu'(0) = 0."""
    return P.ReLU.apply(_tensor("relu", x))


def sigmoid(x: Tensor) -> Tensor:
    return P.Sigmoid.apply(_float_tensor("sigmoid", x))


def tanh(x: Tensor) -> Tensor:
    return P.Tanh.apply(_float_tensor("tanh", x))


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1, and 0 at nan (as PyTorch); its gradient is 0, and the result requires grad when x does."""
    x = _tensor("sign", x)
    if x.dtype == np.bool_:
        return _zero_gradient(x.array.copy(), x)
    with np.errstate(invalid="ignore"):
        value = np.sign(x.array)
    if x.dtype.kind == "f":
        value[np.isnan(value)] = 0
    return _zero_gradient(value, x)


sgn = sign


def _zero_gradient(value: np.ndarray | Tensor, *inputs: Tensor) -> Tensor:
    """``value`` as the result of an op of ``inputs`` whose gradient is 0 (roundings, ``sign``, the
    sign operand of ``copysign``): it requires grad when an input does, as in PyTorch, and the
    backward pass sends those inputs zeros (a ``Where`` that always picks ``value``)."""
    out = value if isinstance(value, Tensor) else _wrap(value)
    for t in inputs:
        if t.requires_grad:
            out = P.Where.apply(np.ones((), dtype=bool), out, _cast(t, out.dtype))
    return out


@declare(mean_of_sides(at=0.0))
def abs(x: Tensor) -> Tensor:
    """|x| = x * sign(x); the gradient at 0 is 0, as in PyTorch."""
    x = _tensor("abs", x)
    if x.dtype == np.bool_:
        return x
    return x * _wrap(np.sign(x.array))


absolute = abs


def _rounding(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Tensor], Tensor]:
    def op(x: Tensor) -> Tensor:
        x = _tensor(name, x)
        return _zero_gradient(fn(x.array) if x.dtype.kind == "f" else x.array.copy(), x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{name} elementwise (its gradient is 0, as in PyTorch)."
    return op


floor = _rounding("floor", np.floor)
ceil = _rounding("ceil", np.ceil)
trunc = fix = _rounding("trunc", np.trunc)


def round(x: Tensor, decimals: int = 0) -> Tensor:
    """Round half to even to ``decimals`` places (its gradient is 0, as in PyTorch)."""
    return _rounding("round", lambda a: np.round(a, decimals))(x)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)), stable for any x, with the exact derivative sigmoid(x) everywhere;
    softplus(inf) = inf with gradient 1, as in PyTorch."""
    x = _float_tensor("softplus", x)
    infinite = x.array == np.inf
    if infinite.any():  # the shift below would give inf - inf there
        return where(infinite, x, softplus(where(infinite, 0.0, x)))
    m = _wrap(np.maximum(x.array, 0))  # a constant shift: log(e^-m + e^(x-m)) + m
    return m + ((-m).exp() + (x - m).exp()).log()


def _mask_array(op: str, cond: Any) -> np.ndarray:
    given = cond.array if isinstance(cond, Tensor) else cond
    raw = np.asarray(given)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{op}: the condition must be a boolean tensor, got dtype {raw.dtype}")
    # A private copy: the tape keeps the mask for the backward pass, and the caller's mask stays theirs.
    return raw.astype(bool, copy=raw is given or raw.dtype != np.bool_)


def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """``condition ? input : other`` elementwise; ``condition`` is a boolean constant.
    ``where(condition)`` alone: the indices of the true elements, one tensor per dimension."""
    if input is None and other is None:
        return tuple(_wrap(i) for i in np.nonzero(_mask_array("where", condition)))
    c = _mask_array("where", condition)
    ta, tb = _binary("where", input, other)
    try:
        np.broadcast_shapes(c.shape, ta.shape, tb.shape)
    except ValueError:
        raise ValueError(
            f"where: condition of shape {c.shape} and values of shapes {ta.shape} and {tb.shape} "
            "cannot be broadcast together"
        ) from None
    return P.Where.apply(c, ta, tb)


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """x with ``value`` where ``mask`` is true (the mask broadcasts to x's shape)."""
    x = _tensor("masked_fill", x)
    m = _mask_array("masked_fill", mask)
    if np.broadcast_shapes(m.shape, x.shape) != x.shape:
        raise RuntimeError(f"masked_fill: the mask of shape {m.shape} does not broadcast to the tensor's {x.shape}")
    v = _tensor("masked_fill", value, "value")
    if v.ndim:
        raise RuntimeError(
            f"masked_fill only supports a 0-dimensional value tensor, but got tensor with {v.ndim} dimension(s)"
        )
    return P.Where.apply(m, _wrap(np.zeros((), dtype=x.dtype)) + _cast(v, x.dtype), x)


@declare(passes_through())
def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] (numbers or tensors); the gradient passes where min <= x <= max."""
    x = _tensor("clamp", x)
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    for name, bound in (("min", min), ("max", max)):
        if (
            bound is not None
            and not isinstance(bound, Tensor)
            and (isinstance(bound, (str, bytes)) or np.asarray(bound).dtype.kind not in "biuf")
        ):
            raise TypeError(f"clamp: {name} must be a number or a tensor, got {bound!r}")
    lo = min if min is None or _is_scalar(min) else _tensor("clamp", min, "min")  # scalars stay weak
    hi = max if max is None or _is_scalar(max) else _tensor("clamp", max, "max")
    out = x
    if lo is not None:  # where x < min: min; at a tie the gradient goes to x (PyTorch's clamp)
        ta, tb = _binary("clamp", out, lo)
        out = where(ta.array < tb.array, tb, ta)
    if hi is not None:  # max wins over min, as in PyTorch
        ta, tb = _binary("clamp", out, hi)
        out = where(ta.array > tb.array, tb, ta)
    return out


clip = clamp


def clamp_min(x: Tensor, min: Any) -> Tensor:
    """``clamp(x, min=min)``."""
    return clamp(x, min=min)


def clamp_max(x: Tensor, max: Any) -> Tensor:
    """``clamp(x, max=max)``."""
    return clamp(x, max=max)


@declare(mean_of_sides())
@declare(mean_of_sides())
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient (as PyTorch)."""
    ta, tb = _binary("maximum", a, b)
    if not (ta.requires_grad or tb.requires_grad):  # a constant: NumPy's result exactly
        return _wrap(np.maximum(ta.array, tb.array))
    return where(ta.array > tb.array, ta, where(ta.array < tb.array, tb, ta * 0.5 + tb * 0.5))


@declare(mean_of_sides())
@declare(mean_of_sides())
def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient (as PyTorch)."""
    ta, tb = _binary("minimum", a, b)
    if not (ta.requires_grad or tb.requires_grad):  # a constant: NumPy's result exactly
        return _wrap(np.minimum(ta.array, tb.array))
    return where(ta.array < tb.array, ta, where(ta.array > tb.array, tb, ta * 0.5 + tb * 0.5))


def lerp(start: Any, end: Any, weight: Any) -> Tensor:
    """start + weight * (end - start), elementwise with broadcasting (``weight`` a number or a tensor)."""
    s, e = _binary("lerp", start, end)
    return s + weight * (e - s)


def astype(x: Tensor, dtype: Any) -> Tensor:
    """Convert to ``dtype``; differentiable between floating types (a cast to an integer or bool
    dtype gives a constant, as a comparison does)."""
    x = _tensor("astype", x)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype: {dtype!r} is not a dtype") from None
    if dt.kind not in "biufc":
        raise TypeError(f"astype: tensors hold numbers or booleans, cannot convert to {dt}")
    if dt == x.dtype:
        return x
    return P.Cast.apply(x, dt)


def clone(x: Tensor) -> Tensor:
    """A copy in new memory; the gradient passes through unchanged."""
    x = _tensor("clone", x)
    return P.Cast.apply(x, x.dtype) if x.requires_grad else _wrap(x.array.copy())


def copy_into(x: Tensor, src: Any) -> Tensor:
    """``src`` broadcast to x's shape and cast to x's dtype (what ``x.copy_(src)`` writes)."""
    x, s = _tensor("copy_", x), _tensor("copy_", src, "src")
    try:
        np.broadcast_shapes(s.shape, x.shape)
    except ValueError:
        raise RuntimeError(f"copy_: the src of shape {s.shape} does not broadcast to {x.shape}") from None
    s = _cast(s, x.dtype)
    if not s.requires_grad:
        return _wrap(np.broadcast_to(s.array, x.shape))
    # a node of its own even when src needs no broadcast or cast: x becomes this node's output, and
    # src may have been computed from x (x.copy_(x.sigmoid()) lost its gradient when x became src)
    return broadcast_to(s, x.shape) if s.shape != x.shape else clone(s)


def full_like(x: Tensor, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of x's shape (and dtype, unless given) filled with ``fill_value`` (a number or a 0-d tensor)."""
    x = _tensor("full_like", x)
    dt = x.dtype if dtype is None else np.dtype(dtype)
    if isinstance(fill_value, Tensor):
        if fill_value.ndim:
            raise RuntimeError(
                f"fill_ only supports 0-dimension value tensor but got tensor with {fill_value.ndim} dims"
            )
        if fill_value.requires_grad:
            return broadcast_to(_cast(fill_value, dt), x.shape)
        fill_value = fill_value.item()
    return Tensor.wrap(np.full(x.shape, fill_value, dtype=dt)).requires_grad_(requires_grad)


def random_like(x: Tensor, kind: str, a: float, b: float) -> Tensor:
    """Random values of x's shape and dtype from the global generator: ``"uniform"`` on [a, b) or
    ``"normal"`` with mean a and standard deviation b (what ``uniform_``/``normal_`` write)."""
    x = _tensor(kind, x)
    if x.dtype.kind != "f":
        raise RuntimeError(f"{kind}_ is implemented for floating-point tensors only, got {x.dtype}")
    rng = default_generator()
    values = rng.uniform(a, b, x.shape) if kind == "uniform" else rng.normal(a, b, x.shape)
    return _wrap(values.astype(x.dtype))


def _compare(name: str, fn: Callable[[Any, Any], np.ndarray]) -> Callable[[Any, Any], Tensor]:
    def op(a: Any, b: Any) -> Tensor:
        ta, tb = _binary(name, a, b)
        return _wrap(np.asarray(fn(ta.array, tb.array)))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{name}(a, b)``: elementwise comparison, a boolean tensor (not differentiable)."
    return op


eq = _compare("eq", np.equal)
ne = not_equal = _compare("ne", np.not_equal)
lt = less = _compare("lt", np.less)
le = less_equal = _compare("le", np.less_equal)
gt = greater = _compare("gt", np.greater)
ge = greater_equal = _compare("ge", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)


def _bitwise(name: str, fn: Callable[[Any, Any], np.ndarray]) -> Callable[[Any, Any], Tensor]:
    def op(a: Any, b: Any) -> Tensor:
        ta, tb = _binary(name, a, b)
        if ta.dtype.kind not in "biu":
            raise TypeError(f"{name}: only integer and bool tensors, got {ta.dtype}")
        return _wrap(np.asarray(fn(ta.array, tb.array)))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{name}(a, b)`` of integer or bool tensors (``&``, ``|``, ``^``)."
    return op


bitwise_and = _bitwise("bitwise_and", np.bitwise_and)
bitwise_or = _bitwise("bitwise_or", np.bitwise_or)
bitwise_xor = _bitwise("bitwise_xor", np.bitwise_xor)


def logical_not(x: Tensor) -> Tensor:
    return _wrap(np.logical_not(_tensor("logical_not", x).array))


def bitwise_not(x: Tensor) -> Tensor:
    x = _tensor("bitwise_not", x)
    if x.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: only integer and bool tensors, got {x.dtype}")
    return _wrap(np.invert(x.array))


def isnan(x: Tensor) -> Tensor:
    return _wrap(np.isnan(_tensor("isnan", x).array))


def isinf(x: Tensor) -> Tensor:
    return _wrap(np.isinf(_tensor("isinf", x).array))


def isfinite(x: Tensor) -> Tensor:
    return _wrap(np.isfinite(_tensor("isfinite", x).array))


def equal(a: Any, b: Any) -> bool:
    """True if ``a`` and ``b`` have the same shape and values."""
    ta, tb = _tensor("equal", a), _tensor("equal", b)
    return ta.shape == tb.shape and bool(np.array_equal(ta.array, tb.array))


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    ta, tb = _tensor("allclose", a), _tensor("allclose", b)
    return bool(np.allclose(ta.array, tb.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    ta, tb = _tensor("isclose", a), _tensor("isclose", b)
    return _wrap(np.isclose(ta.array, tb.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


# --------------------------------------------------------------------------- reductions


def _reduced(op: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    return _axes(op, dim, x.ndim)


def _drop(x: Tensor, axes: tuple[int, ...], out: Tensor, keepdim: bool) -> Tensor:
    """``out``, reduced with keepdim=True over ``axes``, reshaped as keepdim asks."""
    return out if keepdim else reshape(out, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def sum(x: Tensor, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None, axis: Axis = None,
        keepdims: bool | None = None) -> Tensor:  # fmt: skip
    """Sum over ``dim`` (None: all). Integer and bool tensors sum to int64, as in PyTorch."""
    x = _tensor("sum", x)
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind in "bi" and x.dtype != np.int64 or x.dtype.kind == "u":
        x = _cast(x, np.dtype(np.int64))
    return P.Sum.apply(x, _reduced("sum", x, _dim("sum", dim, axis)), _keepdim("sum", keepdim, keepdims))


def mean(x: Tensor, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None, axis: Axis = None,
         keepdims: bool | None = None) -> Tensor:  # fmt: skip
    """Mean over ``dim``; the mean of zero elements is NaN, as in NumPy and PyTorch."""
    x = _tensor("mean", x)
    if dtype is not None:
        x = astype(x, dtype)
    if x.dtype.kind != "f":
        raise TypeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {x.dtype}"
        )
    axes = _reduced("mean", x, _dim("mean", dim, axis))
    if x.dtype == np.float16:  # reduce in float32, as PyTorch: the sum and the count overflow float16
        return astype(mean(astype(x, np.float32), axes, _keepdim("mean", keepdim, keepdims)), np.float16)
    count = math.prod(x.shape[a] for a in axes)
    return P.Sum.apply(x, axes, _keepdim("mean", keepdim, keepdims)) / count


def _correction(op: str, dim: Any, unbiased: Any, correction: Any, ddof: Any) -> tuple[Any, float]:
    if isinstance(dim, (bool, np.bool_)):  # var(False): PyTorch's var(unbiased) overload
        dim, unbiased = None, dim
    given = [n for n, v in (("unbiased", unbiased), ("correction", correction), ("ddof", ddof)) if v is not None]
    if len(given) > 1:
        raise TypeError(f"{op}: give only one of unbiased, correction and ddof (got {', '.join(given)})")
    if correction is None:
        correction = ddof if ddof is not None else (1 if unbiased is None or unbiased else 0)
    if isinstance(correction, (bool, np.bool_)) or not _is_scalar(correction) or correction < 0:
        raise ValueError(f"{op}: correction must be a non-negative number, got {correction!r}")
    return dim, float(correction)


def var(x: Tensor, dim: Axis = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None, axis: Axis = None, keepdims: bool | None = None,
        ddof: int | None = None) -> Tensor:  # fmt: skip
    """Variance over ``dim``: sum((x - mean)^2) / (N - correction). Unbiased (correction=1) by
    default, as in PyTorch; ``unbiased=False`` or ``correction=0`` (NumPy's ``ddof``) for the biased one."""
    x = _float_tensor("var", x)
    dim, corr = _correction("var", _dim("var", dim, axis), unbiased, correction, ddof)
    axes = _reduced("var", x, dim)
    if x.dtype == np.float16:  # in float32, as PyTorch (see mean)
        return astype(
            var(astype(x, np.float32), axes, keepdim=_keepdim("var", keepdim, keepdims), correction=corr), np.float16
        )
    count = math.prod(x.shape[a] for a in axes)
    centred = x - mean(x, axes, keepdim=True)
    return P.Sum.apply(centred * centred, axes, _keepdim("var", keepdim, keepdims)) / builtins.max(count - corr, 0)


def standardize(x: Tensor, dim: Axis = None, eps: float = 1e-5, *, axis: Axis = None) -> Tensor:
    """(x - mean) / sqrt(var + eps) over ``dim`` (None: all), the variance biased: what batch, layer
    and group normalisation compute before their affine map, as one primitive (``Standardize``).
    float16 is standardised in float32, as ``mean`` and ``var`` reduce it."""
    x = _float_tensor("standardize", x)
    axes = _reduced("standardize", x, _dim("standardize", dim, axis))
    if x.dtype == np.float16:
        return astype(standardize(astype(x, np.float32), axes, eps), np.float16)
    return P.Standardize.apply(x, None, None, axes, float(eps))


def std(x: Tensor, dim: Axis = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None, axis: Axis = None, keepdims: bool | None = None,
        ddof: int | None = None) -> Tensor:  # fmt: skip
    """Standard deviation: sqrt(var), unbiased by default (see :func:`var`)."""
    return sqrt(var(x, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, ddof=ddof))


def prod(x: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None, axis: int | None = None,
         keepdims: bool | None = None) -> Tensor:  # fmt: skip
    """Product over one ``dim`` (None: all elements). The gradient is the product of the others,
    exact when elements are 0."""
    x = _tensor("prod", x)
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind in "biu":
        x = _cast(x, np.dtype(np.int64))
    dim = _dim("prod", dim, axis)
    keep = _keepdim("prod", keepdim, keepdims)
    if dim is None:
        out = prod(reshape(x, -1), 0) if x.ndim else x
        return reshape(out, (1,) * x.ndim) if keep else out
    d = _axis("prod", dim, builtins.max(x.ndim, 1))
    if not x.requires_grad or x.ndim == 0:
        return _wrap(np.asarray(np.prod(x.array, axis=d if x.ndim else None, keepdims=keep)))
    # a chain of products of the slices: exact gradients when elements are 0 (no division)
    out = full_like(narrow(x, d, 0, 1), 1).detach()
    for i in range(x.shape[d]):
        out = out * narrow(x, d, i, 1)
    return out if keep else squeeze(out, d)


def _reduce_dims(op: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    axes = _reduced(op, x, dim)
    if x.numel() == 0 and (not axes or 0 in (x.shape[a] for a in axes)):
        raise ValueError(
            f"{op}: cannot reduce over zero-size dims {axes} of a tensor of shape {x.shape} "
            "(an extreme of no elements is undefined)"
        )
    return axes


class MaxResult(NamedTuple):
    """What ``max(dim)`` and ``min(dim)`` return, as PyTorch's ``torch.return_types.max``."""

    values: Tensor
    indices: Tensor


def max(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool | None = None) -> Any:
    """``max(x)``: the largest element (a 0-d tensor; at ties the gradient is shared evenly, as PyTorch).
    ``max(x, dim)``: a named tuple ``(values, indices)`` over that dimension (the first maximum's
    index, which takes the whole gradient, as PyTorch). ``max(x, other)``: :func:`maximum`."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    x = _tensor("max", x)
    dim = _dim("max", dim, axis)
    if dim is None:
        return amax(x)
    return _extreme("max", x, dim, _keepdim("max", keepdim, keepdims))


def min(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool | None = None) -> Any:
    """As :func:`max`, for the smallest element."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    x = _tensor("min", x)
    dim = _dim("min", dim, axis)
    if dim is None:
        return amin(x)
    return _extreme("min", x, dim, _keepdim("min", keepdim, keepdims))


def _extreme(op: str, x: Tensor, dim: Any, keepdim: bool) -> MaxResult:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, (bool, np.bool_)):
        raise TypeError(f"{op}(): dim must be an int, got {dim!r} (amax/amin reduce over several dims)")
    axes = _reduce_dims(op, x, dim)
    if x.ndim == 0:
        return MaxResult(x, _wrap(np.zeros((), dtype=np.int64)))
    pick = np.argmax if op == "max" else np.argmin
    index = np.asarray(pick(x.array, axis=axes[0], keepdims=keepdim), dtype=np.int64)
    if not x.requires_grad:
        picked = np.take_along_axis(x.array, index if keepdim else np.expand_dims(index, axes[0]), axes[0])
        return MaxResult(_wrap(picked if keepdim else picked.squeeze(axes[0])), _wrap(index))
    # the first extreme takes the whole gradient (Max's rule), as PyTorch's max(dim)
    values = P.Max.apply(x, axes, keepdim) if op == "max" else -P.Max.apply(-x, axes, keepdim)
    return MaxResult(values, _wrap(index))


@declare(split_max())
def amax(
    x: Tensor, dim: Axis = (), keepdim: bool = False, *, axis: Axis = None, keepdims: bool | None = None
) -> Tensor:
    """The maximum over ``dim`` (default: all); at ties the gradient is shared evenly, as PyTorch."""
    return _even_extreme("amax", x, dim, keepdim, axis, keepdims)


@declare(split_min())
def amin(
    x: Tensor, dim: Axis = (), keepdim: bool = False, *, axis: Axis = None, keepdims: bool | None = None
) -> Tensor:
    """The minimum over ``dim`` (default: all); at ties the gradient is shared evenly, as PyTorch."""
    return _even_extreme("amin", x, dim, keepdim, axis, keepdims)


def _even_extreme(op: str, x: Any, dim: Any, keepdim: bool, axis: Any, keepdims: bool | None) -> Tensor:
    x = _tensor(op, x)
    dim = _dim(op, None if dim == () else dim, axis)
    keep = _keepdim(op, keepdim, keepdims)
    axes = _reduce_dims(op, x, dim)
    fn = np.max if op == "amax" else np.min
    best = fn(x.array, axis=axes, keepdims=True)
    if not x.requires_grad:
        return _wrap(
            np.asarray(best if keep else best.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes)))
        )
    ties = x.array == best  # every element equal to the extreme shares the gradient
    share = (ties / np.maximum(ties.sum(axis=axes, keepdims=True), 1)).astype(x.dtype)
    zero = _wrap(np.zeros((), dtype=x.dtype))
    out = P.Sum.apply(P.Where.apply(ties, x, zero) * _wrap(share), axes, True)
    # the value is the extreme exactly (the shares can round); a NaN is the extreme (it equals nothing)
    with np.errstate(invalid="ignore"):
        exact = np.where(np.isfinite(best), best - out.array, 0).astype(x.dtype)
    out = where(np.isnan(best), _wrap(best), out + _wrap(exact))
    return _drop(x, axes, out, keep)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
    """The index of the first maximum over ``dim`` (None: of the flattened tensor), int64."""
    return _arg("argmax", np.argmax, x, _dim("argmax", dim, axis), keepdim)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
    """The index of the first minimum over ``dim`` (None: of the flattened tensor), int64."""
    return _arg("argmin", np.argmin, x, _dim("argmin", dim, axis), keepdim)


def _arg(op: str, fn: Callable[..., Any], x: Any, dim: Any, keepdim: bool) -> Tensor:
    x = _tensor(op, x)
    if dim is None:
        _reduce_dims(op, x, None)
        out = np.asarray(fn(x.array.reshape(-1)))
        return _wrap(out.reshape((1,) * x.ndim) if keepdim else out)
    d = _axis(op, dim, x.ndim)
    _reduce_dims(op, x, d)
    return _wrap(np.asarray(fn(x.array, axis=d, keepdims=keepdim), dtype=np.int64))


def all(x: Tensor, dim: Axis = None, keepdim: bool = False, *, axis: Axis = None, out: None = None) -> Tensor:
    """True where every element over ``dim`` is nonzero (a bool tensor)."""
    x = _tensor("all", x)
    if out is not None:
        raise TypeError("all: out= is not supported")
    return _wrap(np.asarray(np.all(x.array, axis=_reduced("all", x, _dim("all", dim, axis)), keepdims=keepdim)))


def any(x: Tensor, dim: Axis = None, keepdim: bool = False, *, axis: Axis = None, out: None = None) -> Tensor:
    """True where some element over ``dim`` is nonzero (a bool tensor)."""
    x = _tensor("any", x)
    if out is not None:
        raise TypeError("any: out= is not supported")
    return _wrap(np.asarray(np.any(x.array, axis=_reduced("any", x, _dim("any", dim, axis)), keepdims=keepdim)))


def count_nonzero(x: Tensor, dim: Axis = None) -> Tensor:
    x = _tensor("count_nonzero", x)
    return _wrap(np.asarray(np.count_nonzero(x.array, axis=_reduced("count_nonzero", x, dim)), dtype=np.int64))


def norm(x: Tensor, p: Any = "fro", dim: Axis = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The vector p-norm over ``dim`` (default: all elements); ``"fro"`` is the 2-norm, ``inf`` the
    largest absolute value. At 0 the gradient of the 2-norm is 0, as in PyTorch."""
    x = _float_tensor("norm", x if dtype is None else astype(_tensor("norm", x), dtype))
    axes = _reduced("norm", x, dim)
    if p in ("fro", 2, 2.0):
        sq = P.Sum.apply(x * x, axes, True)
        safe = where(sq.array > 0, sq, 1.0)  # sqrt's gradient at 0 would be inf * 0
        out = where(sq.array > 0, sqrt(safe), 0.0)
    elif p in (math.inf, "inf"):
        out = amax(abs(x), axes, keepdim=True)
    elif p in (-math.inf, "-inf"):
        out = amin(abs(x), axes, keepdim=True)
    elif p == 1:
        out = P.Sum.apply(abs(x), axes, True)
    elif p == 0:
        out = _wrap(np.asarray(np.count_nonzero(x.array, axis=axes, keepdims=True), dtype=x.dtype))
    elif _is_scalar(p) and not isinstance(p, bool):
        out = pow(P.Sum.apply(pow(abs(x), float(p)), axes, True), 1.0 / float(p))
    else:
        raise ValueError(f"norm: unsupported p={p!r} (a number, inf, -inf or 'fro')")
    return _drop(x, axes, out, keepdim)


def logsumexp(x: Tensor, dim: Axis = None, keepdim: bool = False, *, axis: Axis = None,
              keepdims: bool | None = None) -> Tensor:  # fmt: skip
    """log(sum(exp(x), dim)) without overflow; its gradient is softmax(x)."""
    x = _float_tensor("logsumexp", x)
    axes = _reduced("logsumexp", x, _dim("logsumexp", dim, axis))
    m = x.array.max(axis=axes, keepdims=True) if x.array.size else np.zeros(())
    m = _wrap(np.where(np.isfinite(m), m, 0).astype(x.dtype))  # a constant shift
    out = log(P.Sum.apply(exp(x - m), axes, True)) + m
    return _drop(x, axes, out, _keepdim("logsumexp", keepdim, keepdims))


def cumsum(x: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Cumulative sum along ``dim``: a product with a triangular matrix of ones."""
    x = _tensor("cumsum", x if dtype is None else astype(_tensor("cumsum", x), dtype))
    d = _axis("cumsum", dim, builtins.max(x.ndim, 1))
    if not x.requires_grad or x.ndim == 0:
        return _wrap(np.cumsum(x.array, axis=d) if x.ndim else x.array.copy())
    n = x.shape[d]
    tri = _wrap(np.triu(np.ones((n, n), dtype=x.dtype)))
    return transpose(matmul(transpose(x, d, -1), tri), d, -1)


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
    if builtins.any(n < -1 for n in new) or new.count(-1) > 1:
        raise ValueError(f"reshape: invalid shape {new}: sizes must be >= 0, with at most one -1")
    known = math.prod(n for n in new if n != -1)
    fits = known == x.array.size if -1 not in new else known > 0 and x.array.size % known == 0
    if fits:  # the common case, checked without asking NumPy
        return P.Reshape.apply(x, new)
    try:
        np.empty(x.shape, dtype=[]).reshape(new)  # validates without touching the data
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) into {new}"
        ) from None
    return P.Reshape.apply(x, new)


def view(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``view``: :func:`reshape` (``view(dtype)`` reinterprets the bytes, a constant)."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer, tuple, list)):
        x = _tensor("view", x)
        return _wrap(x.array.view(np.dtype(shape[0])))
    return reshape(x, *shape)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, _tensor("view_as", other, "other").shape)


reshape_as = view_as


def permute(x: Tensor, *dims: int | Sequence[int]) -> Tensor:
    """Reorder the dimensions: ``x.permute(0, 2, 3, 1)``."""
    x = _tensor("permute", x)
    perm = _shape_arg(dims, "permute", "dims")
    if (
        len(perm) != x.ndim
        or builtins.any(not -x.ndim <= a < builtins.max(x.ndim, 1) for a in perm)
        or sorted(a % builtins.max(x.ndim, 1) for a in perm) != list(range(x.ndim))
    ):
        raise ValueError(f"permute: {perm} is not a permutation of the {x.ndim} dims of shape {x.shape}")
    perm = tuple(a % builtins.max(x.ndim, 1) for a in perm)
    return x if perm == tuple(range(x.ndim)) else P.Permute.apply(x, perm)


def transpose(x: Tensor, dim0: int, dim1: int, *, _op: str = "transpose") -> Tensor:
    """Swap two dimensions (PyTorch's meaning; NumPy's permutation is :func:`permute`)."""
    x = _tensor(_op, x)
    n = builtins.max(x.ndim, 1)
    a, b = _axis(_op, dim0, n), _axis(_op, dim1, n)
    if x.ndim < 2:
        return x
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, *perm)


def swapaxes(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """:func:`transpose` under NumPy's name (and ``torch.swapaxes``)."""
    return transpose(x, dim0, dim1, _op="swapaxes")


swapdims = swapaxes


def movedim(x: Tensor, source: int, destination: int) -> Tensor:
    x = _tensor("movedim", x)
    s, d = _axis("movedim", source, x.ndim), _axis("movedim", destination, x.ndim)
    perm = [i for i in range(x.ndim) if i != s]
    perm.insert(d, s)
    return permute(x, *perm)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (default: all, as ``torch.flatten``; a model's
    ``x.flatten(1)`` keeps the batch dim). A 0-d tensor becomes 1-d."""
    x = _tensor("flatten", x)
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten() has invalid args: start_dim {start_dim} cannot come after end_dim {end_dim}")
    return reshape(x, x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :])


def ravel(x: Tensor) -> Tensor:
    return flatten(x)


def unflatten(x: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one may be -1)."""
    x = _tensor("unflatten", x)
    d = _axis("unflatten", dim, x.ndim)
    inner = _shape_arg((tuple(sizes),), "unflatten", "sizes")
    if -1 not in inner and math.prod(inner) != x.shape[d]:
        raise RuntimeError(
            f"unflatten: Provided sizes {inner} don't multiply up to the size of dim {dim} ({x.shape[d]})"
        )
    return reshape(x, x.shape[:d] + inner + x.shape[d + 1 :])


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """A new dimension of size 1 at ``dim`` (-1: last)."""
    x = _tensor("unsqueeze", x)
    d = _axis("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x: Tensor, dim: Axis = None) -> Tensor:
    """Remove dims of size 1: all of them, or those of ``dim`` (a dim of another size is kept, as PyTorch)."""
    x = _tensor("squeeze", x)
    axes = range(x.ndim) if dim is None else _axes("squeeze", dim, builtins.max(x.ndim, 1))
    drop = {a for a in axes if a < x.ndim and x.shape[a] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def broadcast_to(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """x broadcast to ``shape`` (no copy; the gradient is summed back)."""
    x = _tensor("broadcast_to", x)
    new = _shape_arg(shape, "broadcast_to")
    try:
        ok = np.broadcast_shapes(x.shape, new) == new
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {new}")
    return x if new == x.shape else P.Expand.apply(x, new)


def expand(x: Tensor, *sizes: int | Sequence[int]) -> Tensor:
    """x broadcast to ``sizes``; -1 keeps a dimension's size, as in PyTorch."""
    x = _tensor("expand", x)
    new = list(_shape_arg(sizes, "expand", "sizes"))
    lead = len(new) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(new)}) must be greater or equal to the number "
                           f"of dimensions in the tensor ({x.ndim})")  # fmt: skip
    for i, n in enumerate(new):
        if n == -1:
            if i < lead:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension ({i})")
            new[i] = x.shape[i - lead]
    return broadcast_to(x, tuple(new))


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return broadcast_to(x, _tensor("expand_as", other, "other").shape)


def repeat(x: Tensor, *sizes: int | Sequence[int]) -> Tensor:
    """Tile x ``sizes[i]`` times along each dim (as ``torch.Tensor.repeat``, NumPy's ``tile``)."""
    x = _tensor("repeat", x)
    reps = _shape_arg(sizes, "repeat", "sizes")
    if len(reps) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    x = reshape(x, (1,) * (len(reps) - x.ndim) + x.shape)
    # (r0, n0, r1, n1, ...) broadcast, then merged: each dim repeated as a whole block
    spread = reshape(x, tuple(v for n in x.shape for v in (1, n)))
    tiled = broadcast_to(spread, tuple(v for r, n in zip(reps, x.shape) for v in (r, n)))
    return reshape(tiled, tuple(r * n for r, n in zip(reps, x.shape)))


def flip(x: Tensor, dims: int | Sequence[int]) -> Tensor:
    x = _tensor("flip", x)
    axes = _axes("flip", dims if isinstance(dims, int) else tuple(dims), x.ndim)
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim)))


def roll(x: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Entries shifted by ``shifts`` along ``dims``, wrapping around (no ``dims``: over the flattened
    tensor, then the shape restored)."""
    x = _tensor("roll", x)
    if dims is None:
        if not isinstance(shifts, (int, np.integer)):
            raise RuntimeError(f"roll: with dims=None, shifts must be one int, got {shifts!r}")
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    shift_list = [shifts] if isinstance(shifts, (int, np.integer)) else list(shifts)
    dim_list = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    if len(shift_list) != len(dim_list):
        raise RuntimeError(f"roll: shifts and dims must align, got shifts={shifts!r}, dims={dims!r}")
    out = x
    for shift, d in zip(shift_list, dim_list):
        axis = _axis("roll", d, x.ndim)
        n = x.shape[axis]
        if n:
            out = index_select(out, axis, (np.arange(n) - int(shift)) % n)
    return out


def _triangle(op: str, x: Any, diagonal: int, keep: Callable[..., np.ndarray]) -> Tensor:
    x = _tensor(op, x)
    if x.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got shape {x.shape}")
    mask = keep(np.ones(x.shape[-2:], dtype=bool), int(diagonal))
    return masked_fill(x, ~mask, 0)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below ``diagonal``), zeros above."""
    return _triangle("tril", x, diagonal, np.tril)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above ``diagonal``), zeros below."""
    return _triangle("triu", x, diagonal, np.triu)


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """1-D x: a square matrix with x on ``diagonal``; 2-D x: that diagonal of x, as a 1-D tensor."""
    x = _tensor("diag", x)
    k = int(diagonal)
    if x.ndim == 1:
        n = x.shape[0] + builtins.abs(k)
        rows = np.arange(x.shape[0]) + builtins.max(-k, 0)
        return index_put(_zeros_of(x, (n, n)), (rows, rows + k), x)
    if x.ndim == 2:
        rows = np.arange(builtins.max(-k, 0), builtins.min(x.shape[0], x.shape[1] - k))
        return getitem(x, (rows, rows + k))
    raise RuntimeError(f"diag: matrix or a vector expected, got shape {x.shape}")


def _zeros_of(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A constant tensor of zeros with x's dtype."""
    return _wrap(np.zeros(shape, dtype=x.dtype))


def _index_arrays(index: Any) -> Any:
    # Index arrays are copied: the tape keeps them for the backward pass, the caller's stay theirs.
    if isinstance(index, (Tensor, np.ndarray)):
        return np.array(index.array if isinstance(index, Tensor) else index)
    if isinstance(index, tuple):
        return tuple(
            np.array(i.array if isinstance(i, Tensor) else i) if isinstance(i, (Tensor, np.ndarray)) else i
            for i in index
        )
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with basic slicing and integer/boolean array indexing, as NumPy."""
    x = _tensor("getitem", x)
    index = _index_arrays(index)
    try:
        return P.GetItem.apply(x, index)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None


def index_put(x: Tensor, index: Any, value: Any) -> Tensor:
    """x with ``x[index] = value`` applied (what ``x[index] = value`` writes); differentiable in both."""
    x = _tensor("__setitem__", x)
    index = _index_arrays(index)
    mask = np.zeros(x.shape, dtype=bool)
    try:
        mask[index] = True
        target_shape = x.array[index].shape
    except IndexError as e:
        raise IndexError(f"__setitem__: {e} (tensor shape {x.shape})") from None
    v = _cast(_tensor("__setitem__", value, "value"), x.dtype)
    try:
        np.broadcast_shapes(v.shape, target_shape)
        placed_value = broadcast_to(v, target_shape) if v.shape != target_shape else v
    except ValueError:
        raise RuntimeError(
            f"__setitem__: shape mismatch: value tensor of shape {v.shape} cannot be broadcast to "
            f"indexing result of shape {target_shape}"
        ) from None
    if not (x.requires_grad or v.requires_grad):
        out = x.array.copy()
        out[index] = placed_value.array
        return _wrap(out)
    placed = P.IndexAdd.apply(placed_value, x.shape, index)
    return P.Where.apply(mask, placed, x)


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's ``pad_width`` convention: an int, a ``(before, after)``
    pair for every dim, or one pair per dim (``nn.functional.pad`` takes PyTorch's flat list)."""
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


# --------------------------------------------------------------------------- joining and splitting


def _tensor_list(op: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"{op}(): argument 'tensors' must be a tuple or list of Tensors, got {type(tensors).__name__}")
    ts = [_as_tensor(t, None, op, f"tensor {i}") for i, t in enumerate(tensors)]
    if not ts:
        raise ValueError(f"{op}(): expected a non-empty list of Tensors")
    dt = _dtypes.result_type(*(t.array for t in ts))
    return [_cast(t, dt) for t in ts]


def cat(tensors: Sequence[Any], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing dim (dtypes promote)."""
    ts = _tensor_list("cat", tensors)
    dim = _dim("cat", dim if axis is None else None, axis)
    if ts[0].ndim == 0:
        raise ValueError("cat(): zero-dimensional tensor (at position 0) cannot be concatenated (use stack)")
    ax = _axis("cat", dim, ts[0].ndim)
    for i, t in enumerate(ts):
        if t.ndim != ts[0].ndim or t.shape[:ax] + t.shape[ax + 1 :] != ts[0].shape[:ax] + ts[0].shape[ax + 1 :]:
            raise ValueError(
                f"cat(): tensor {i} has shape {t.shape}, which does not match {ts[0].shape} outside dim {dim}"
            )
    return P.Concatenate.apply(ax, *ts)


concatenate = concat = cat


def stack(tensors: Sequence[Any], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors of equal shape along a new dim."""
    ts = _tensor_list("stack", tensors)
    ax = _axis("stack", _dim("stack", dim if axis is None else None, axis), ts[0].ndim + 1)
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack expects each tensor to be equal size, but got {ts[0].shape} at entry 0 and "
                             f"{t.shape} at entry {i}")  # fmt: skip
    return cat([reshape(t, t.shape[:ax] + (1,) + t.shape[ax:]) for t in ts], ax)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The slice ``start:start+length`` of dim ``dim``."""
    x = _tensor("narrow", x)
    d = _axis("narrow", dim, x.ndim)
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
    x = _tensor("split", x)
    d = _axis("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [builtins.min(size, n - i) for i in range(0, n, size)] if size else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {dim}), but got split_sizes={sizes}")  # fmt: skip
    starts = np.cumsum([0] + sizes[:-1])
    return tuple(narrow(x, d, int(s), k) for s, k in zip(starts, sizes))


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most ``chunks`` pieces of equal size (ceil(n / chunks)) along ``dim``."""
    x = _tensor("chunk", x)
    if not isinstance(chunks, (int, np.integer)) or chunks < 1:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = x.shape[_axis("chunk", dim, x.ndim)]
    return split(x, builtins.max(-(-n // int(chunks)), 1), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, with that dim removed."""
    x = _tensor("unbind", x)
    d = _axis("unbind", dim, x.ndim)
    return tuple(getitem(x, (slice(None),) * d + (i,)) for i in range(x.shape[d]))


# --------------------------------------------------------------------------- gather and scatter


def _index_tensor(op: str, index: Any) -> np.ndarray:
    idx = np.asarray(index.array if isinstance(index, Tensor) else index)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {idx.dtype}")
    return idx.astype(np.int64, copy=True)


def _along(op: str, x: Tensor, dim: int, index: np.ndarray) -> tuple[int, tuple[np.ndarray, ...]]:
    """The full index tuple that picks ``x[..., index[i, j, ...] (at dim), ...]`` for gather/scatter."""
    d = _axis(op, dim, builtins.max(x.ndim, 1))
    if index.ndim == 0 and x.ndim == 1:  # PyTorch reads a 0-d index into a 1-d tensor as one position
        _along(op, x, dim, index.reshape(1))  # its bounds check
        return d, (index % builtins.max(x.shape[0], 1),)
    if index.ndim != x.ndim:
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as input tensor "
                           f"({index.ndim} vs {x.ndim})")  # fmt: skip
    if index.size and (index.min() < -x.shape[d] or index.max() >= x.shape[d]):
        raise RuntimeError(
            f"{op}(): index {int(index.max())} is out of bounds for dimension {d} with size {x.shape[d]}"
        )
    grids: list[np.ndarray] = list(np.indices(index.shape, sparse=True))
    grids[d] = index % builtins.max(x.shape[d], 1)
    return d, tuple(grids)


def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """out[i][j] = x[index[i][j]][j] (dim 0), etc.: values picked along ``dim``."""
    x = _tensor("gather", x)
    idx = _index_tensor("gather", index)
    _, full = _along("gather", x, dim, idx)
    return P.GetItem.apply(x, full)


def scatter(
    x: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None, reduce: str | None = None
) -> Tensor:
    """x with ``out[index[i][j]][j] = src[i][j]`` (dim 0), etc. (``value``: one number for all)."""
    if reduce is not None:
        if reduce != "add":
            raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported (only 'add')")
        return scatter_add(x, dim, index, src)
    x = _tensor("scatter", x)
    idx = _index_tensor("scatter", index)
    _, full = _along("scatter", x, dim, idx)
    source = _tensor("scatter", value if src is None else src, "src")
    if source.ndim:
        source = getitem(source, tuple(slice(0, n) for n in idx.shape))
    return index_put(x, full, source)


def scatter_add(x: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """x with ``src[i][j]`` added at ``out[index[i][j]][j]`` (dim 0), etc.; repeated indices add up."""
    x = _tensor("scatter_add", x)
    idx = _index_tensor("scatter_add", index)
    _, full = _along("scatter_add", x, dim, idx)
    source = _cast(getitem(_tensor("scatter_add", src, "src"), tuple(slice(0, n) for n in idx.shape)), x.dtype)
    return x + P.IndexAdd.apply(source, x.shape, full)


def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """The entries ``index`` (1-D) along ``dim``."""
    x = _tensor("index_select", x)
    idx = _index_tensor("index_select", index)
    if idx.ndim > 1:
        raise RuntimeError("index_select(): Index is supposed to be a vector")
    d = _axis("index_select", dim, builtins.max(x.ndim, 1))
    return getitem(x, (slice(None),) * d + (idx.reshape(-1),))


def masked_select(x: Tensor, mask: Any) -> Tensor:
    x = _tensor("masked_select", x)
    m = _mask_array("masked_select", mask)
    return getitem(
        broadcast_to(x, np.broadcast_shapes(x.shape, m.shape)),
        np.broadcast_to(m, np.broadcast_shapes(x.shape, m.shape)),
    )


def nonzero(x: Tensor, *, as_tuple: bool = False) -> Any:
    x = _tensor("nonzero", x)
    found = np.nonzero(x.array)
    if as_tuple:
        return tuple(_wrap(i) for i in found)
    return _wrap(np.stack(found, axis=1) if found else np.zeros((0, 0), dtype=np.int64))


def argwhere(x: Tensor) -> Tensor:
    """The indices of the nonzero entries, one row each: shape (count, x.ndim), int64."""
    x = _tensor("argwhere", x)
    return _wrap(np.argwhere(x.array).astype(np.int64))


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


def mm(a: Tensor, b: Tensor) -> Tensor:
    """The product of two matrices: (n, k) @ (k, m) -> (n, m)."""
    ta, tb = _tensor("mm", a), _tensor("mm", b, "mat2")
    if ta.ndim != 2 or tb.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be matrices, got shapes {ta.shape} and {tb.shape}")
    return matmul(ta, tb)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product: (B, n, k) @ (B, k, m) -> (B, n, m) (no broadcasting)."""
    ta, tb = _tensor("bmm", a), _tensor("bmm", b, "mat2")
    if ta.ndim != 3 or tb.ndim != 3 or ta.shape[0] != tb.shape[0]:
        raise RuntimeError(f"bmm: expected 3-D tensors with the same batch size, got shapes {ta.shape} and {tb.shape}")
    return matmul(ta, tb)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """The inner product of two 1-D tensors."""
    ta, tb = _tensor("dot", a), _tensor("dot", b)
    if ta.ndim != 1 or tb.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {ta.ndim}D and {tb.ndim}D tensors")
    return matmul(ta, tb)


def outer(a: Tensor, b: Tensor) -> Tensor:
    """The outer product of two 1-D tensors: out[i, j] = a[i] * b[j]."""
    ta, tb = _tensor("outer", a), _tensor("outer", b, "vec2")
    if ta.ndim != 1 or tb.ndim != 1:
        raise RuntimeError(f"outer: 1D tensors expected, but got {ta.ndim}D and {tb.ndim}D tensors")
    return mul(reshape(ta, (-1, 1)), reshape(tb, (1, -1)))


ger = outer


def addmm(input: Any, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2), ``input`` broadcast to the product's shape."""
    product = mm(mat1, mat2)
    product = product if alpha == 1 else product * alpha
    if beta == 0:  # as PyTorch: input is ignored, nan and inf in it included
        return product
    return add(product, input if beta == 1 else mul(input, beta))


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)``; each operand's gradient is
    another einsum (an index repeated within one operand, a diagonal, is not supported)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    ts = [_tensor("einsum", t, f"operand {i}") for i, t in enumerate(operands)]
    dt = _dtypes.result_type(*(t.array for t in ts))
    ts = [_cast(t, dt) for t in ts]
    try:
        parsed = P.einsum_subscripts(equation.replace(" ", ""), [t.ndim for t in ts])
    except ValueError as e:
        raise ValueError(f"einsum: {e} (equation {equation!r}, shapes {[t.shape for t in ts]})") from None
    try:
        return P.Einsum.apply(parsed, *ts)
    except ValueError as e:
        raise ValueError(f"einsum: {e} (equation {equation!r}, shapes {[t.shape for t in ts]})") from None


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
    weight_t = P.Permute.apply(weight, (1, 0))  # checked above: no need for permute's checks
    out = matmul(flat, weight_t) if bias is None else P.MatMulAdd.apply(flat, weight_t, bias)
    return reshape(out, x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else out


# --------------------------------------------------------------------------- convolution and pooling


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
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch).

    x: (N, C_in, H, W), weight: (C_out, C_in // groups, kh, kw), bias: (C_out,) -> (N, C_out, OH, OW),
    OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1. Computed as unfold and a windowed matrix product
    (im2col + one GEMM), so the backward is the product's two transposes and a fold. With
    ``groups`` G > 1, input channels g*C_in/G ... and output channels g*C_out/G ... form group g,
    convolved on their own (:class:`~tinygrad_cnn.primitives.GroupedConvolution`, no loop over groups).
    """
    x, weight = _tensor("conv2d", x), _tensor("conv2d", weight, "weight")
    _check_image("conv2d", x)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in, kh, kw), got shape {weight.shape}")
    c = x.shape[1]
    c_out, c_in, kh, kw = weight.shape
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if groups == 1 and c != c_in:
        raise ValueError(f"conv2d: input has {c} channels (shape {x.shape}) but weight {weight.shape} expects {c_in}")
    if groups > 1 and (c % groups or c_out % groups or c_in * groups != c):
        raise ValueError(
            f"conv2d: input {x.shape} and weight {weight.shape} do not fit groups={groups} "
            "(need input channels = groups * weight.shape[1], and output channels divisible by groups)"
        )
    bias = _conv_weight_and_bias("conv2d", x, weight, bias, c_out)
    if kh < 1 or kw < 1:
        raise ValueError(f"conv2d: weight {weight.shape} has an empty kernel ({kh}x{kw}); kernels must be at least 1x1")
    s, p, d = (
        pair("conv2d", "stride", stride, 1),
        pair("conv2d", "padding", padding, 0),
        pair("conv2d", "dilation", dilation, 1),
    )
    _out_size("conv2d", x.shape, (kh, kw), s, p, d)  # a kernel larger than the input: an error naming conv2d
    w = P.Permute.apply(weight, (2, 3, 1, 0))  # (kh, kw, C_in // groups, C_out)
    if groups == 1:
        out = P.Convolution.apply(x, w, bias, s, d, p)  # (N, OH, OW, C_out)
    else:
        out = P.GroupedConvolution.apply(x, w, bias, s, d, p, int(groups))
    # A batch-inner (OH, OW, N, C_out) result seen as NCHW: no transpose copy (see Convolution).
    return P.Permute.apply(out, _NHWC_TO_NCHW)


_NHWC_TO_NCHW = (0, 3, 1, 2)  # the permutation of a channels-last result


def _pool_geometry(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """kernel, stride, padding, dilation, output size and the extra padding at the end that
    ``ceil_mode`` needs, per axis, after PyTorch's checks."""
    _check_image(op, x)
    k, s, p, d = pool_arguments(op, kernel_size, stride, padding, dilation)
    out = _out_size(op, x.shape, k, s, p, d)  # a kernel larger than the input: an error naming this op
    if not ceil_mode:
        return k, s, p, d, out, (0, 0)
    sizes, extra = [], []
    for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d):
        span = di * (ki - 1) + 1
        o = (n + 2 * pi - span + si - 1) // si + 1
        if (o - 1) * si >= n + pi:  # the last window must start inside the input or its left padding
            o -= 1
        sizes.append(o)
        extra.append(builtins.max(0, (o - 1) * si + span - (n + 2 * pi)))
    return k, s, p, d, (sizes[0], sizes[1]), (extra[0], extra[1])


def _pool_windows(x: Tensor, k: Any, s: Any, p: Any, d: Any, extra: tuple[int, int], value: float) -> Tensor:
    """(N, OH, OW, kh, kw, C) windows; ``extra`` rows/columns of ``value`` added at the end first."""
    if extra != (0, 0):
        x = pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), value)
    return P.Unfold.apply(_pad_hw(x, p, value), k, s, d)  # the geometry was checked by _pool_geometry


@declare(first_max())
def max_pool2d(
    input: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling as ``torch.nn.functional.max_pool2d``: (N, C, H, W) -> (N, C, OH, OW); stride
    defaults to kernel_size.

    Padding counts as -inf; the gradient of a window goes to its first maximum in row-major order,
    as in PyTorch. ``return_indices=True`` also returns, for every output, the flat index
    ``row * W + col`` of that maximum in its (H, W) input plane (int64), as PyTorch.
    """
    x = _tensor("max_pool2d", input)
    k, s, p, d, _, extra = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    windows = _pool_windows(x, k, s, p, d, extra, -np.inf)
    out = P.Permute.apply(P.Max.apply(windows, (3, 4), False), _NHWC_TO_NCHW)  # the first maximum's gradient
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
    """Average pooling as ``torch.nn.functional.avg_pool2d``: (N, C, H, W) -> (N, C, OH, OW);
    stride defaults to kernel_size.

    Each window's sum is divided by ``divisor_override`` if given, else by the number of its
    positions inside the zero-padded input (``count_include_pad``, PyTorch's default) or inside the
    input itself.
    """
    x = _tensor("avg_pool2d", input)
    k, s, p, d, o, extra = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    sums = P.Permute.apply(sum(_pool_windows(x, k, s, p, d, extra, 0.0), (3, 4)), _NHWC_TO_NCHW)
    if divisor_override is not None:
        return sums / float(divisor_override)
    h, w = (_avg_divisors(n, ki, si, pi, oi, count_include_pad) for n, ki, si, pi, oi in zip(x.shape[2:], k, s, p, o))
    return sums * Tensor((1.0 / np.outer(h, w)).astype(x.dtype))


# --------------------------------------------------------------------------- softmax family


def _softmax_dim(op: str, x: Tensor, dim: Any) -> int:
    if dim is None:  # PyTorch's implicit choice (deprecated there): dim 0 for 0-, 1- and 3-D, else 1
        dim = 0 if x.ndim in (0, 1, 3) else 1
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    ax = _axes(op, int(dim), x.ndim)[0] if x.ndim else 0
    if x.ndim and x.shape[ax] == 0:
        raise ValueError(f"{op}: dim {dim} of shape {x.shape} has no elements to normalise over")
    return ax


def log_softmax(x: Tensor, dim: int | None = None, *, dtype: Any = None, axis: int | None = None) -> Tensor:
    """log(softmax(x)) over ``dim``, computed stably (the maximum is subtracted first)."""
    x = _float_tensor("log_softmax", x if dtype is None else astype(_tensor("log_softmax", x), dtype))
    if x.ndim == 0:
        return x * 0.0
    return P.LogSoftmax.apply(x, _softmax_dim("log_softmax", x, _dim("log_softmax", dim, axis)))


def softmax(x: Tensor, dim: int | None = None, *, dtype: Any = None, axis: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) over ``dim``, computed stably (the maximum is subtracted first)."""
    x = _float_tensor("softmax", x if dtype is None else astype(_tensor("softmax", x), dtype))
    if x.ndim == 0:
        return x * 0.0 + 1.0
    return P.Softmax.apply(x, _softmax_dim("softmax", x, _dim("softmax", dim, axis)))


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


# --------------------------------------------------------------------------- more of PyTorch's tensor functions


def erf(x: Tensor) -> Tensor:
    """The error function, elementwise (which the exact GELU uses)."""
    return P.Elementwise.apply(_float_input("erf", x), "erf")


def fmod(a: Any, b: Any) -> Tensor:
    """a - trunc(a / b) * b: the remainder with the sign of a (C's fmod; ``remainder`` takes b's)."""
    ta, tb = _binary("fmod", a, b)
    q = div(ta.detach(), tb.detach(), rounding_mode="trunc")
    return ta - q * tb if ta.requires_grad or tb.requires_grad else _wrap(np.fmod(ta.array, tb.array))


def frac(x: Tensor) -> Tensor:
    """x - trunc(x), the fractional part with x's sign; the gradient passes through."""
    x = _float_tensor("frac", x)
    return x - trunc(x).detach()


def floor_divide(a: Any, b: Any) -> Tensor:
    """floor(a / b), keeping integer dtypes (a constant, as a rounding)."""
    return div(a, b, rounding_mode="floor")


def logit(x: Tensor, eps: float | None = None) -> Tensor:
    """log(x / (1 - x)), x first clamped to [eps, 1 - eps] when ``eps`` is given."""
    x = _float_input("logit", x)
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return log(x) - log1p(-x)


def xlogy(x: Any, y: Any) -> Tensor:
    """x * log(y), and 0 where x == 0 (even where y is 0 or nan: PyTorch's convention)."""
    tx, ty = _binary("xlogy", x, y)
    return P.XLogY.apply(_float_input("xlogy", tx), _float_input("xlogy", ty))


def logaddexp(a: Any, b: Any) -> Tensor:
    """log(exp(a) + exp(b)) without overflow (broadcasting): m + log(exp(a - m) + exp(b - m)) with
    m = max(a, b) a constant. Where one side is +inf and the other is not, that side, with gradient
    1 (as PyTorch)."""
    ta, tb = _float_pair("logaddexp", a, b)
    aa, ba = _broadcast_arrays(ta, tb)
    with np.errstate(invalid="ignore"):
        m = np.maximum(aa, ba)
    a_wins, b_wins = (aa == np.inf) & (ba != np.inf), (ba == np.inf) & (aa != np.inf)
    zero = np.zeros((), dtype=m.dtype)
    if a_wins.any() or b_wins.any():  # exp(inf - inf) would make the gradient nan
        either = a_wins | b_wins
        return where(a_wins, ta, where(b_wins, tb, logaddexp(where(either, zero, ta), where(either, zero, tb))))
    shift = _wrap(np.where(np.isfinite(m), m, zero))
    return shift + log(exp(ta - shift) + exp(tb - shift))


def deg2rad(x: Tensor) -> Tensor:
    return _float_input("deg2rad", x) * (math.pi / 180)


def rad2deg(x: Tensor) -> Tensor:
    return _float_input("rad2deg", x) * (180 / math.pi)


def nan_to_num(x: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """nan, +inf and -inf replaced (by 0 and the dtype's largest and smallest finite values by
    default); the gradient passes where x was finite."""
    x = _tensor("nan_to_num", x)
    if x.dtype.kind != "f":
        return x
    info = np.finfo(x.dtype)
    fill = np.nan_to_num(x.array, nan=nan, posinf=info.max if posinf is None else posinf,
                         neginf=info.min if neginf is None else neginf)  # fmt: skip
    return where(np.isfinite(x.array), x, _wrap(fill))


def nansum(x: Tensor, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The sum over ``dim`` treating nan as 0."""
    x = _tensor("nansum", x)
    return sum(where(np.isnan(x.array), 0.0, x) if x.dtype.kind == "f" else x, dim, keepdim, dtype=dtype)


def nanmean(x: Tensor, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The mean over ``dim`` of the elements that are not nan."""
    x = _float_tensor("nanmean", x)
    counted = _wrap((~np.isnan(x.array)).astype(x.dtype))
    return nansum(x, dim, keepdim, dtype=dtype) / sum(counted, dim, keepdim)


def cumprod(x: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Cumulative product along ``dim`` (a chain of products: exact gradients at zeros)."""
    x = _tensor("cumprod", x if dtype is None else astype(_tensor("cumprod", x), dtype))
    d = _axis("cumprod", dim, builtins.max(x.ndim, 1))
    if not x.requires_grad or x.ndim == 0:
        return _wrap(np.cumprod(x.array, axis=d) if x.ndim else x.array.copy())
    running, pieces = None, []
    for i in range(x.shape[d]):
        piece = narrow(x, d, i, 1)
        running = piece if running is None else running * piece
        pieces.append(running)
    return cat(pieces, d) if pieces else x


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> Tensor:
    """The n-th forward difference along ``dim``: out[i] = x[i + 1] - x[i], n times."""
    x = _tensor("diff", x)
    d = _axis("diff", dim, x.ndim)
    parts = [_tensor("diff", p, "prepend") for p in (prepend,) if p is not None] + [x]
    parts += [_tensor("diff", a, "append") for a in (append,) if a is not None]
    out = cat(parts, d) if len(parts) > 1 else x
    for _ in range(n):
        size = out.shape[d]
        out = narrow(out, d, 1, size - 1) - narrow(out, d, 0, size - 1) if size else out
    return out


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the dims ``dim1``, ``dim2`` (moved to the last dim), ``offset`` above it."""
    x = _tensor("diagonal", x)
    d1, d2 = _axis("diagonal", dim1, x.ndim), _axis("diagonal", dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be identical, but both are {d1}")
    moved = movedim(movedim(x, d1, -1), d2 if d2 < d1 else d2 - 1, -1)  # (..., n1, n2)
    k = int(offset)
    rows = np.arange(builtins.max(-k, 0), builtins.min(moved.shape[-2], moved.shape[-1] - k))
    return getitem(moved, (Ellipsis, rows, rows + k))


def trace(x: Tensor) -> Tensor:
    """The sum of the main diagonal of a 2-D tensor."""
    x = _tensor("trace", x)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim}")
    return sum(diagonal(x))


def tile(x: Tensor, dims: Sequence[int]) -> Tensor:
    """x repeated ``dims`` times along each dim (missing leading dims count as 1), as ``repeat``."""
    x = _tensor("tile", x)
    reps = tuple(int(r) for r in dims)
    if len(reps) < x.ndim:
        reps = (1,) * (x.ndim - len(reps)) + reps
    return repeat(x, *reps)


def repeat_interleave(x: Tensor, repeats: Any, dim: int | None = None) -> Tensor:
    """Each element (each slice along ``dim``) repeated ``repeats`` times in place (None: flattened)."""
    x = _tensor("repeat_interleave", x)
    if dim is None:
        x, dim = reshape(x, -1), 0
    d = _axis("repeat_interleave", dim, builtins.max(x.ndim, 1))
    counts = np.asarray(repeats.array if isinstance(repeats, Tensor) else repeats)
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise RuntimeError(f"repeat_interleave: repeats must be non-negative integers, got {repeats!r}")
    return index_select(x, d, np.repeat(np.arange(x.shape[d]), counts))


def take(x: Tensor, index: Any) -> Tensor:
    """The elements of the flattened x at ``index`` (any shape)."""
    x = _tensor("take", x)
    return getitem(reshape(x, -1), _index_tensor("take", index))


def take_along_dim(x: Tensor, indices: Any, dim: int | None = None) -> Tensor:
    """``gather`` with broadcasting of x and ``indices`` (dim None: over the flattened x)."""
    x = _tensor("take_along_dim", x)
    idx = _index_tensor("take_along_dim", indices)
    if dim is None:
        return gather(reshape(x, -1), 0, idx.reshape(-1))
    d = _axis("take_along_dim", dim, x.ndim)
    shape = list(np.broadcast_shapes(tuple(n for i, n in enumerate(x.shape) if i != d),
                                     tuple(n for i, n in enumerate(idx.shape) if i != d)))  # fmt: skip
    x_shape, i_shape = list(shape), list(shape)
    x_shape.insert(d, x.shape[d])
    i_shape.insert(d, idx.shape[d])
    return gather(broadcast_to(x, tuple(x_shape)), d, np.broadcast_to(idx, tuple(i_shape)))


def mv(a: Tensor, v: Tensor) -> Tensor:
    """Matrix (n, m) times vector (m,)."""
    ta, tv = _tensor("mv", a), _tensor("mv", v, "vec")
    if ta.ndim != 2 or tv.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got shapes {ta.shape} and {tv.shape}")
    return matmul(ta, tv)


def inner(a: Any, b: Any) -> Tensor:
    """Sums of products over the last dims: shape a.shape[:-1] + b.shape[:-1] (a scalar: the product)."""
    ta, tb = _tensor("inner", a), _tensor("inner", b)
    if ta.ndim == 0 or tb.ndim == 0:
        return mul(ta, tb)
    if ta.shape[-1] != tb.shape[-1]:
        raise RuntimeError(f"inner: the last dims of shapes {ta.shape} and {tb.shape} differ")
    k = ta.shape[-1]
    out = matmul(reshape(ta, (-1, k)), transpose(reshape(tb, (-1, k)), 0, 1))
    return reshape(out, ta.shape[:-1] + tb.shape[:-1])


def addcmul(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 * tensor2."""
    return add(input, mul(tensor1, tensor2), alpha=value)


def addcdiv(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 / tensor2."""
    return add(input, div(tensor1, tensor2), alpha=value)


def dist(a: Any, b: Any, p: float = 2) -> Tensor:
    """The p-norm of a - b (broadcast)."""
    return norm(sub(a, b), p)


def index_add(x: Tensor, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
    """x with ``alpha * source`` slices added at ``index`` along ``dim`` (repeated indices add up)."""
    x = _tensor("index_add", x)
    idx = _index_tensor("index_add", index).reshape(-1)
    d = _axis("index_add", dim, builtins.max(x.ndim, 1))
    src = _cast(_tensor("index_add", source, "source"), x.dtype)
    if src.ndim != x.ndim or src.shape[d] != idx.size:
        raise RuntimeError(f"index_add: source of shape {src.shape} does not match {idx.size} indices along dim {d}")
    full = (slice(None),) * d + (idx % builtins.max(x.shape[d], 1),)
    return x + P.IndexAdd.apply(src if alpha == 1 else src * alpha, x.shape, full)


def index_fill(x: Tensor, dim: int, index: Any, value: Any) -> Tensor:
    """x with the slices at ``index`` along ``dim`` set to ``value``."""
    x = _tensor("index_fill", x)
    d = _axis("index_fill", dim, builtins.max(x.ndim, 1))
    full = (slice(None),) * d + (_index_tensor("index_fill", index).reshape(-1),)
    return index_put(x, full, value)


def index_copy(x: Tensor, dim: int, index: Any, source: Any) -> Tensor:
    """x with the slices at ``index`` along ``dim`` replaced by those of ``source``."""
    x = _tensor("index_copy", x)
    d = _axis("index_copy", dim, builtins.max(x.ndim, 1))
    full = (slice(None),) * d + (_index_tensor("index_copy", index).reshape(-1),)
    return index_put(x, full, source)


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """The slice at ``index`` along ``dim``, that dim removed (``x[:, index]`` for dim 1)."""
    x = _tensor("select", x)
    d = _axis("select", dim, x.ndim)
    return getitem(x, (slice(None),) * d + (int(index),))


def tensor_split(x: Tensor, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """NumPy's ``array_split``: n nearly equal parts, or the parts between the given indices."""
    x = _tensor("tensor_split", x)
    d = _axis("tensor_split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k < 1:
            raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {k}")
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        bounds = np.cumsum([0] + sizes)
    else:
        bounds = np.array([0] + [builtins.min(builtins.max(int(i), 0), n) for i in indices_or_sections] + [n])
        bounds = np.maximum.accumulate(bounds)
    return tuple(narrow(x, d, int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:]))


def fliplr(x: Tensor) -> Tensor:
    """x with dim 1 reversed."""
    return flip(x, 1)


def flipud(x: Tensor) -> Tensor:
    """x with dim 0 reversed."""
    return flip(x, 0)


def rot90(x: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """x rotated by 90 degrees k times in the plane of ``dims``, from the first towards the second."""
    x = _tensor("rot90", x)
    d0, d1 = (_axis("rot90", d, x.ndim) for d in dims)
    k %= 4
    if k == 1:
        return transpose(flip(x, d1), d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return flip(transpose(x, d0, d1), d1)
    return x


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> MaxResult:
    """The k-th smallest element along ``dim`` (1-based) and its index."""
    from .sorting import sort  # sorting builds on this module

    x = _tensor("kthvalue", x)
    d = _axis("kthvalue", dim, builtins.max(x.ndim, 1))
    size = x.shape[d] if x.ndim else 1
    if not 1 <= int(k) <= size:
        raise RuntimeError(f"kthvalue: selected number k={k} out of range for dimension {d} of size {size}")
    values, indices = sort(x, d)
    pick = (slice(None),) * d + (slice(int(k) - 1, int(k)),)
    v, i = getitem(values, pick), getitem(indices, pick)
    return MaxResult(v, i) if keepdim else MaxResult(squeeze(v, d), squeeze(i, d))


def median(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (PyTorch's: of an even count, the smaller middle element): of all elements,
    or ``(values, indices)`` along ``dim``."""
    x = _tensor("median", x)
    if dim is None:
        flat = reshape(x, -1)
        return kthvalue(flat, (flat.shape[0] + 1) // 2, 0).values
    d = _axis("median", dim, builtins.max(x.ndim, 1))
    return kthvalue(x, ((x.shape[d] if x.ndim else 1) + 1) // 2, d, keepdim)


def aminmax(x: Tensor, *, dim: int | None = None, keepdim: bool = False) -> Any:
    """``(min, max)`` over ``dim`` (default all), as a named tuple."""
    return _MinMax(amin(x, () if dim is None else dim, keepdim), amax(x, () if dim is None else dim, keepdim))


class _MinMax(NamedTuple):
    min: Tensor
    max: Tensor


# --------------------------------------------------------------------------- more of PyTorch's elementwise ops


def _float_pair(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` promoted and broadcastable, integers as the default float dtype (PyTorch's binary float ops)."""
    ta, tb = _binary(op, a, b)
    if ta.dtype.kind != "f":
        ta, tb = _cast(ta, _dtypes.get_default_dtype()), _cast(tb, _dtypes.get_default_dtype())
    return ta, tb


def _broadcast_arrays(*tensors: Tensor) -> list[np.ndarray]:
    return list(np.broadcast_arrays(*(t.array for t in tensors)))


def _exact_value(approx: Tensor, value: np.ndarray) -> Tensor:
    """``value`` (computed exactly in NumPy) carrying ``approx``'s gradient: value - (approx's value - approx).
    The difference is exactly +0 wherever ``approx`` is finite, so the result is ``value`` there, -0.0 included."""
    return _wrap(value) - (_wrap(approx.array) - approx)


def atan2(input: Any, other: Any) -> Tensor:
    """The angle of the point (other, input) in (-pi, pi] (integers as floats). Gradient y' = x / (x² + y²),
    x' = -y / (x² + y²), and 0 at (0, 0) as in PyTorch: atan(y / x) where |y| <= |x|, else
    -atan(x / y) (each ratio at most 1 in size, no division by 0), shifted to NumPy's exact angle."""
    y, x = _float_pair("atan2", input, other)
    ya, xa = _broadcast_arrays(y, x)
    value = np.arctan2(ya.astype(np.float64), xa.astype(np.float64)).astype(ya.dtype)  # float32's is 1 ulp off
    if not (y.requires_grad or x.requires_grad):
        return _wrap(value)
    origin = ((ya == 0) & (xa == 0)) | (np.isinf(ya) & np.isinf(xa))  # gradient 0 (at ±inf, PyTorch's is nan)
    steep = np.abs(ya) > np.abs(xa)
    flat = ~steep & ~origin
    one = np.ones((), dtype=value.dtype)
    shallow_angle = atan(y / where(flat, x, one))
    steep_angle = -atan(x / where(steep, y, one))
    zero = _wrap(np.zeros((), dtype=value.dtype))
    angle = where(flat, shallow_angle, where(steep, steep_angle, zero))
    return _exact_value(angle, value)


arctan2 = atan2


def hypot(input: Any, other: Any) -> Tensor:
    """sqrt(a² + b²) without overflow or underflow: m * sqrt((a/m)² + (b/m)²) with m = max(|a|, |b|)
    a constant (the identity holds for any m > 0, so gradients of every order are exact); the
    value is NumPy's ``hypot``. Floating-point inputs only, as in PyTorch."""
    a, b = _binary("hypot", input, other)
    if a.dtype.kind != "f":
        raise NotImplementedError(f'"hypot" not implemented for integer or bool tensors ({a.dtype})')
    aa, ba = _broadcast_arrays(a, b)
    value = np.hypot(aa, ba)
    if not (a.requires_grad or b.requires_grad):
        return _wrap(value)
    with np.errstate(invalid="ignore"):
        m = np.maximum(np.abs(aa), np.abs(ba))
    m = _wrap(np.where(np.isfinite(m) & (m > 0), m, 1).astype(value.dtype))
    r = sqrt(square(a / m) + square(b / m)) * m
    return where(np.isinf(value), _wrap(value), _exact_value(r, value))


def fmax(input: Any, other: Any) -> Tensor:
    """The elementwise maximum ignoring nan (nan only where both are nan); at ties the gradient
    goes to ``input`` (PyTorch's fmax)."""
    a, b = _binary("fmax", input, other)
    return where((a.array >= b.array) | (b.array != b.array), a, b)


def fmin(input: Any, other: Any) -> Tensor:
    """The elementwise minimum ignoring nan (nan only where both are nan); at ties the gradient
    goes to ``input`` (PyTorch's fmin)."""
    a, b = _binary("fmin", input, other)
    return where((a.array <= b.array) | (b.array != b.array), a, b)


def copysign(input: Any, other: Any) -> Tensor:
    """|input| with the sign (sign bit: -0.0 counts as negative) of ``other``; integers as floats.
    Gradient: ±1 for input, 0 where input == 0; 0 for ``other`` (as PyTorch)."""
    a, b = _float_pair("copysign", input, other)
    aa, ba = _broadcast_arrays(a, b)
    value = np.copysign(aa, ba)
    if not a.requires_grad:
        return _zero_gradient(value, b)
    flip = np.where(np.signbit(aa) != np.signbit(ba), -1, 1).astype(value.dtype)
    flip[np.isnan(aa)] = np.nan  # PyTorch's gradient at nan: result / input
    out = where(aa == 0, _wrap(value), a * _wrap(flip))
    return _zero_gradient(out, b)


def heaviside(input: Any, values: Any) -> Tensor:
    """0 where input < 0, ``values`` where input == 0, 1 where input > 0 (and 0 at nan), as PyTorch;
    both of one dtype. Not differentiable (a constant)."""
    x, v = _tensor("heaviside", input), _tensor("heaviside", values, "values")
    if x.dtype != v.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    x, v = _binary("heaviside", x, v)
    return _wrap(np.where(x.array == 0, v.array, x.array > 0).astype(x.dtype))


def signbit(x: Tensor) -> Tensor:
    """True where the sign bit is set (negative numbers, -0.0, -nan); a boolean constant."""
    x = _tensor("signbit", x)
    return _wrap(np.zeros(x.shape, dtype=bool) if x.dtype == np.bool_ else np.signbit(x.array))


def positive(x: Tensor) -> Tensor:
    """x itself (PyTorch's unary plus); an error for a bool tensor, as PyTorch."""
    x = _tensor("positive", x)
    if x.dtype == np.bool_:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return x


def isposinf(x: Tensor) -> Tensor:
    x = _tensor("isposinf", x)
    return _wrap(np.isposinf(x.array) if x.dtype.kind == "f" else np.zeros(x.shape, dtype=bool))


def isneginf(x: Tensor) -> Tensor:
    x = _tensor("isneginf", x)
    return _wrap(np.isneginf(x.array) if x.dtype.kind == "f" else np.zeros(x.shape, dtype=bool))


def exp2(x: Tensor) -> Tensor:
    """2 ** x (integers as floats); gradient 2 ** x * log(2)."""
    return pow(2.0, _float_input("exp2", x))


def logaddexp2(a: Any, b: Any) -> Tensor:
    """log2(2 ** a + 2 ** b) without overflow: logaddexp of a·ln 2 and b·ln 2, over ln 2."""
    ta, tb = _float_pair("logaddexp2", a, b)
    return logaddexp(ta * math.log(2), tb * math.log(2)) / math.log(2)


_erfc_float64 = np.frompyfunc(math.erfc, 1, 1)


def erfc(x: Tensor) -> Tensor:
    """1 - erf(x), exact for large x (``math.erfc`` per element, where 1 - erf(x) would round to 0);
    the gradient is -erf'(x) = -2/sqrt(pi) exp(-x²), from :func:`erf`."""
    x = _float_input("erfc", x)
    value = np.asarray(_erfc_float64(x.array.astype(np.float64)), dtype=np.float64).astype(x.dtype)
    if not x.requires_grad:
        return _wrap(value)
    return _exact_value(-erf(x), value)


# --------------------------------------------------------------------------- scans, windows, products


def _cumulative_extreme(op: str, x: Tensor, dim: int) -> MaxResult:
    """The running maximum (or minimum) along ``dim`` and the index it was taken from: the last
    index of a tie, and of nan once one is met (as PyTorch); values picked by ``gather``, so that
    the gradient goes to that index."""
    x = _tensor(op, x)
    d = _axis(op, dim, builtins.max(x.ndim, 1))
    if x.ndim == 0:
        return MaxResult(clone(x), _wrap(np.zeros((), dtype=np.int64)))
    a = x.array
    running = (np.maximum if op == "cummax" else np.minimum).accumulate(a, axis=d)
    hit = (a == running) | ((a != a) & (running != running))
    position = np.arange(a.shape[d]).reshape((-1,) + (1,) * (a.ndim - 1 - d))
    index = np.maximum.accumulate(np.where(hit, position, 0), axis=d).astype(np.int64)
    return MaxResult(gather(x, d, index), _wrap(index))


def cummax(x: Tensor, dim: int) -> MaxResult:
    """``(values, indices)``: the largest element so far along ``dim`` and its index (the last at ties)."""
    return _cumulative_extreme("cummax", x, dim)


def cummin(x: Tensor, dim: int) -> MaxResult:
    """``(values, indices)``: the smallest element so far along ``dim`` and its index (the last at ties)."""
    return _cumulative_extreme("cummin", x, dim)


def logcumsumexp(x: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(x))) along ``dim`` without overflow or underflow: a scan of ``logaddexp`` in
    log2(n) steps (each element combined with the one 1, 2, 4, ... places before it)."""
    x = _tensor("logcumsumexp", x)
    if x.dtype.kind != "f":
        raise NotImplementedError(f'"logcumsumexp" not implemented for {x.dtype} (floating-point tensors only)')
    d = _axis("logcumsumexp", dim, builtins.max(x.ndim, 1))
    if x.ndim == 0:
        return clone(x)
    if not x.requires_grad:
        with np.errstate(invalid="ignore"):
            return _wrap(np.logaddexp.accumulate(x.array, axis=d))
    n, y, k = x.shape[d], x, 1
    while k < n:
        y = cat([narrow(y, d, 0, k), logaddexp(narrow(y, d, k, n - k), narrow(y, d, 0, n - k))], d)
        k *= 2
    return y


def unfold_dimension(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """``Tensor.unfold``: the windows of ``size`` elements along ``dimension``, every ``step``, as a
    new last dim; ``dimension`` becomes the window count ``(n - size) // step + 1``. A copy (the
    gradient sums over overlapping windows)."""
    x = _tensor("unfold", x)
    d = _axis("unfold", dimension, builtins.max(x.ndim, 1))
    n = x.shape[d] if x.ndim else 1
    if size < 0:
        raise RuntimeError(f"unfold: size is {size} but must be >= 0")
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if x.ndim == 0:
        return reshape(x, (1,)) if size == 1 else reshape(x, (1,))[:0]
    starts = np.arange((n - size) // step + 1) * step
    windows = getitem(movedim(x, d, -1), (Ellipsis, starts[:, None] + np.arange(size)))
    return movedim(windows, -2, d)


def kron(input: Any, other: Any) -> Tensor:
    """The Kronecker product: out[i·m + k] = a[i] · b[k] in every dim (the fewer dims padded with
    leading ones); shape a.shape * b.shape elementwise."""
    a, b = _promoted("kron", _tensor("kron", input), _tensor("kron", other, "other"))
    nd = builtins.max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    pa = reshape(a, tuple(v for s in sa for v in (s, 1)))
    pb = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(pa * pb, tuple(i * j for i, j in zip(sa, sb)))


def cross(input: Any, other: Any, dim: int | None = None) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (broadcasting). Without ``dim``, PyTorch's
    deprecated default: the first dim of size 3 (with PyTorch's warning)."""
    a, b = _binary("cross", input, other)
    shape = np.broadcast_shapes(a.shape, b.shape)
    if dim is None:
        threes = [i for i, s in enumerate(shape) if s == 3]
        if not threes:
            raise RuntimeError("no dimension of size 3 in input")
        warnings.warn(
            "Using torch.cross without specifying the dim arg is deprecated. Please either pass the dim "
            "explicitly or simply use torch.linalg.cross. The default value of dim will change to agree "
            "with that of linalg.cross in a future release.",
            UserWarning,
            stacklevel=2,
        )
        dim = threes[0]
    d = _axis("cross", dim, builtins.max(len(shape), 1))
    size_a, size_b = ((1,) * (len(shape) - t.ndim) + t.shape for t in (a, b))
    if not shape or size_a[d] != 3 or size_b[d] != 3:
        got = f"{size_a[d]} and {size_b[d]}" if shape else "a 0-d tensor"
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {got}")
    a0, a1, a2 = unbind(broadcast_to(a, shape), d)
    b0, b1, b2 = unbind(broadcast_to(b, shape), d)
    return stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


# The losses live in nn.loss (PyTorch's torch.nn.functional signatures: weight, ignore_index,
# reduction, ...), which builds on this module; they are importable from here too.
_LOSSES = frozenset(
    {"binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "nll_loss"}
)


def __getattr__(name: str) -> Any:
    if name in _LOSSES:
        from .nn import loss

        return getattr(loss, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LOSSES})  # the losses too, for tab completion
