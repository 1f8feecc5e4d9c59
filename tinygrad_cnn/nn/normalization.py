"""Normalisation layers: BatchNorm1d/2d, LayerNorm, GroupNorm: the ``Standardize`` primitive
((x - mean) / sqrt(var + eps) over the normalised dims) then the affine map, so their gradients
come from reverse mode.

Running statistics follow PyTorch exactly: in training, ``running = (1 - momentum) * running +
momentum * batch`` with the *unbiased* batch variance, and ``num_batches_tracked`` counts the
training batches; ``momentum=None`` makes the running values a cumulative average (the factor is
``1 / num_batches_tracked``). In eval mode the running statistics normalise the input.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..storage import array_of, write_
from . import Module, Parameter, _float_dtype


def _normalise(
    x: Tensor, axes: tuple[int, ...], eps: float, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]
) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + eps) * weight + bias over ``axes`` (biased variance; one
    ``Standardize`` primitive), weight and bias seen as ``shape``, and the mean and variance as
    arrays (``axes`` kept as 1). float16, and parameters of another dtype than x's, are standardised
    first (float16 in float32) and scaled after, with the dtypes promoting as the ops do."""
    stats: list[np.ndarray] = []
    if x.dtype != np.float16 and all(p is None or p.dtype == x.dtype for p in (weight, bias)):
        w, b = (None if p is None else F.reshape(p, shape) for p in (weight, bias))
        return P.Standardize.apply(x, w, b, axes, float(eps), stats=stats), stats[0], stats[1]
    wide = F.astype(x, np.float32) if x.dtype == np.float16 else x
    y = P.Standardize.apply(wide, None, None, axes, float(eps), stats=stats)
    y = F.astype(y, x.dtype) if wide is not x else y
    return _scale_shift(y, weight, bias, shape), stats[0], stats[1]


