"""Sorting and counting with PyTorch's names and meaning: sort, argsort, topk, unique, bincount.

The sorted values are picked from the input with :func:`~tinygrad_cnn.functional.gather`, so
their gradient flows back to the positions they came from; indices and counts are int64
constants. Sorting is always stable (``stable=False`` is accepted: PyTorch leaves the order of
equal elements unspecified then), and NaN sorts as the largest value, as in PyTorch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import functional as F
from ._tensor import Tensor
from .arguments import dim as normalised_dim
from .arguments import tensor_argument


class SortResult(NamedTuple):
    """``(values, indices)``, what :func:`sort` and :func:`topk` return (PyTorch's ``torch.return_types``)."""

    values: Tensor
    indices: Tensor


def _order(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable argsort along ``axis``; descending keeps equal elements in their original order."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    return n - 1 - np.flip(np.argsort(np.flip(a, axis), axis=axis, kind="stable"), axis)


def sort(
    x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False, *, axis: int | None = None
) -> SortResult:
    """``(values, indices)`` with ``values = x.gather(dim, indices)`` sorted along ``dim``."""
    x = tensor_argument("sort", x)
    if x.ndim == 0:
        return SortResult(x, Tensor.wrap(np.zeros((), dtype=np.int64)))
    d = normalised_dim("sort", dim if axis is None else axis, x.ndim)
    indices = _order(x.array, d, descending).astype(np.int64)
    return SortResult(F.gather(x, d, indices), Tensor.wrap(indices))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort x along ``dim`` (int64)."""
    return sort(x, dim, descending, stable).indices


def msort(x: Tensor) -> Tensor:
    """x sorted along dim 0."""
    return sort(x, 0).values


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:
    """The ``k`` largest (``largest=False``: smallest) entries along ``dim`` and their indices."""
    x = tensor_argument("topk", x)
    d = normalised_dim("topk", dim, max(x.ndim, 1))
    size = x.shape[d] if x.ndim else 1
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= size:
        raise RuntimeError(f"topk: selected index k={k!r} out of range for dimension {d} of size {size}")
    values, indices = sort(x, d, descending=largest)
    if x.ndim == 0:
        return SortResult(values, indices)
    return SortResult(F.narrow(values, d, 0, int(k)), F.narrow(indices, d, 0, int(k)))


def unique(
    x: Tensor,
    sorted: bool = True,
    return_inverse: bool = False,
    return_counts: bool = False,
    dim: int | None = None,
) -> Any:
    """The distinct values of x (over all elements, or the distinct slices along ``dim``), sorted;
    with ``return_inverse`` / ``return_counts`` a tuple that adds where each element went and how
    often each value occurs. Not differentiable, as in PyTorch."""
    x = tensor_argument("unique", x)
    axis = None if dim is None else normalised_dim("unique", dim, x.ndim)
    values, inverse, counts = np.unique(x.array, return_inverse=True, return_counts=True, axis=axis)
    if axis is None:
        inverse = inverse.reshape(x.shape)  # NumPy < 2 returns it flat
    out = [Tensor.wrap(values)]
    if return_inverse:
        out.append(Tensor.wrap(inverse.reshape(-1 if axis is not None else x.shape).astype(np.int64)))
    if return_counts:
        out.append(Tensor.wrap(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(x: Tensor, weights: Any = None, minlength: int = 0) -> Tensor:
    """How often each value 0..max(x) occurs in the 1-D non-negative integer tensor x (at least
    ``minlength`` bins); with ``weights``, their sums instead of counts (in the weights' float dtype)."""
    x = tensor_argument("bincount", x)
    if x.ndim != 1 or x.dtype.kind not in "iub":
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs, got {x.dtype} of shape {x.shape}")
    if x.numel() and x.array.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs (found a negative value)")
    if weights is None:
        return Tensor.wrap(np.bincount(x.array, minlength=minlength).astype(np.int64))
    w = tensor_argument("bincount", weights, "weights")
    if w.shape != x.shape:
        raise RuntimeError(f"bincount: weights should be 1-d and have the same length as input, got {w.shape}")
    dtype = w.dtype if w.dtype.kind == "f" else np.float64
    return Tensor.wrap(np.bincount(x.array, weights=w.array, minlength=minlength).astype(dtype))
