"""The tensor arguments of ops: wrapping numbers and arrays as constant tensors, and checking dtypes,
dims and image shapes, each error naming the op and the argument at fault. Shared by
:mod:`tinygrad_cnn.functional`, the layers in :mod:`tinygrad_cnn.nn` and the Tensor methods."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tensor import Axis, Tensor
from .factories import as_tensor


def as_constant(x: Any, like: Tensor | None = None, op: str = "", name: str = "input") -> Tensor:
    """Wrap a scalar or array as a constant tensor; Python scalars take ``like``'s float dtype.

    Anything that is not numbers (None, strings, objects, ragged lists) is a TypeError naming ``op``.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)) and like.dtype.kind == "f":
        return Tensor.wrap(np.asarray(x, dtype=like.dtype))
    try:
        return as_tensor(x)  # arrays keep their dtype and memory; Python ints are int64, floats float32
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{op or 'tensor op'}: {name} must be a Tensor or an array of numbers, got {type(x).__name__} ({e})"
        ) from None


def tensor_argument(op: str, x: Any, name: str = "input") -> Tensor:
    """The tensor argument ``name`` of ``op``: a Tensor, or an array/number/list wrapped as a constant."""
    return x if isinstance(x, Tensor) else as_constant(x, None, op, name)


def require_float(op: str, *tensors: Tensor, names: Sequence[str] = ("input",)) -> None:
    for t, name in zip(tensors, names):
        if t.dtype.kind != "f" or t.dtype.itemsize > 8:
            raise TypeError(
                f"{op}: {name} must be a floating-point tensor, got dtype {t.dtype} (convert with .astype(np.float32))"
            )


def float_tensor(op: str, x: Any) -> Tensor:
    """The input of ``op`` as a tensor, which must be floating-point."""
    x = tensor_argument(op, x)
    require_float(op, x)
    return x


def dims(op: str, axis: Axis, ndim: int) -> tuple[int, ...]:
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


def dim(op: str, axis: Any, ndim: int) -> int:
    """One axis (an int, not a tuple), normalised to be non-negative."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return dims(op, int(axis), ndim)[0]


def conv_weight_and_bias(op: str, x: Tensor, weight: Tensor, bias: Any, channels: int) -> Tensor | None:
    """A convolution's ``bias`` (None, or a tensor of shape (channels,)) as a tensor, after checking
    that it and ``weight`` have ``x``'s dtype; errors name ``op`` and the shapes or dtypes at fault."""
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    if bias is None:
        return None
    bias = tensor_argument(op, bias, "bias")
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({channels},) for weight {weight.shape}")
    if bias.dtype != x.dtype:
        raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {x.dtype}")
    return bias


def check_image(op: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    require_float(op, x)