def _scale_shift(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    return y


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over every dim but the channel dim 1: (N, C, *) -> (N, C, *).

    ``training`` (or no running statistics): normalise by the batch's mean and biased variance
    and, if running statistics are given, update them in place with ``momentum`` (unbiased
    variance). Otherwise normalise by the running statistics.
    """
    x = arguments.float_tensor("batch_norm", input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got {x.shape}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(t.shape)}, expected ({c},) for input {x.shape}")
    shape = (1, c) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    if training or running_mean is None or running_var is None:
        count = x.numel() // max(c, 1)
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input of shape {x.shape}"
            )
        y, mean, var = _normalise(x, axes, eps, weight, bias, shape)
        if training and running_mean is not None and running_var is not None:
            m = float(momentum)
            rm, rv = array_of(running_mean), array_of(running_var)
            write_(running_mean, (1 - m) * rm + m * mean.reshape(c))
            write_(running_var, (1 - m) * rv + m * var.reshape(c) * (count / (count - 1)))
        return y
    # the running statistics: x * scale + shift, scale = weight / sqrt(var + eps), shift = bias - mean * scale
    inv_std = Tensor(((array_of(running_var) + eps) ** -0.5).astype(x.dtype).reshape(shape))
    scale = inv_std if weight is None else F.reshape(weight, shape) * inv_std
    shift = Tensor(-array_of(running_mean).astype(x.dtype).reshape(shape)) * scale
    return x * scale + (shift if bias is None else shift + F.reshape(bias, shape))


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    running_mean: Tensor | None  # buffers (register_buffer)
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = np.float32,
        *,
        bias: bool = True,
    ) -> None:
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        dt = _float_dtype(name, dtype)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=dt)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dt)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor.wrap(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        for buffer, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
            if buffer is not None:  # None unless track_running_stats
                write_(buffer, value)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            write_(self.weight, 1)
        if self.bias is not None:
            write_(self.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.ndim not in self._dims:
            raise ValueError(
                f"{name}: expected a {' or '.join(f'{d}-D' for d in self._dims)} input, got shape {x.shape}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {x.shape[1]} channels (shape {x.shape}), expected {self.num_features}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            count = array_of(self.num_batches_tracked)
            count += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(count)
        use_batch = self.training or not self.track_running_stats
        return batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C."""

    _dims = (4,)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Instance normalisation as ``torch.nn.functional.instance_norm``: each (sample, channel) of an
    (N, C, *spatial) input normalised over its spatial dims, then ``weight``/``bias`` per channel.

    ``use_input_stats`` (the default): by each instance's own mean and biased variance; running
    statistics, if given, are updated in place with ``momentum`` towards the instances' mean
    statistics (the unbiased variance), as PyTorch. Otherwise the running statistics normalise.
    """
    x = arguments.float_tensor("instance_norm", input)
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *spatial), got {x.shape}")
    n, c = x.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"instance_norm: {name} has shape {tuple(t.shape)}, expected ({c},) for input {x.shape}")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    count = x.numel() // max(n * c, 1)
    if count <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element when training, got input {x.shape}")
    shape = (1, c) + (1,) * (x.ndim - 2)
    y, mean, var = _normalise(x, tuple(range(2, x.ndim)), eps, weight, bias, shape)
    if running_mean is not None and running_var is not None:
        m = float(momentum)
        write_(running_mean, (1 - m) * array_of(running_mean) + m * mean.reshape(n, c).mean(axis=0))
        unbiased = var.reshape(n, c).mean(axis=0) * (count / (count - 1))
        write_(running_var, (1 - m) * array_of(running_var) + m * unbiased)
    return y


class _InstanceNorm(_BatchNorm):
    """PyTorch's defaults differ from BatchNorm's: no affine map, no running statistics. With
    ``track_running_stats`` the running statistics are kept (``num_batches_tracked`` is saved but,
    as in PyTorch, not counted) and normalise in eval mode."""

    _no_batch_dims = 0  # the dims of an unbatched input

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        name = type(self).__name__
        x = arguments.float_tensor(name, input)
        if x.ndim not in (self._no_batch_dims, self._no_batch_dims + 1):
            dims = f"{self._no_batch_dims}D or {self._no_batch_dims + 1}D"
            raise ValueError(f"{name}: expected {dims} input (got {x.ndim}D input of shape {x.shape})")
        channels = x.shape[x.ndim - self._no_batch_dims]
        if channels != self.num_features:
            if self.affine or self.track_running_stats:
                raise ValueError(f"{name}: input {x.shape} has {channels} channels, expected {self.num_features}")
            warnings.warn(
                f"{name}: the input's {channels} channels do not match num_features={self.num_features}, which is "
                "not used because affine=False",
                stacklevel=2,
            )
        batched = x if x.ndim > self._no_batch_dims else F.unsqueeze(x, 0)
        out = instance_norm(
            batched,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )
        return out if x.ndim > self._no_batch_dims else F.squeeze(out, 0)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) signals or unbatched (C, L), per sample and channel."""

    _no_batch_dims = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) images or unbatched (C, H, W), per sample and channel."""

    _no_batch_dims = 3


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dims (which must equal ``normalized_shape``)."""
    x = arguments.float_tensor("layer_norm", input)
    shape = tuple(normalized_shape)
    if x.shape[x.ndim - len(shape) :] != shape or len(shape) > x.ndim:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    return _normalise(x, axes, eps, weight, bias, (1,) * (x.ndim - len(shape)) + shape)[0]


class LayerNorm(Module):
    """Normalise each sample over its last dims ``normalized_shape``; learnable elementwise affine."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        dt = _float_dtype("LayerNorm", dtype)
        self.normalized_shape, self.eps, self.elementwise_affine = tuple(int(s) for s in shape), eps, elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype=dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=dt)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


def group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Normalise each sample over groups of ``C / num_groups`` channels (and all spatial dims)."""
    x = arguments.float_tensor("group_norm", input)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: the channels of an input of shape {x.shape} do not split into {num_groups} groups"
        )
    n, c = x.shape[:2]
    # (N, G, C/G, *spatial): a view in any memory layout (a batch-inner conv output's too)
    grouped = F.reshape(x, (n, num_groups, c // num_groups, *x.shape[2:]))
    axes = tuple(range(2, grouped.ndim))
    shape = (1, num_groups, c // num_groups) + (1,) * (x.ndim - 2)
    return F.reshape(_normalise(grouped, axes, eps, weight, bias, shape)[0], x.shape)


class GroupNorm(Module):
    """Group normalisation (Wu & He): channels split into ``num_groups`` groups, each normalised per sample."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = np.float32,
        *,
        bias: bool = True,
    ) -> None:
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        dt = _float_dtype("GroupNorm", dtype)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(np.ones(num_channels, dtype=dt)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype=dt)) if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={bias}"


__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "LayerNorm",
    "batch_norm",
    "group_norm",
    "instance_norm",
    "layer_norm",
]
