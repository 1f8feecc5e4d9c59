"""Activation functions as PyTorch has them, composed from tensor ops (their gradients come
from reverse mode); the exact GELU uses the error function, which cannot be composed from the
others: an entry of :class:`tinygrad_cnn.primitives.Elementwise`'s table.

Values and gradients at kinks follow PyTorch: LeakyReLU, PReLU, RReLU and the ELU family (ELU,
SELU, CELU) take their negative-side slope at 0; Hardtanh, ReLU6, Hardsigmoid, Hardshrink and
Softshrink have gradient 0 at their corners; Softplus is linear where ``beta * x > threshold``.
``inplace=True`` (and the ``*_`` spellings such as ``elu_``) write the result into the input as
the in-place tensor ops do (``Tensor.replace_``; rules in docs/pytorch.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import arguments, kernels
from .. import functional as F
from .._tensor import Tensor
from ..autograd import no_grad
from ..testing.conventions import away_from, declare, from_below, toward
from . import Module, Parameter, _Elementwise, _float_dtype


def erf(input: Tensor) -> Tensor:
    """The error function, elementwise."""
    return F.erf(input)


@declare(from_below(at=0.0))
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise (the slope at 0 is negative_slope, as PyTorch)."""
    x = arguments.float_tensor("leaky_relu", input)
    if inplace:
        return x.replace_(lambda t: leaky_relu(t, negative_slope), op="leaky_relu_")
    one, slope = np.ones((), dtype=x.dtype), np.asarray(negative_slope, dtype=x.dtype)
    return x * Tensor.wrap(kernels.where(x.array > 0, one, slope))  # x times its slope: one product each way


def _elu_family(op: str, input: Tensor, alpha: float, scale: float, input_scale: float, inplace: bool) -> Tensor:
    """PyTorch's ELU kernel: scale * x for x > 0, else alpha * scale * (exp(input_scale * x) - 1)
    (expm1 of min(x, 0): exact near 0, never overflows). The slope at 0 and the gradient at nan are
    the negative and the positive side's, as PyTorch's ``x <= 0 ? ... : ...``."""
    x = arguments.float_tensor(op, input)
    if inplace:
        return x.replace_(lambda t: _elu_family(op, t, alpha, scale, input_scale, False), op=op + "_")
    negative = x.array <= 0
    coefficient = alpha * scale
    if not x.requires_grad:  # a constant: NumPy's values, in PyTorch's order of operations
        with np.errstate(over="ignore", invalid="ignore"):
            curve = np.expm1(np.where(negative, x.array, 0) * x.dtype.type(input_scale)) * x.dtype.type(coefficient)
            return Tensor.wrap(np.where(negative, curve, x.array * x.dtype.type(scale)).astype(x.dtype, copy=False))
    below = F.where(negative, x, np.zeros((), dtype=x.dtype))
    below = below * input_scale if input_scale != 1 else below
    # The value is NumPy's expm1 (exact near 0), the gradient exp's, exp(x) exactly (expm1's rule,
    # y + 1, cancels for x << 0): expm1(b) - (exp(b)'s value - exp(b)), the bracket exactly 0.
    e = F.exp(below)
    curve = Tensor.wrap(np.expm1(below.array)) - (Tensor.wrap(e.array) - e)
    curve = curve * coefficient if coefficient != 1 else curve
    return F.where(negative, curve, x * scale if scale != 1 else x)


@declare(from_below(at=0.0))
def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return _elu_family("elu", input, alpha, 1.0, 1.0, inplace)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@declare(from_below(at=0.0))
def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with PyTorch's constants (alpha ≈ 1.6733, scale ≈ 1.0507)."""
    return _elu_family("selu", input, _SELU_ALPHA, _SELU_SCALE, 1.0, inplace)


def selu_(input: Tensor) -> Tensor:
    return selu(input, inplace=True)


