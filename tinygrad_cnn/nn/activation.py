"""Activation functions as PyTorch has them, composed from tensor ops (their gradients come
from reverse mode); the exact GELU uses the error function, which cannot be composed from the
others: an entry of :class:`tinygrad_cnn.primitives.Elementwise`'s table.

Values and gradients at kinks follow PyTorch: LeakyReLU and ELU take their negative-side slope
at 0; Softplus is linear where ``beta * x > threshold``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import arguments, kernels
from .. import functional as F
from .._tensor import Tensor
from ..testing.conventions import away_from, declare, from_below
from . import Module, _Elementwise


def erf(input: Tensor) -> Tensor:
    """The error function, elementwise."""
    return F.erf(input)


@declare(from_below(at=0.0))
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise (the slope at 0 is negative_slope, as PyTorch)."""
    x = arguments.float_tensor("leaky_relu", input)
    one, slope = np.ones((), dtype=x.dtype), np.asarray(negative_slope, dtype=x.dtype)
    return x * Tensor.wrap(kernels.where(x.array > 0, one, slope))  # x times its slope: one product each way


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise (expm1 of min(x, 0): exact near 0, never overflows)."""
    x = arguments.float_tensor("elu", input)
    return F.where(x.array > 0, x, F.expm1(F.clip(x, None, 0.0)) * alpha)


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
    inside = (x.array > min_val) & (x.array < max_val)
    return F.where(inside, x, Tensor.wrap(np.clip(x.array, min_val, max_val)))


@declare(away_from(3.0, at=(0.0, 6.0)))
def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6), with gradient 0 at 0 and at 6 (as PyTorch)."""
    return hardtanh(input, 0.0, 6.0)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    return -F.softplus(-arguments.float_tensor("logsigmoid", input))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    x = arguments.float_tensor("mish", input)
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


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    x = arguments.tensor_argument("softmax", input)
    x = x if dtype is None else F.astype(x, dtype)
    return F.softmax(x, _softmax_dim("softmax", x.ndim, dim))


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    x = arguments.tensor_argument("log_softmax", input)
    x = x if dtype is None else F.astype(x, dtype)
    return F.log_softmax(x, _softmax_dim("log_softmax", x.ndim, dim))


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(_Elementwise):
    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)

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
        return silu(x)


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
        return hardtanh(x, self.min_val, self.max_val)

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
        return mish(x)


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


__all__ = [
    "ELU",
    "GELU",
    "Hardtanh",
    "LeakyReLU",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "ReLU6",
    "SiLU",
    "Softmax",
    "Softplus",
    "Softsign",
    "elu",
    "erf",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "logsigmoid",
    "mish",
    "relu6",
    "silu",
    "softmax",
    "softplus",
    "softsign",
]
