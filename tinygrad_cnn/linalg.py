"""``tinygrad_cnn.linalg``, PyTorch's ``torch.linalg`` for what composes from the primitives:
vector and matrix norms. Factorisations (svd, inv, det, solve, ...) are not provided."""

from __future__ import annotations

import math
from typing import Any

from . import functional as F
from ._tensor import Axis, Tensor
from .arguments import dim as one_dim
from .arguments import float_tensor

__all__ = ["cross", "matrix_norm", "norm", "vector_norm"]


def vector_norm(x: Tensor, ord: Any = 2, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The vector ``ord``-norm over ``dim`` (default: all elements): 2, 1, inf, -inf, 0 or any number."""
    return F.norm(x, ord, dim, keepdim, dtype=dtype)


def matrix_norm(
    x: Tensor, ord: Any = "fro", dim: tuple[int, int] = (-2, -1), keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """The matrix norm over the two dims ``dim``: "fro" (Frobenius), 1 / -1 (largest / smallest absolute
    column sum), inf / -inf (rows). "nuc" and 2 need singular values, which are not provided."""
    x = float_tensor("matrix_norm", x if dtype is None else F.astype(x, dtype))
    if x.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: the input must have at least 2 dims, got shape {x.shape}")
    rows, cols = (one_dim("linalg.matrix_norm", d, x.ndim) for d in dim)
    if rows == cols:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different, got {tuple(dim)}")
    if ord == "fro":
        return F.norm(x, 2, (rows, cols), keepdim)
    if ord in (1, -1, math.inf, -math.inf):
        summed, other = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = F.sum(F.abs(x), summed, keepdim=True)
        out = F.amax(sums, other, keepdim=True) if ord > 0 else F.amin(sums, other, keepdim=True)
        return out if keepdim else F.squeeze(out, (rows, cols))
    raise NotImplementedError(
        f"linalg.matrix_norm: ord={ord!r} needs singular values, which tinygrad_cnn does not compute "
        "(supported: 'fro', 1, -1, inf, -inf)"
    )


def norm(x: Tensor, ord: Any = None, dim: Axis = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """PyTorch's ``linalg.norm``: with ``dim`` an int, or ``ord`` None and ``dim`` None, a vector norm
    (of the flattened tensor); with ``dim`` a pair, or ``ord`` given on a 2-D tensor, a matrix norm."""
    x = float_tensor("linalg.norm", x)
    if isinstance(dim, int) or (dim is None and (ord is None or x.ndim == 1)):
        return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is None and x.ndim != 2:
        raise RuntimeError(
            f"linalg.norm: with ord={ord!r} and dim=None the input must be 1-D or 2-D, got shape {x.shape}"
        )
    pair = (-2, -1) if dim is None else tuple(dim)
    if len(pair) != 2:
        raise RuntimeError(f"linalg.norm: dim must be an int or a pair of ints, got {dim!r}")
    return matrix_norm(x, "fro" if ord is None else ord, pair, keepdim, dtype=dtype)


def cross(input: Any, other: Any, *, dim: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (default the last), broadcasting."""
    return F.cross(input, other, dim)
