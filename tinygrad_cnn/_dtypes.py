"""Dtypes under PyTorch's names (``tinygrad_cnn.float32``, ``long``, ...) and PyTorch's type promotion.

A dtype here is a ``numpy.dtype``: ``tg.float32 == np.float32`` and ``t.dtype == tg.float32`` both
hold. Promotion follows ``torch.result_type``: an int tensor plus a float32 tensor is float32, and a
Python scalar (or a 0-d tensor) never raises the dtype of a tensor of the same kind (int tensor + 2.5
is float32, the default float dtype; float32 tensor + 2.5 stays float32).
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool = np.dtype(np.bool_)
complex64 = cfloat = np.dtype(np.complex64)
complex128 = cdouble = np.dtype(np.complex128)

DTYPE_NAMES: dict[str, np.dtype] = {
    "float16": float16, "half": half, "float32": float32, "float": float, "float64": float64, "double": double,
    "uint8": uint8, "int8": int8, "int16": int16, "short": short, "int32": int32, "int": int, "int64": int64,
    "long": long, "bool": bool, "complex64": complex64, "cfloat": cfloat, "complex128": complex128, "cdouble": cdouble,
}  # fmt: skip

_TYPE_NAMES: dict[np.dtype, str] = {
    float16: "HalfTensor", float32: "FloatTensor", float64: "DoubleTensor", uint8: "ByteTensor", int8: "CharTensor",
    int16: "ShortTensor", int32: "IntTensor", int64: "LongTensor", bool: "BoolTensor",
}  # fmt: skip

_default_float = float32


def get_default_dtype() -> np.dtype:
    """The dtype of tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(dtype: Any) -> None:
    """Make Python floats become ``dtype`` (float32 or float64), as ``torch.set_default_dtype``."""
    global _default_float
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    _default_float = dt


def category(dtype: np.dtype) -> builtins.int:
    """0 bool, 1 integer, 2 floating point, 3 complex: promotion only moves up this order."""
    return _CATEGORY[dtype.kind]


_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """``torch.promote_types``: an integer with a float is that float (NumPy would widen it)."""
    ca, cb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ca != cb and 2 in (ca, cb) and builtins.max(ca, cb) == 2:
        return a if ca == 2 else b
    return np.promote_types(a, b)


def result_type(*operands: Any) -> np.dtype:
    """The dtype of an elementwise op on ``operands`` (arrays with their ndim, or Python scalars), as
    ``torch.result_type``: dimensioned operands first; 0-d ones and then Python scalars count only
    where they are of a higher category (and Python floats then count as the default dtype)."""
    dim = zero = wrapped = None
    for x in operands:
        x = getattr(x, "array", x)  # a Tensor counts as its array
        if isinstance(x, np.ndarray):
            if x.ndim:
                dim = x.dtype if dim is None else promote_types(dim, x.dtype)
            else:
                zero = x.dtype if zero is None else promote_types(zero, x.dtype)
        else:
            dt = _scalar_dtype(x)
            wrapped = dt if wrapped is None else promote_types(wrapped, dt)
    return _combine(dim, _combine(zero, wrapped))  # type: ignore[return-value]


def _scalar_dtype(x: Any) -> np.dtype:
    if isinstance(x, (builtins.bool, np.bool_)):
        return bool
    if isinstance(x, (builtins.int, np.integer)):
        return int64
    if isinstance(x, (builtins.float, np.floating)):
        return _default_float
    if isinstance(x, (complex, np.complexfloating)):
        return complex64 if _default_float != float64 else complex128
    raise TypeError(f"expected a number, got {type(x).__name__}")


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    if higher is None:
        return lower
    if lower is None:
        return higher
    if _CATEGORY[higher.kind] >= 2:
        return higher if _CATEGORY[lower.kind] <= _CATEGORY[higher.kind] else promote_types(higher, lower)
    if higher == bool or _CATEGORY[lower.kind] >= 2:
        return promote_types(higher, lower)
    return higher


def type_name(dtype: np.dtype) -> str:
    """PyTorch's type string of a dtype, e.g. ``'torch.FloatTensor'`` (what ``t.type()`` returns)."""
    return "torch." + _TYPE_NAMES.get(dtype, f"{dtype.name}Tensor")


def from_type_name(dtype: Any) -> np.dtype:
    """A dtype from a dtype, or from a type string such as ``'torch.FloatTensor'``."""
    if isinstance(dtype, str) and dtype.startswith(("torch.", "tinygrad_cnn.")):
        name = dtype.split(".", 1)[1]
        for dt, tn in _TYPE_NAMES.items():
            if tn == name:
                return dt
        if name in DTYPE_NAMES:
            return DTYPE_NAMES[name]
        raise TypeError(f"invalid type: {dtype!r}")
    return np.dtype(dtype)
