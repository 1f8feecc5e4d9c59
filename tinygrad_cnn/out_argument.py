"""PyTorch's ``out=`` argument for the top-level functions that have it: ``torch.matmul(a, b, out=c)``.

The result is computed as without ``out``, then written into ``out`` (cast to its dtype when the
cast is safe, as PyTorch allows: an integer result into a float tensor, not a float result into an
integer one) and ``out`` is returned; an ``out`` of another shape is resized, with PyTorch's warning
when it held elements. As in PyTorch, ``out=`` is refused while recording an op whose inputs
require grad: its result could not be differentiated.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from . import _dtypes
from ._tensor import Tensor
from .autograd import is_grad_enabled, no_grad

# The functions of the namespace that take ``out=`` in PyTorch.
NAMES = (
    "abs absolute add addmm all amax amin any argmax argmin bmm cat ceil clamp clamp_max clamp_min clip concat "
    "concatenate cos cumsum diag div divide dot eq exp expm1 floor gather ge ger gt index_select le lerp log log1p "
    "log2 log10 logical_and logical_not logical_or logical_xor logsumexp lt masked_select matmul max maximum mean "
    "min minimum mm mul multiply ne neg nonzero norm outer pow prod reciprocal remainder round rsqrt sigmoid sign "
    "sin sort sqrt square stack std sub subtract sum tanh topk tril triu true_divide trunc var where "
    "arctan2 atan2 copysign cross cummax cummin erfc exp2 fix fmax fmin greater_equal heaviside hypot isneginf "
    "isposinf kron less less_equal logaddexp2 logcumsumexp not_equal sgn signbit"
).split()


def with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking a keyword ``out`` (a Tensor, or a tuple of them for a function with several results)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if out is None:
            return result
        if isinstance(result, tuple):
            if not isinstance(out, (tuple, list)) or len(out) != len(result):
                raise TypeError(f"{fn.__name__}(): out must be a tuple of {len(result)} tensors")
            written = [write(fn.__name__, r, o) for r, o in zip(result, out)]
            return type(result)(*written) if hasattr(result, "_fields") else tuple(written)
        return write(fn.__name__, result, out)

    return wrapper


def write(name: str, result: Tensor, out: Any) -> Tensor:
    """Write ``result`` into the tensor ``out`` (see the module docstring); returns ``out``."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if result.requires_grad or out.requires_grad and is_grad_enabled():
        raise RuntimeError(
            f"{name}(): functions with out=... arguments don't support automatic differentiation, "
            "but one of the arguments requires grad."
        )
    if _dtypes.category(result.dtype) > _dtypes.category(out.dtype):
        raise RuntimeError(f"{name}(): result type {result.dtype} can't be cast to the desired output type {out.dtype}")
    with no_grad():
        if out.shape == result.shape:
            return out.copy_(result)
        if out.numel() != 0:
            warnings.warn(
                f"{name}(): an output with one or more elements was resized since it had shape {list(out.shape)}, "
                f"which does not match the required output shape {list(result.shape)}. This behavior is deprecated, "
                "and in a future PyTorch release outputs will not be resized unless they have zero elements.",
                UserWarning,
                stacklevel=3,
            )
        out.data = result.array.astype(out.dtype)
    return out
