"""Tensor factories with PyTorch's names and arguments: ``tensor``, ``zeros``, ``randn``, ``arange``, ...

Sizes are given as ``zeros(2, 3)`` or ``zeros((2, 3))``. Floating-point results default to float32
(:func:`tinygrad_cnn.get_default_dtype`), integer ones to int64; every factory takes ``dtype``,
``requires_grad`` and (for scripts written for PyTorch) ``device``, which must be the CPU. Random
ones draw from the global generator that :func:`tinygrad_cnn.manual_seed` seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dtypes
from ._device import require_cpu
from ._tensor import Tensor
from .random import as_numpy_generator, default_generator


def _sizes(op: str, size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}(): size must be ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"{op}(): Trying to create tensor with negative dimension {s}: {size}")
    return tuple(int(s) for s in size)


def _make(arr: np.ndarray, requires_grad: bool, device: Any) -> Tensor:
    if device is not None:
        require_cpu(device)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"tensor: cannot hold data of dtype {arr.dtype}; tensors hold numbers or booleans")
    return Tensor.wrap(arr).requires_grad_(requires_grad)


def _float(dtype: Any) -> np.dtype:
    return _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, an array or a tensor).
    Python floats become float32, Python ints int64, as ``torch.tensor``."""
    if isinstance(data, Tensor):
        data = data.array
    if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        data = [d.array if isinstance(d, Tensor) else d for d in data]
    try:
        arr = np.array(data, dtype=None if dtype is None else np.dtype(dtype))
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__}: {e}") from None
    if dtype is None and arr.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        arr = arr.astype(_dtypes.get_default_dtype())
    return _make(arr, requires_grad, device)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor, sharing its memory when it is already an array of that dtype."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    if isinstance(data, np.ndarray):
        return _make(data if dtype is None else data.astype(dtype, copy=False), False, device)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing ``arr``'s memory and dtype (writes to one show in the other)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"from_numpy: can't convert an array of dtype {arr.dtype}; tensors hold numbers or booleans")
    return Tensor.wrap(arr)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_sizes("zeros", size), dtype=_float(dtype)), requires_grad, device)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_sizes("ones", size), dtype=_float(dtype)), requires_grad, device)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialised memory of that size (it may hold any values)."""
    return _make(np.empty(_sizes("empty", size), dtype=_float(dtype)), requires_grad, device)


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:  # fmt: skip
    """A tensor of ``size`` filled with ``fill_value``; the dtype follows the value (float32 for a float)."""
    if dtype is None:
        dtype = _dtypes.result_type(fill_value)
    return _make(np.full(_sizes("full", (size,)), fill_value, dtype=np.dtype(dtype)), requires_grad, device)


def _like(op: str, x: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(x).__name__}")
    return x.shape, x.dtype if dtype is None else np.dtype(dtype)


def zeros_like(x: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like("zeros_like", x, dtype)
    return _make(np.zeros(shape, dtype=dt), requires_grad, device)


def ones_like(x: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like("ones_like", x, dtype)
    return _make(np.ones(shape, dtype=dt), requires_grad, device)


def empty_like(x: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like("empty_like", x, dtype)
    return _make(np.empty(shape, dtype=dt), requires_grad, device)


def full_like(x: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:  # fmt: skip
    shape, dt = _like("full_like", x, dtype)
    return _make(np.full(shape, fill_value, dtype=dt), requires_grad, device)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1)."""
    arr = default_generator().random(_sizes("rand", size)).astype(_float(dtype))
    return _make(arr, requires_grad, device)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal."""
    arr = default_generator().standard_normal(_sizes("randn", size)).astype(_float(dtype))
    return _make(arr, requires_grad, device)


def randint(*args: Any, size: Any = None, dtype: Any = None, device: Any = None,
            requires_grad: bool = False) -> Tensor:  # fmt: skip
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high), int64."""
    if size is None:
        *bounds, size = args
    else:
        bounds = list(args)
    if len(bounds) == 1:
        low, high = 0, bounds[0]
    elif len(bounds) == 2:
        low, high = bounds
    else:
        raise TypeError("randint(): expected randint(high, size) or randint(low, high, size)")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    arr = default_generator().integers(low, high, _sizes("randint", (size,)))
    return _make(arr.astype(np.int64 if dtype is None else np.dtype(dtype)), requires_grad, device)


