"""Argument checks shared by the functional ops, the layers and the data tools: each returns the
value normalised or raises an error that names the op, the argument and the value at fault."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np


def positive_int(op: str, name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``op`` and ``name`` (bools and floats are refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` (an int, or a pair of ints: a kernel size, stride, padding) as a pair of ints >=
    ``minimum``; a TypeError or ValueError naming ``op`` and ``name`` otherwise."""
    kind = type(value)
    if kind is int and value >= minimum:  # the common cases first: every layer call checks a few
        return value, value
    if kind is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        if value[0] >= minimum and value[1] >= minimum:
            return value
    try:
        both = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if len(both) != 2 or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in both):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if builtins.min(both) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(both[0]), int(both[1])


def single(op: str, name: str, value: Any, minimum: int) -> int:
    """``value`` (an int, or a sequence of one int: PyTorch's ``(3,)`` for a 1-D kernel size, stride,
    padding) as an int >= ``minimum``; a TypeError or ValueError naming ``op`` and ``name`` otherwise."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a sequence of one int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def pool_arguments(
    op: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """A pooling op's kernel, stride (the kernel's when None or empty, PyTorch's default), padding
    and dilation as pairs, checked; padding must be at most half the kernel (PyTorch's rule)."""
    k = pair(op, "kernel_size", kernel_size, 1)
    default_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    s = k if default_stride else pair(op, "stride", stride, 1)
    p, d = pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    return k, s, p, d
