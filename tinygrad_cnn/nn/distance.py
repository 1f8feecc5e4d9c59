"""Normalising and comparing vectors along a dim, as PyTorch: ``normalize``, ``cosine_similarity``,
``pairwise_distance`` and their layers, composed from norms and products."""

from __future__ import annotations

from typing import Any

from .. import arguments
from .. import functional as F
from .._tensor import Tensor
from . import Module


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: None = None) -> Tensor:
    """x / max(||x||_p over ``dim``, eps): unit vectors, and zero vectors stay zero."""
    if out is not None:
        raise TypeError("normalize: out= is not supported")
    x = arguments.float_tensor("normalize", input)
    return x / F.clamp_min(F.norm(x, p, dim, keepdim=True), eps)


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) over ``dim`` (the inputs broadcast)."""
    a, b = arguments.float_tensor("cosine_similarity", x1), arguments.float_tensor("cosine_similarity", x2)
    norms = F.clamp_min(F.norm(a, 2, dim), eps) * F.clamp_min(F.norm(b, 2, dim), eps)
    return F.sum(a * b, dim) / norms


def pairwise_distance(x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p over the last dim (eps keeps the gradient finite at equal points, as PyTorch)."""
    a, b = arguments.float_tensor("pairwise_distance", x1), arguments.float_tensor("pairwise_distance", x2)
    return F.norm(a - b + eps, p, -1, keepdim)


class CosineSimilarity(Module):
    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


__all__ = ["CosineSimilarity", "PairwiseDistance", "cosine_similarity", "normalize", "pairwise_distance"]