def rand_like(x: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like("rand_like", x, dtype)
    return _make(default_generator().random(shape).astype(dt), requires_grad, device)


def randn_like(x: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like("randn_like", x, dtype)
    return _make(default_generator().standard_normal(shape).astype(dt), requires_grad, device)


def randint_like(x: Tensor, low: int, high: int | None = None, *, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> Tensor:  # fmt: skip
    if high is None:
        low, high = 0, low
    shape, dt = _like("randint_like", x, dtype)
    return _make(default_generator().integers(low, high, shape).astype(dt), requires_grad, device)


def randperm(n: int, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    arr = default_generator().permutation(int(n)).astype(np.int64 if dtype is None else np.dtype(dtype))
    return _make(arr, requires_grad, device)


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:  # fmt: skip
    """``arange(end)`` or ``arange(start, end, step)``: int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        dtype = _dtypes.result_type(start, end, step)
    return _make(np.arange(start, end, step).astype(np.dtype(dtype)), requires_grad, device)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:  # fmt: skip
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps!r}")
    return _make(np.linspace(start, end, int(steps)).astype(_float(dtype)), requires_grad, device)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:  # fmt: skip
    """The n x m identity matrix."""
    return _make(np.eye(n, m, dtype=_float(dtype)), requires_grad, device)


def _legacy_type(name: str, dtype: Any) -> Any:
    def make(*data: Any) -> Tensor:
        return Tensor(*data, dtype=dtype)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"PyTorch's legacy ``{name}(data)`` or ``{name}(*sizes)``: a {np.dtype(dtype)} tensor."
    return make


FloatTensor = _legacy_type("FloatTensor", np.float32)
DoubleTensor = _legacy_type("DoubleTensor", np.float64)
LongTensor = _legacy_type("LongTensor", np.int64)
IntTensor = _legacy_type("IntTensor", np.int32)
ByteTensor = _legacy_type("ByteTensor", np.uint8)
BoolTensor = _legacy_type("BoolTensor", np.bool_)


def _rng(generator: Any) -> np.random.Generator:
    return default_generator() if generator is None else as_numpy_generator(generator)


def bernoulli(input: Any, p: Any = None, *, generator: Any = None) -> Tensor:
    """1 with probability ``input`` (or ``p``) per element, else 0, in the probabilities' float dtype."""
    probs = as_tensor(input)
    chance = probs.array if p is None else np.broadcast_to(np.asarray(p), probs.shape)
    if probs.dtype.kind != "f":
        raise TypeError(f"bernoulli: probabilities must be floating-point, got {probs.dtype}")
    if chance.size and (np.nanmin(chance) < 0 or np.nanmax(chance) > 1 or np.isnan(chance).any()):
        raise RuntimeError("bernoulli: expected all probabilities to be in [0, 1]")
    return _make((_rng(generator).random(probs.shape) < chance).astype(probs.dtype), False, None)


def multinomial(input: Any, num_samples: int, replacement: bool = False, *, generator: Any = None) -> Tensor:
    """``num_samples`` category indices per row of non-negative weights (1-D or 2-D), drawn with or
    without replacement, as int64."""
    weights = as_tensor(input).array
    if weights.ndim not in (1, 2) or weights.shape[-1] == 0:
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim with categories, got shape {weights.shape}")
    rows = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
    if (rows < 0).any() or not np.isfinite(rows).all() or (rows.sum(1) <= 0).any():
        raise RuntimeError("multinomial: probabilities must be finite, non-negative, with a positive sum per row")
    if not replacement and num_samples > np.count_nonzero(rows, axis=1).min():
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = _rng(generator)
    picks = [rng.choice(r.size, size=int(num_samples), replace=replacement, p=r / r.sum()) for r in rows]
    out = np.array(picks, dtype=np.int64).reshape(weights.shape[:-1] + (int(num_samples),))
    return _make(out, False, None)
