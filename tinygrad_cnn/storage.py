"""The one place where ``nn``, ``nn.init`` and ``optim`` reach a tensor's NumPy array.

Layers update buffers (BatchNorm's running statistics), initialisers and optimizers write
parameters in place, outside the tape, as PyTorch does under ``no_grad``. These helpers keep
that access in one spot, whatever ``Tensor.data`` holds (an ndarray, or a Tensor sharing it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tensor import Tensor


def array_of(t: Any) -> np.ndarray:
    """The array that holds ``t``'s values (shared, not copied); ``t`` a Tensor or an ndarray."""
    if isinstance(t, np.ndarray):
        return t
    data = t.data if isinstance(t, Tensor) else t
    return data if isinstance(data, np.ndarray) else np.asarray(data)


def set_array(t: Tensor, values: np.ndarray) -> None:
    """Make ``values`` the array of ``t`` (a new dtype or shape allowed), keeping ``t`` the same object."""
    if isinstance(t.data, np.ndarray):
        t.data = values
    else:  # .data is a Tensor view: assigning a Tensor swaps the storage, as in PyTorch
        t.data = Tensor(values)


def write_(t: Tensor, values: Any) -> None:
    """Copy ``values`` into ``t``'s array in place (cast to its dtype)."""
    np.copyto(array_of(t), values, casting="unsafe")
