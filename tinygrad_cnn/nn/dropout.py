"""Channel dropout as PyTorch has it: :func:`dropout1d` and :func:`dropout2d` (``nn.Dropout1d``,
``nn.Dropout2d``) zero whole channels (feature maps) rather than single elements, so neighbouring
activations, which are strongly correlated in a convolutional net, are dropped together.

Like :func:`tinygrad_cnn.functional.dropout`, a product with a constant Bernoulli mask scaled by
1/(1-p), drawn from ``tg.manual_seed``'s generator; its gradient comes from the product's.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import functional as F
from .._tensor import Tensor
from ..random import default_generator
from . import Dropout


def _channel_dropout(x: Tensor, p: float, training: bool, mask_shape: tuple[int, ...]) -> Tensor:
    """x times a mask of ``mask_shape`` (one draw per channel, broadcast over the rest)."""
    F.dropout(x, p, training=False)  # its checks of x and p, with nothing drawn
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = default_generator().random(mask_shape) >= p
    return x * Tensor(keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype))


def dropout1d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each channel of ``x`` ((N, C, L), or (C, L) without a batch) with probability ``p`` and
    scale the rest by 1/(1-p), while training."""
    if not isinstance(x, Tensor) or x.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received shape {getattr(x, 'shape', x)!r}")
    return _channel_dropout(x, p, training, x.shape[: x.ndim - 1] + (1,))


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each channel of ``x`` ((N, C, H, W)) with probability ``p`` and scale the rest by 1/(1-p),
    while training. As in PyTorch, a 3-D input is read as (N, C, L), with a warning."""
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise RuntimeError(f"dropout2d: Expected a 4D input (N, C, H, W), got shape {getattr(x, 'shape', x)!r}")
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
            "is desired - input is interpreted as shape (N, C, L), as PyTorch does; use dropout1d for that",
            stacklevel=2,
        )
    elif x.ndim != 4:
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d; it expects 3D or 4D", stacklevel=2)
    return _channel_dropout(x, p, training, x.shape[:2] + (1,) * (x.ndim - 2))


class Dropout1d(Dropout):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p while training."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout1d(x, self.p, self.training)


class Dropout2d(Dropout):
    """Zero whole channels (feature maps) of (N, C, H, W) inputs with probability p while training."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout2d(x, self.p, self.training)