@declare(from_below(at=0.0))
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)); alpha must not be 0."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _elu_family("celu", input, alpha, 1.0, 1.0 / alpha, inplace)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(input, alpha, inplace=True)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x): exactly with erf (``approximate="none"``), or PyTorch's tanh approximation."""
    x = arguments.float_tensor("gelu", input)
    if approximate == "none":
        return x * (erf(x * (1 / math.sqrt(2))) + 1) * 0.5
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * (F.tanh(inner) + 1) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = arguments.float_tensor("silu", input)
    if inplace:
        return x.replace_(silu, op="silu_")
    return x * F.sigmoid(x)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as PyTorch)."""
    x = arguments.float_tensor("softplus", input)
    scaled = x * beta if beta != 1 else x
    smooth = F.softplus(scaled) / beta if beta != 1 else F.softplus(scaled)
    return F.where(scaled.array > threshold, x, smooth)


@declare(away_from(0.0, at=(-1.0, 1.0)))
def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clipped to [min_val, max_val]; unlike ``clamp``, the gradient at the bounds themselves is 0
    (PyTorch's hardtanh, relu6)."""
    x = arguments.float_tensor("hardtanh", input)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}")
    if inplace:
        return x.replace_(lambda t: hardtanh(t, min_val, max_val), op="hardtanh_")
    inside = (x.array > min_val) & (x.array < max_val)
    return F.where(inside, x, Tensor.wrap(np.clip(x.array, min_val, max_val)))


