"""Data loading, at PyTorch's module path (``torch.utils.data``)."""

from ...datasets import DataLoader
from .distributed import DistributedSampler

__all__ = ["DataLoader", "DistributedSampler"]
