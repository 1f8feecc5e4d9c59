"""Image transforms at torchvision's path (``torchvision.transforms``): the ones MNIST code uses.

Images are NumPy arrays (there is no PIL here): ``(H, W)`` or ``(H, W, C)``, ``uint8`` in
[0, 255] or floats. :class:`ToTensor` turns one into a float32 Tensor ``(C, H, W)`` in [0, 1];
:class:`Normalize` standardises a ``(C, H, W)`` or ``(N, C, H, W)`` Tensor per channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .storage import array_of
from .tensor import Tensor


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


class ToTensor:
    """An ``(H, W)`` or ``(H, W, C)`` image -> a float32 Tensor ``(C, H, W)``; uint8 values are
    divided by 255, as torchvision does."""

    def __call__(self, pic: Any) -> Tensor:
        a = np.asarray(array_of(pic) if isinstance(pic, Tensor) else pic)
        if a.ndim not in (2, 3):
            raise ValueError(f"ToTensor: pic should be 2- or 3-dimensional (H, W[, C]), got shape {a.shape}")
        if a.ndim == 2:
            a = a[:, :, None]
        chw = np.ascontiguousarray(a.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return Tensor(chw.astype(np.float32) / np.float32(255))
        return Tensor(chw.astype(np.float32, copy=False) if chw.dtype.kind != "f" else chw)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a ``(..., C, H, W)`` Tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std, self.inplace = list(mean), list(std), inplace
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero after conversion, leading to division by zero: {std}")

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: input should be a Tensor, got {type(tensor).__name__}")
        if tensor.ndim < 3 or tensor.dtype.kind != "f":
            raise ValueError(
                f"Normalize: expected a float Tensor (..., C, H, W), got shape {tensor.shape}, dtype {tensor.dtype}"
            )
        c = tensor.shape[-3]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(f"Normalize: {len(self.mean)} means / {len(self.std)} stds for {c} channels")
        shape = (-1, 1, 1)
        mean = np.asarray(self.mean, dtype=tensor.dtype).reshape(shape)
        scale = (1 / np.asarray(self.std, dtype=np.float64)).astype(tensor.dtype).reshape(shape)
        if tensor.requires_grad:  # keep it differentiable
            return (tensor - Tensor(mean)) * Tensor(scale)
        return Tensor((array_of(tensor) - mean) * scale)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Lambda:
    """Apply a user function as a transform."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return "Lambda()"


__all__ = ["Compose", "Lambda", "Normalize", "ToTensor"]
