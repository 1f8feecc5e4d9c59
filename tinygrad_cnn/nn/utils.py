"""Gradient clipping and flat parameter vectors, as ``torch.nn.utils``.

These act on ``.grad`` and parameter values in place, outside the tape (as PyTorch's, which run
under ``no_grad``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..storage import array_of, write_
from ..tensor import Tensor


def _tensors(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm before clipping (a 0-d tensor). The scale is
    ``min(1, max_norm / (total + 1e-6))``, as PyTorch.
    """
    grads = [array_of(p.grad) for p in _tensors(parameters) if p.grad is not None]
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    norm_type = float(norm_type)
    if norm_type == math.inf:
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite ({total}), "
            "so it cannot be clipped; set error_if_nonfinite=False to clip anyway"
        )
    scale = min(1.0, max_norm / (total + 1e-6))
    if scale < 1.0:
        for g in grads:
            g *= np.asarray(scale, dtype=g.dtype)
    return Tensor(np.array(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    for p in _tensors(parameters):
        if p.grad is not None:
            g = array_of(p.grad)
            np.clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters' values, flattened and concatenated, as one 1-D tensor (a copy)."""
    arrays = [array_of(p).reshape(-1) for p in parameters]
    if not arrays:
        raise ValueError("parameters_to_vector: no parameters given")
    return Tensor(np.concatenate(arrays))


def vector_to_parameters(vec: Any, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in order (in place)."""
    v = array_of(vec)
    if v.ndim != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-D vector, got shape {v.shape}")
    params = list(parameters)
    needed = sum(p.size for p in params)
    if needed != v.size:
        raise ValueError(f"vector_to_parameters: the vector has {v.size} values, the parameters hold {needed}")
    start = 0
    for p in params:
        write_(p, v[start : start + p.size].reshape(p.shape))
        start += p.size


__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
