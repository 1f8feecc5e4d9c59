"""The neural-network functions at PyTorch's path, ``torch.nn.functional``: ``import
tinygrad_cnn.nn.functional as F`` then ``F.relu``, ``F.conv2d``, ``F.cross_entropy``, ...

They are implemented in :mod:`tinygrad_cnn.functional`, composed from the primitives.
"""

from __future__ import annotations

from ..functional import (
    avg_pool2d,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    conv2d,
    cross_entropy,
    dropout,
    linear,
    log_softmax,
    logsumexp,
    max_pool2d,
    mse_loss,
    nll_loss,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
    unfold,
)

__all__ = [
    "avg_pool2d",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "logsumexp",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
    "unfold",
]
