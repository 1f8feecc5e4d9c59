"""The neural-network functions at PyTorch's path, ``torch.nn.functional``: ``import
tinygrad_cnn.nn.functional as F`` then ``F.relu``, ``F.conv2d``, ``F.cross_entropy``, ...

Each is implemented next to its layer (``nn.conv``, ``nn.loss``, ``nn.activation``, ...) or, for
the plain tensor ops, in :mod:`tinygrad_cnn.functional`; all are composed from the primitives.
"""

from __future__ import annotations

from ..functional import dropout, linear, relu, sigmoid, tanh
from .activation import (
    elu,
    gelu,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    relu6,
    silu,
    softmax,
    softplus,
    softsign,
)
from .conv import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    max_pool2d,
)
from .distance import cosine_similarity, normalize, pairwise_distance
from .dropout import dropout1d, dropout2d
from .loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from .normalization import batch_norm, group_norm, instance_norm, layer_norm
from .pooling import (
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    avg_pool1d,
    lp_pool1d,
    lp_pool2d,
    max_pool1d,
)
from .sparse import embedding, one_hot
from .vision import channel_shuffle, fold, interpolate, pad, pixel_shuffle, pixel_unshuffle, unfold

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "channel_shuffle",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "cosine_similarity",
    "cross_entropy",
    "dropout",
    "dropout1d",
    "dropout2d",
    "elu",
    "embedding",
    "fold",
    "gelu",
    "group_norm",
    "hardtanh",
    "huber_loss",
    "instance_norm",
    "interpolate",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsigmoid",
    "lp_pool1d",
    "lp_pool2d",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "mse_loss",
    "nll_loss",
    "normalize",
    "one_hot",
    "pad",
    "pairwise_distance",
    "pixel_shuffle",
    "pixel_unshuffle",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "softsign",
    "tanh",
    "unfold",
]
