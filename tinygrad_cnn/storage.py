"""The one place where ``nn``, ``nn.init`` and ``optim`` reach a tensor's NumPy array.

Layers update buffers (BatchNorm's running statistics), initialisers and optimizers write
parameters in place, outside the tape, as PyTorch does under ``no_grad``. These helpers keep
that access in one spot: ``Tensor.array`` (``.data`` is PyTorch's detached Tensor sharing it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._tensor import Tensor


def array_of(t: Any) -> np.ndarray:
    """The array that holds ``t``'s values (shared, not copied); ``t`` a Tensor or an ndarray."""
    if isinstance(t, np.ndarray):
        return t
    return t.array if isinstance(t, Tensor) else np.asarray(t)


def set_array(t: Tensor, values: np.ndarray) -> None:
    """Make ``values`` the array of ``t`` (a new dtype or shape allowed), keeping ``t`` the same object."""
    t.array = values


def write_(t: Tensor, values: Any) -> None:
    """Copy ``values`` into ``t``'s array in place (cast to its dtype)."""
    np.copyto(array_of(t), values, casting="unsafe")
