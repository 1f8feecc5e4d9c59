"""Loss functions and modules with PyTorch's arguments (``weight``, ``ignore_index``,
``label_smoothing``, ``pos_weight``, ``reduction``), composed from tensor ops.

Class-index losses take scores of shape (N, C) or (N, C, d1, ...) (or (C,) for one sample) and
integer targets of shape (N,) or (N, d1, ...); class dim is dim 1, as PyTorch.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import arguments
from .. import functional as F
from .. import primitives as P
from .._tensor import Tensor
from ..storage import array_of
from . import Module


def _reduction(op: str, reduction: str, size_average: bool | None = None, reduce: bool | None = None) -> str:
    """``reduction``, or the one PyTorch's deprecated ``size_average``/``reduce`` pair stands for."""
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
        warnings.warn(  # PyTorch's warning, word for word
            f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
            UserWarning,
            stacklevel=3,
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    return F.sum(losses) if reduction == "sum" else F.mean(losses)


def _class_layout(op: str, input: Tensor, target: np.ndarray) -> tuple[Tensor, np.ndarray, bool]:
    """Scores as (M, C) rows (class dim moved last) and targets as (M,); whether input was unbatched."""
    arguments.require_float(op, input)
    unbatched = input.ndim == 1
    x = F.reshape(input, (1, -1)) if unbatched else input
    t = target.reshape(1) if unbatched and target.ndim == 0 else target
    if x.ndim < 2:
        raise ValueError(f"{op}: expected scores of shape (N, C) or (N, C, d1, ...), got {input.shape}")
    expected = x.shape[:1] + x.shape[2:]
    if t.shape != expected:
        raise ValueError(f"{op}: target has shape {target.shape}, expected {expected} for input {input.shape}")
    if x.ndim > 2:
        x = F.reshape(F.permute(x, 0, *range(2, x.ndim), 1), (-1, x.shape[1]))
    return x, t.reshape(-1), unbatched


def _class_target(op: str, target: Any, probabilities: bool) -> np.ndarray:
    """The target as an array of integer class indices (or, where ``probabilities``, of floats)."""
    what = "integer class indices" + (" or class probabilities" if probabilities else "")
    try:
        t = np.asarray(array_of(target) if isinstance(target, Tensor) else target)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: target must hold {what}, got {type(target).__name__} {str(target)[:40]}") from None
    if t.dtype.kind not in ("iuf" if probabilities else "iu"):
        raise TypeError(f"{op}: target must hold {what}, got dtype {t.dtype}")
    return t


def _class_weights(op: str, weight: Any, c: int, like: Tensor) -> np.ndarray:
    if weight is None:
        return np.ones(c, dtype=like.dtype)
    w = np.asarray(array_of(weight), dtype=like.dtype)
    if w.shape != (c,):
        raise ValueError(f"{op}: weight has shape {w.shape}, expected ({c},) (one weight per class)")
    return w


def _picking(op: str, rows: Tensor, t: np.ndarray, w: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """The targets with ignored ones replaced by class 0, and the per-row weights w[t] (0 where
    ignored), after checking that every other target is a class of ``rows`` (M, C)."""
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {t.dtype}")
    c = rows.shape[1]
    kept = t != ignore_index
    every = bool(kept.all())  # the common case: no target ignored, no masking needed
    valid = t if every else t[kept]
    if valid.size and (valid.min() < 0 or valid.max() >= c):
        bad = valid.max() if valid.max() >= c else valid.min()
        raise IndexError(f"{op}: target {bad} is out of bounds for {c} classes (0..{c - 1})")
    safe = t.copy() if every else np.where(kept, t, 0)  # a copy: the graph keeps it, and must not lock the user's
    return safe, (w[safe] if every else np.where(kept, w[safe], 0)).astype(rows.dtype)


def _nll(op: str, rows: Tensor, t: np.ndarray, w: np.ndarray, ignore_index: int, reduction: str) -> Tensor:
    """The NLLLoss primitive of log-probability rows (M, C) and targets (M,), class weights w (C,)."""
    safe, row_w = _picking(op, rows, t, w, ignore_index)
    return P.NLLLoss.apply(rows, safe, row_w, reduction)


def _shape_back(losses: Tensor, input: Tensor, unbatched: bool) -> Tensor:
    if unbatched:
        return F.reshape(losses, ())
    return F.reshape(losses, input.shape[:1] + input.shape[2:])


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """-weight[t] * input[t] per sample; ``mean`` divides by the sum of the weights of the
    non-ignored targets (as PyTorch; all ignored gives NaN)."""
    reduction = _reduction("nll_loss", reduction, size_average, reduce)
    x = arguments.tensor_argument("nll_loss", input)
    rows, t, unbatched = _class_layout("nll_loss", x, _class_target("nll_loss", target, False))
    losses = _nll("nll_loss", rows, t, _class_weights("nll_loss", weight, rows.shape[1], rows), ignore_index, reduction)
    return _shape_back(losses, x, unbatched) if reduction == "none" else losses


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of raw scores, as ``torch.nn.functional.cross_entropy``.

    ``target``: integer class indices, or class probabilities of the input's shape. With
    ``label_smoothing`` e the target mixes (1 - e) of itself with e of the uniform distribution.
    """
    reduction = _reduction("cross_entropy", reduction, size_average, reduce)
    x = arguments.tensor_argument("cross_entropy", input)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    arguments.require_float("cross_entropy", x)
    class_dim = 0 if x.ndim == 1 else 1
    tgt = _class_target("cross_entropy", target, True)
    c = x.shape[class_dim] if x.ndim else 0
    samples = math.prod([n for i, n in enumerate(x.shape) if i != class_dim])
    if c == 0 and samples:
        raise ValueError(f"cross_entropy: input of shape {x.shape} has no classes")
    if tgt.dtype.kind == "f":  # class probabilities
        if tgt.shape != x.shape:
            raise ValueError(
                f"cross_entropy: probability targets (a float target) must have the input's shape {x.shape}, "
                f"got {tgt.shape}; class indices must be integers (.astype(np.int64))"
            )
        w = _class_weights("cross_entropy", weight, c, x).reshape((c,) + (1,) * (x.ndim - 1 - class_dim))
        probs = tgt * (1 - label_smoothing) + label_smoothing / c
        losses = -F.sum(F.log_softmax(x, class_dim) * Tensor((probs * w).astype(x.dtype)), class_dim)
        return _reduce(losses, reduction)
    rows, t, unbatched = _class_layout("cross_entropy", x, tgt)  # the class dim last: log-softmax over rows
    w = _class_weights("cross_entropy", weight, c, rows)
    rows = F.log_softmax(rows, 1) if c else rows
    nll = _nll("cross_entropy", rows, t, w, ignore_index, reduction)
    if reduction == "none":
        nll = _shape_back(nll, x, unbatched)
    if label_smoothing == 0:
        return nll
    kept = (t != ignore_index).astype(rows.dtype)
    smooth = -F.sum(rows * Tensor(w), 1) * Tensor(kept)  # -sum_c w_c log p_c per sample, 0 where ignored
    if reduction == "none":
        smooth = _shape_back(smooth, x, unbatched)
    elif reduction == "sum":
        smooth = F.sum(smooth)
    else:
        _, row_w = _picking("cross_entropy", rows, t, w, ignore_index)
        smooth = F.sum(smooth) / Tensor(row_w.sum() if weight is not None else kept.sum())
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _pair_target(op: str, input: Any, target: Any) -> tuple[Tensor, Tensor]:
    """Input and target as tensors of one shape; a target that only broadcasts warns, as PyTorch."""
    x = arguments.tensor_argument(op, input)
    t = arguments.as_constant(target, x, op, "target")
    if t.shape != x.shape:
        try:
            shape = np.broadcast_shapes(x.shape, t.shape)
        except ValueError:
            raise ValueError(f"{op}: input shape {x.shape} and target shape {t.shape} cannot be broadcast") from None
        warnings.warn(
            f"{op}: using a target size {t.shape} that is different to the input size {x.shape}; "
            "they are broadcast, which is likely not what you want",
            UserWarning,
            stacklevel=3,
        )
        x, t = F.broadcast_to(x, shape), F.broadcast_to(t, shape)
    return x, t


def mse_loss(
    input: Tensor, target: Any, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
) -> Tensor:
    """(input - target)**2."""
    reduction = _reduction("mse_loss", reduction, size_average, reduce)
    x, t = _pair_target("mse_loss", input, target)
    d = x - t
    return _reduce(d * d, reduction)


def l1_loss(
    input: Tensor, target: Any, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
) -> Tensor:
    """|input - target| (gradient 0 where they are equal, as PyTorch)."""
    reduction = _reduction("l1_loss", reduction, size_average, reduce)
    x, t = _pair_target("l1_loss", input, target)
    return _reduce(F.abs(x - t), reduction)


def smooth_l1_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target; beta = 0: L1)."""
    reduction = _reduction("smooth_l1_loss", reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    x, t = _pair_target("smooth_l1_loss", input, target)
    d = x - t
    if beta == 0:
        return _reduce(F.abs(d), reduction)
    quad = np.abs(d.array) < beta
    return _reduce(F.where(quad, d * d * (0.5 / beta), F.abs(d) - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d**2 where |d| <= delta, else delta * (|d| - 0.5 delta) (d = input - target)."""
    reduction = _reduction("huber_loss", reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    x, t = _pair_target("huber_loss", input, target)
    d = x - t
    quad = np.abs(d.array) <= delta
    return _reduce(F.where(quad, d * d * 0.5, (F.abs(d) - 0.5 * delta) * delta), reduction)


def _weighted(losses: Tensor, weight: Any) -> Tensor:
    return losses if weight is None else losses * arguments.as_constant(weight, losses, "loss", "weight")


def binary_cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """-weight * (t log p + (1 - t) log(1 - p)) of probabilities p; each log clamped at -100."""
    reduction = _reduction("binary_cross_entropy", reduction, size_average, reduce)
    x = arguments.tensor_argument("binary_cross_entropy", input)
    t = arguments.as_constant(target, x, "binary_cross_entropy", "target")
    if t.shape != x.shape:
        raise ValueError(f"binary_cross_entropy: target size {t.shape} must be the same as input size {x.shape}")
    arguments.require_float("binary_cross_entropy", x)
    if x.numel() and (np.nanmin(x.array) < 0 or np.nanmax(x.array) > 1):
        raise ValueError(
            f"binary_cross_entropy: input must hold probabilities in [0, 1], got values in "
            f"[{np.nanmin(x.array):g}, {np.nanmax(x.array):g}]; for raw scores use "
            "binary_cross_entropy_with_logits"
        )
    losses = -(t * _clamped_log(x) + (1 - t) * _clamped_log(1 - x))
    return _reduce(_weighted(losses, weight), reduction)


def _clamped_log(p: Tensor) -> Tensor:
    """max(log p, -100) with a finite gradient everywhere: 0 where the clamp is active
    (clipping p first keeps Log's backward away from 0/0 at p = 0)."""
    return F.clip(F.log(F.clip(p, min=math.exp(-100.0))), min=-100.0)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """weight * (pos_weight * t * softplus(-z) + (1 - t) * softplus(z)) of raw scores z, stable for
    any z; ``pos_weight`` (one per class, along the last dim) weighs the positive term."""
    reduction = _reduction("binary_cross_entropy_with_logits", reduction, size_average, reduce)
    z = arguments.float_tensor("binary_cross_entropy_with_logits", input)
    t = arguments.as_constant(target, z, "binary_cross_entropy_with_logits", "target")
    if t.shape != z.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target size {t.shape} must be the same as input size {z.shape}"
        )
    positive = F.softplus(-z) * t
    if pos_weight is not None:
        positive = positive * arguments.as_constant(pos_weight, z, "binary_cross_entropy_with_logits", "pos_weight")
    return _reduce(_weighted(positive + F.softplus(z) * (1 - t), weight), reduction)


def kl_div(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """The Kullback-Leibler divergence of ``target`` from log-probabilities ``input``:
    target * (log(target) - input), 0 where target is 0 (``log_target``: target given as logs).
    ``reduction="batchmean"`` divides the sum by the batch size: the true KL divergence per sample
    (PyTorch's "mean" divides by every element)."""
    x, t = _pair_target("kl_div", input, target)
    if log_target:
        losses = F.exp(t) * (t - x)
    else:
        safe = F.where(t.array != 0, t, 1.0)  # 0 * log(0) is 0; log's gradient at 0 would be inf * 0
        losses = F.where(t.array != 0, t * (F.log(safe) - x), -(t * x))
    if reduction == "batchmean":
        return F.sum(losses) / (x.shape[0] if x.ndim else 1)
    return _reduce(losses, _reduction("kl_div", reduction, size_average, reduce))


class _Loss(Module):
    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        self.reduction = _reduction(type(self).__name__, reduction, size_average, reduce)


class _WeightedLoss(_Loss):
    weight: Tensor | None  # a buffer (register_buffer)

    def __init__(
        self, weight: Any = None, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", None if weight is None else Tensor(array_of(weight)))


class CrossEntropyLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return cross_entropy(
            input, target, self.weight, None, self.ignore_index, None, self.reduction, self.label_smoothing
        )


class NLLLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return nll_loss(input, target, self.weight, None, self.ignore_index, None, self.reduction)


class KLDivLoss(_Loss):
    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        log_target: bool = False,
    ) -> None:
        if reduction == "batchmean" and size_average is None and reduce is None:
            self.reduction = reduction
        else:
            super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_WeightedLoss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    pos_weight: Tensor | None  # a buffer (register_buffer)

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", None if pos_weight is None else Tensor(array_of(pos_weight)))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]
