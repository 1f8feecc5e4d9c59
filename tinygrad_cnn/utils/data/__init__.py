"""Data loading, at PyTorch's module path (``torch.utils.data``)."""

from ...datasets import DataLoader

__all__ = ["DataLoader"]
