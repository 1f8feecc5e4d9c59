"""Embedding: a lookup table of learnable vectors, indexed by integer ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .._tensor import Tensor
from ..random import default_generator
from ..storage import array_of
from . import Module, Parameter, _float_dtype


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """weight[input]: ids of any shape (...) -> (..., embedding_dim). The row ``padding_idx``
    gets no gradient (its value is returned as it is)."""
    ids = np.asarray(array_of(input))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {ids.dtype}")
    n = weight.shape[0]
    if ids.size and (ids.min() < -n or ids.max() >= n):
        raise IndexError(
            f"embedding: index {ids.max() if ids.max() >= n else ids.min()} is out of range for {n} embeddings"
        )
    out = F.getitem(weight, ids)
    if padding_idx is None or not (ids == padding_idx % n).any():
        return out
    mask = (ids != padding_idx % n)[..., None]
    return F.where(mask, out, Tensor(array_of(out)))  # same values, no gradient for the padding row


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Class ids of any shape (...) -> (..., num_classes) int64, 1 at each id (``num_classes=-1``:
    one more than the largest id)."""
    ids = np.asarray(array_of(tensor))
    if ids.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to index tensor of integer dtype, got {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise RuntimeError("one_hot: class values must be non-negative")
    n = (int(ids.max()) + 1 if ids.size else 0) if num_classes == -1 else int(num_classes)
    if ids.size and ids.max() >= n:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes ({n}), got {int(ids.max())}")
    return Tensor.wrap((ids[..., None] == np.arange(n)).astype(np.int64))


class Embedding(Module):
    """weight (num_embeddings, embedding_dim), initialised N(0, 1) as PyTorch (the ``padding_idx``
    row zero). ``forward(ids)``: integer ids of any shape -> (..., embedding_dim)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings {num_embeddings}")
            padding_idx %= num_embeddings
        dt = _float_dtype("Embedding", dtype)
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is None:
            values = default_generator().standard_normal((num_embeddings, embedding_dim)).astype(dt)
            if padding_idx is not None:
                values[padding_idx] = 0
        else:
            values = np.array(array_of(_weight), dtype=dt)
        self.weight = Parameter(values, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        rows, dim = np.shape(array_of(embeddings))
        return cls(rows, dim, padding_idx, _weight=embeddings, _freeze=freeze, dtype=array_of(embeddings).dtype)

    def forward(self, ids: Any) -> Tensor:
        return embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        )


__all__ = ["Embedding", "embedding"]