@declare(away_from(3.0, at=(0.0, 6.0)))
def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6), with gradient 0 at 0 and at 6 (as PyTorch)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(input, min_val, max_val, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def relu_(input: Tensor) -> Tensor:
    """max(x, 0) in place (``x.relu_()``)."""
    return arguments.tensor_argument("relu_", input).relu_()


@declare(from_below())
def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else ``value`` (nan passes, with its gradient; as PyTorch)."""
    x = arguments.tensor_argument("threshold", input)
    if inplace:
        return x.replace_(lambda t: _threshold(t, threshold, value), op="threshold_")
    return _threshold(x, threshold, value)


def _threshold(x: Tensor, threshold: float, value: float) -> Tensor:
    return F.where(x.array <= threshold, Tensor.wrap(np.asarray(value, dtype=x.dtype)), x)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    x = arguments.tensor_argument("threshold_", input)
    return x.replace_(lambda t: _threshold(t, threshold, value), op="threshold_")


@declare(away_from(0.0, at=(-3.0, 3.0)))
def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x + 3, 0), 6) / 6; gradient 1/6 strictly inside (-3, 3), 0 elsewhere (as PyTorch)."""
    x = arguments.float_tensor("hardsigmoid", input)
    if inplace:
        return x.replace_(hardsigmoid, op="hardsigmoid_")
    inside = (x.array > -3) & (x.array < 3)
    with np.errstate(invalid="ignore"):
        outside = Tensor.wrap(np.clip(x.array + 3, 0, 6) / 6)
    return F.where(inside, (x + 3) / 6, outside)


@declare(away_from(0.0, at=(-3.0, 3.0)))
def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * min(max(x + 3, 0), 6) / 6; gradient 0 for x <= -3, (2x + 3) / 6 for -3 < x < 3, 1 from 3
    on (and at nan), as PyTorch."""
    x = arguments.float_tensor("hardswish", input)
    if inplace:
        return x.replace_(hardswish, op="hardswish_")
    low, middle = x.array <= -3, (x.array > -3) & (x.array < 3)
    inner = F.where(middle, x, np.zeros((), dtype=x.dtype))  # 0 outside: no inf * 0 in the gradient
    return F.where(low, x * 0, F.where(middle, inner * (inner + 3) / 6, x))


def _check_lambd(op: str, lambd: float) -> None:
    if not lambd >= 0:
        raise RuntimeError(f"{op}: lambda must be greater or equal to 0, but found to be {lambd}")


@declare(toward(0.0, at=(-0.5, 0.5)))
def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0 (gradient 0 at ±lambd; nan passes, as PyTorch)."""
    x = arguments.float_tensor("hardshrink", input)
    inside = (x.array >= -lambd) & (x.array <= lambd)
    return F.where(inside, np.zeros((), dtype=x.dtype), x)


@declare(toward(0.0, at=(-0.5, 0.5)))
def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd where x > lambd, x + lambd where x < -lambd, else 0 (gradient 0 at ±lambd; nan
    passes); lambd >= 0, as PyTorch."""
    x = arguments.float_tensor("softshrink", input)
    _check_lambd("softshrink", lambd)
    inside = (x.array >= -lambd) & (x.array <= lambd)
    shift = Tensor.wrap((np.sign(x.array) * lambd).astype(x.dtype))
    return F.where(inside, np.zeros((), dtype=x.dtype), x - shift)


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    x = arguments.float_tensor("tanhshrink", input)
    return x - F.tanh(x)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), with a and b the two halves of ``input`` along ``dim`` (its size must be even)."""
    x = arguments.float_tensor("glu", input)
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = arguments.dim("glu", dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {x.shape[d]}")
    a, b = F.chunk(x, 2, d)
    return a * F.sigmoid(b)


@declare(from_below(at=0.0))
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x for x > 0, weight * x otherwise, ``weight`` one slope or one per channel (dim 1); the slope
    at 0 is the weight's, as PyTorch."""
    x = arguments.float_tensor("prelu", input)
    w = arguments.float_tensor("prelu", weight)
    if w.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {w.ndim}")
    n = w.numel()
    if n == 1:
        w = F.reshape(w, ())
    else:
        if x.ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = x.shape[1] if x.ndim >= 2 else 1
        if n != channels:
            raise RuntimeError(
                "Mismatch of parameter numbers and input channel size. "
                f"Found parameter numbers = {n} and channel size = {channels}."
            )
        w = F.reshape(w, (n,) + (1,) * (x.ndim - 2))
    positive = x.array > 0
    negative = F.where(positive, np.zeros((), dtype=x.dtype), x)  # 0 where unused: no inf * 0 in weight's gradient
    return F.where(positive, x, w * negative)


def rrelu(
    input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False
) -> Tensor:
    """x for x > 0, a * x otherwise: in training a drawn uniformly from [lower, upper] per element
    (the library's generator), in eval a = (lower + upper) / 2 (``leaky_relu``), as PyTorch."""
    x = arguments.float_tensor("rrelu", input)
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    if inplace:
        return x.replace_(lambda t: rrelu(t, lower, upper, training), op="rrelu_")
    if not training:
        return leaky_relu(x, (lower + upper) / 2)
    slopes = F.random_like(x, "uniform", lower, upper).array
    return x * Tensor.wrap(kernels.where(x.array <= 0, slopes, np.ones((), dtype=x.dtype)))


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    return rrelu(input, lower, upper, training, inplace=True)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    return -F.softplus(-arguments.float_tensor("logsigmoid", input))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    x = arguments.float_tensor("mish", input)
    if inplace:
        return x.replace_(mish, op="mish_")
    return x * F.tanh(F.softplus(x))


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    x = arguments.float_tensor("softsign", input)
    return x / (F.abs(x) + 1)


def _softmax_dim(op: str, ndim: int, dim: int | None) -> int:
    """PyTorch's implicit dim for dim=None (0 for 0-, 1- and 3-D inputs, else 1)."""
    if dim is None:
        return 0 if ndim in (0, 1, 3) else 1
    return dim


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    x = arguments.tensor_argument("softmax", input)
    x = x if dtype is None else F.astype(x, dtype)
    return F.softmax(x, _softmax_dim("softmax", x.ndim, dim))


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """softmax(-x) along ``dim``."""
    x = arguments.tensor_argument("softmin", input)
    x = x if dtype is None else F.astype(x, dtype)
    return F.softmax(-x, _softmax_dim("softmin", x.ndim, dim))


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    x = arguments.tensor_argument("log_softmax", input)
    x = x if dtype is None else F.astype(x, dtype)
    return F.log_softmax(x, _softmax_dim("log_softmax", x.ndim, dim))


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(_Elementwise):
    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return silu(x, self.inplace)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(_Elementwise):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Tensor) -> Tensor:
        return hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LogSigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return logsigmoid(x)


class Mish(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return mish(x, self.inplace)


class Softsign(Module):
    def forward(self, x: Tensor) -> Tensor:
        return softsign(x)


class Softmax(Module):
    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PReLU(Module):
    """x for x > 0, weight * x otherwise, with a learnable ``weight`` of ``num_parameters`` slopes
    (1, or the number of channels: dim 1 of the input), initialised to ``init``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None) -> None:
        # PyTorch's attribute: an int, shadowing Module.num_parameters() on this layer
        self.num_parameters = num_parameters  # type: ignore[method-assign,assignment]
        self.init = init
        self.weight = Parameter(np.full((num_parameters,), init, dtype=_float_dtype("PReLU", dtype)))

    def reset_parameters(self) -> None:
        with no_grad():
            self.weight.fill_(self.init)

    def forward(self, x: Tensor) -> Tensor:
        return prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Hardswish(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return hardswish(x, self.inplace)

    def extra_repr(self) -> str:
        return ""  # PyTorch's repr leaves inplace out


class Hardsigmoid(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return hardsigmoid(x, self.inplace)

    def extra_repr(self) -> str:
        return ""  # PyTorch's repr leaves inplace out


class SELU(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return selu(x, self.inplace)


class CELU(_Elementwise):
    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return celu(x, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Threshold(_Elementwise):
    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.threshold, self.value = threshold, value

    def forward(self, x: Tensor) -> Tensor:
        return threshold(x, self.threshold, self.value, self.inplace)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class Softmin(Module):
    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return softmin(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Hardshrink(Module):
    def __init__(self, lambd: float = 0.5) -> None:
        self.lambd = lambd

    def forward(self, x: Tensor) -> Tensor:
        return hardshrink(x, self.lambd)

    def extra_repr(self) -> str:
        return f"{self.lambd}"


class Softshrink(Module):
    def __init__(self, lambd: float = 0.5) -> None:
        self.lambd = lambd

    def forward(self, x: Tensor) -> Tensor:
        return softshrink(x, self.lambd)

    def extra_repr(self) -> str:
        return str(self.lambd)


class Tanhshrink(Module):
    def forward(self, x: Tensor) -> Tensor:
        return tanhshrink(x)


class GLU(Module):
    def __init__(self, dim: int = -1) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return glu(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class RReLU(_Elementwise):
    """Leaky ReLU with a random negative slope from [lower, upper] per element in training, and
    (lower + upper) / 2 in eval mode."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.lower, self.upper = lower, upper

    def forward(self, x: Tensor) -> Tensor:
        return rrelu(x, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")


__all__ = [
    "CELU",
    "ELU",
    "GELU",
    "GLU",
    "Hardshrink",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "LeakyReLU",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "PReLU",
    "RReLU",
    "ReLU6",
    "SELU",
    "SiLU",
    "Softmax",
    "Softmin",
    "Softplus",
    "Softshrink",
    "Softsign",
    "Tanhshrink",
    "Threshold",
    "celu",
    "celu_",
    "elu",
    "elu_",
    "erf",
    "gelu",
    "glu",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "hardtanh_",
    "leaky_relu",
    "leaky_relu_",
    "log_softmax",
    "logsigmoid",
    "mish",
    "prelu",
    "relu6",
    "relu_",
    "rrelu",
    "rrelu_",
    "selu",
    "selu_",
    "silu",
    "softmax",
    "softmin",
    "softplus",
    "softshrink",
    "softsign",
    "tanhshrink",
    "threshold",
    "threshold_",
]
