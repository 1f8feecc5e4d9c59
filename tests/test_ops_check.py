"""Dogfooding: every op of the library checked through the public one-call API, ``check_op``.

Each op is checked with the convention it declares next to its rule (the ``convention`` of its
primitive, or the ``@declare`` of its composite), so the kinks and ties of relu, abs, clip,
maximum, the max reductions and max-pooling are checked where they happen. The default profile
runs 5 examples per op (the property tests of tests/test_ops_grad.py cover more ground);
TINYGRAD_CNN_HYPOTHESIS_PROFILE=thorough runs 100.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
import tinygrad_cnn.primitives as P
from tinygrad_cnn.nn import activation, distance, loss, normalization, vision
from tinygrad_cnn.testing import check_op, declared_convention, gradcheck, shapes
from tinygrad_cnn.testing.conventions import (
    any_subgradient,
    first_min,
    from_above,
    from_below,
    mean_of_sides,
    split_max,
)

EXAMPLES = 100 if os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE") == "thorough" else 5
ND = [shapes(min_dims=1, max_dims=3, max_side=4)]  # one input of 1 to 3 axes
MATRIX = [shapes(min_dims=2, max_dims=3, max_side=4)]


def declared(op: Callable[..., Any]) -> Any:
    convention = declared_convention(op)
    assert convention is not None, f"{op} declares no convention"
    return convention


def fixed_mask(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape) % 3 == 0


IMAGES = [st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5))]

# name -> (fn, check_op keyword arguments)
OPS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    # elementwise, one input
    "neg": (F.neg, {}),
    "exp": (F.exp, {}),
    "log": (F.log, {"min_value": 0.1}),
    "sqrt": (F.sqrt, {"min_value": 0.1}),
    "pow 2": (lambda x: F.pow(x, 2), {}),
    "pow 3": (lambda x: F.pow(x, 3), {}),
    "pow -1": (lambda x: F.pow(x, -1), {"min_value": 0.5}),
    "pow 0.5": (lambda x: F.pow(x, 0.5), {"min_value": 0.1}),
    "relu": (F.relu, {"conventions": declared(P.ReLU)}),
    "ReLU primitive": (P.ReLU.apply, {}),
    "sigmoid": (F.sigmoid, {}),
    "tanh": (F.tanh, {}),
    "abs": (F.abs, {}),
    "softplus": (F.softplus, {}),
    "clip": (lambda x: F.clip(x, -1.0, 0.5), {"conventions": declared(F.clip), "kinks": (-1.0, 0.5)}),
    "erf": (activation.erf, {}),  # found: a 0-d input raised AttributeError (fixed)
    "leaky_relu": (lambda x: activation.leaky_relu(x, 0.1), {"conventions": declared(activation.leaky_relu)}),
    "gelu": (activation.gelu, {}),
    "silu": (activation.silu, {}),
    # elementwise, two inputs that broadcast
    "add": (F.add, {"inputs": 2}),
    "sub": (F.sub, {"inputs": 2}),
    "mul": (F.mul, {"inputs": 2}),
    "div": (lambda a, b: F.div(a, F.exp(b)), {"inputs": 2}),  # a positive denominator
    "maximum": (F.maximum, {"inputs": 2}),
    "minimum": (F.minimum, {"inputs": 2}),
    "where": (lambda a, b: F.where(fixed_mask(a.shape), a, b), {"inputs": 2}),
    # reductions
    "sum": (lambda x: F.sum(x, -1), {"inputs": ND}),
    "sum all": (F.sum, {}),
    "mean": (lambda x: F.mean(x, 0, True), {"inputs": ND}),
    "var": (lambda x: F.var(x, -1, unbiased=False), {"inputs": ND}),
    "max": (lambda x: F.max(x, -1).values, {"inputs": ND, "conventions": declared(P.Max)}),
    "min": (lambda x: F.min(x, 0).values, {"inputs": ND, "conventions": first_min()}),
    "amax": (lambda x: F.amax(x, -1), {"inputs": ND, "conventions": declared(F.amax)}),
    "logsumexp": (lambda x: F.logsumexp(x, -1), {"inputs": ND}),
    "log_softmax": (lambda x: F.log_softmax(x, -1), {"inputs": ND}),
    "softmax": (lambda x: F.softmax(x, 0), {"inputs": ND}),
    # shapes
    "reshape": (lambda x: F.reshape(x, -1), {}),
    "transpose": (lambda x: x.T, {}),
    "swapaxes": (lambda x: F.swapaxes(x, 0, -1), {"inputs": ND}),
    "flatten": (lambda x: F.flatten(x, 0), {"inputs": ND}),
    "broadcast_to": (lambda x: F.broadcast_to(x, (2, *x.shape)), {}),
    "getitem": (lambda x: x[..., ::2], {"inputs": ND}),
    "getitem repeated": (lambda x: x[np.array([0, 0, -1])], {"inputs": ND}),
    "pad": (lambda x: F.pad(x, [(1, 2)] * x.ndim, 0.5), {"inputs": ND}),
    "concatenate": (lambda a, b: F.concatenate([a, b, a], 0), {"inputs": [(2, 3), (1, 3)]}),
    "stack": (lambda a, b: F.stack([a, b], -1), {"inputs": [(2, 3), (2, 3)]}),
    # linear algebra and convolution
    "matmul": (F.matmul, {"inputs": [(3, 4), (4, 2)]}),
    "matmul batched": (F.matmul, {"inputs": [(2, 3, 4), (4, 2)]}),
    "linear": (F.linear, {"inputs": [(5, 3), (4, 3), (4,)]}),
    "conv2d": (
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1),
        {"inputs": [(2, 2, 4, 5), (3, 2, 3, 2), (3,)]},
    ),
    "unfold": (lambda x: F.unfold(x, (2, 3), stride=1, padding=1), {"inputs": [(1, 2, 3, 4)]}),
    "max_pool2d": (
        lambda x: F.max_pool2d(x, 2, stride=1, padding=1),  # overlapping windows
        {"inputs": IMAGES, "conventions": declared(F.max_pool2d)},
    ),
    "max_pool2d strided": (
        lambda x: F.max_pool2d(x, (3, 2), stride=2, padding=1),
        {"inputs": IMAGES, "conventions": declared(F.max_pool2d)},
    ),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, stride=1, padding=1), {"inputs": IMAGES}),
    # normalisation and losses
    "layer_norm": (lambda x: normalization.layer_norm(x, (x.shape[-1],)), {"inputs": [(3, 4)]}),
    "batch_norm": (lambda x: normalization.batch_norm(x, None, None, training=True), {"inputs": [(4, 3)]}),
    "cross_entropy": (lambda z: F.cross_entropy(z, np.array([0, 2, 1])), {"inputs": [(3, 4)]}),
    "nll_loss": (lambda z: F.nll_loss(z, np.array([1, 1, 0]), reduction="sum"), {"inputs": [(3, 4)]}),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), {"inputs": [(3, 4), (3, 4)]}),
    "binary_cross_entropy": (
        lambda z: F.binary_cross_entropy(F.sigmoid(z), np.array([0.0, 1.0, 1.0], dtype=z.dtype)),
        {"inputs": [(3,)]},
    ),
    "binary_cross_entropy_with_logits": (
        lambda z: F.binary_cross_entropy_with_logits(z, np.array([0.0, 1.0, 0.5], dtype=z.dtype)),
        {"inputs": [(3,)]},
    ),
    "dropout": (lambda x: (tg.manual_seed(0), F.dropout(x, 0.5))[1], {}),  # the same mask on every call
    # the PyTorch Tensor API's ops
    "log1p": (F.log1p, {"min_value": -0.5}),
    "sin": (F.sin, {}),
    "cos": (F.cos, {}),
    # a base in (0.5, 1.5): with exp(a) as the base, values near 1e4 make finite differences of the
    # second order too coarse (our gradients there equal PyTorch's to 1e-12 relative)
    "pow tensor": (lambda a, b: F.pow(F.sigmoid(a) + 0.5, b), {"inputs": 2}),
    "einsum": (lambda a, b: F.einsum("ij,jk->ik", a, b), {"inputs": [(3, 4), (4, 2)]}),
    "gather": (lambda x: F.gather(x, 1, np.array([[0, 0], [2, 1], [1, 2]])), {"inputs": [(3, 3)]}),
    "scatter_add": (
        lambda x, s: F.scatter_add(x, 1, np.array([[0, 0], [2, 2], [1, 0]]), s),
        {"inputs": [(3, 3), (3, 2)]},
    ),
    "index_select": (lambda x: F.index_select(x, 0, np.array([1, 0, 1])), {"inputs": [(2, 3)]}),
    "masked_fill": (lambda x: F.masked_fill(x, fixed_mask(x.shape), 0.5), {}),
    "repeat": (lambda x: F.repeat(x, 2, 1), {"inputs": [(2, 3)]}),
    "cumsum": (lambda x: F.cumsum(x, -1), {"inputs": ND}),
    "prod": (lambda x: F.prod(x, -1), {"inputs": ND}),
    "var unbiased": (lambda x: F.var(x, -1), {"inputs": [(3, 4)]}),
    "norm": (F.norm, {"inputs": [(3, 4)], "conventions": mean_of_sides(at=0.0)}),  # PyTorch: 0 at the zero vector
    "log2": (F.log2, {"min_value": 0.1}),
    "log10": (F.log10, {"min_value": 0.1}),
    "expm1": (F.expm1, {}),
    "reciprocal": (lambda x: F.reciprocal(F.exp(x)), {}),  # a positive denominator
    "lerp": (lambda a, b: F.lerp(a, b, 0.25), {"inputs": 2}),
    "lerp tensor weight": (F.lerp, {"inputs": [(2, 3), (2, 3), (2, 3)]}),
    "roll": (lambda x: F.roll(x, (1, -2), (0, 1)), {"inputs": MATRIX}),
    "roll flat": (lambda x: F.roll(x, 2), {"inputs": ND}),
    "tril": (lambda x: F.tril(x, -1), {"inputs": MATRIX}),
    "triu": (lambda x: F.triu(x, 1), {"inputs": MATRIX}),
    "diag of a vector": (lambda x: F.diag(x, 1), {"inputs": [(3,)]}),
    "diag of a matrix": (lambda x: F.diag(x, -1), {"inputs": [(3, 4)]}),
    "outer": (F.outer, {"inputs": [(3,), (2,)]}),
    "addmm": (lambda c, a, b: F.addmm(c, a, b, beta=0.5, alpha=2.0), {"inputs": [(3,), (2, 4), (4, 3)]}),
    "linalg.vector_norm 3": (lambda x: tg.linalg.vector_norm(x, 3, dim=-1), {"inputs": ND, "min_value": 0.1}),
    "linalg.matrix_norm fro": (tg.linalg.matrix_norm, {"inputs": MATRIX, "min_value": 0.1}),
    "tan": (lambda x: F.tan(F.tanh(x)), {}),  # inside (-1, 1): away from the poles
    "asin": (lambda x: F.asin(F.tanh(x) * 0.9), {}),
    "acos": (lambda x: F.acos(F.tanh(x) * 0.9), {}),
    "atan": (F.atan, {}),
    "sinh": (F.sinh, {"max_value": 5.0, "min_value": -5.0}),
    "cosh": (F.cosh, {"max_value": 5.0, "min_value": -5.0}),
    "asinh": (F.asinh, {}),
    "acosh": (lambda x: F.acosh(x * x + 1.5), {}),
    "atanh": (lambda x: F.atanh(F.tanh(x) * 0.9), {}),
    "fmod": (lambda a: F.fmod(a, 0.7), {"kinks": ()}),
    "frac": (F.frac, {}),
    "logit": (lambda x: F.logit(F.sigmoid(x) * 0.8 + 0.1), {}),
    "xlogy": (lambda a, b: F.xlogy(a, F.exp(b)), {"inputs": 2}),
    "XLogY primitive": (lambda a, b: P.XLogY.apply(a, F.exp(b)), {"inputs": 2}),
    "logaddexp": (F.logaddexp, {"inputs": 2}),
    "nansum": (lambda x: F.nansum(x, -1), {"inputs": ND}),
    "cumprod": (lambda x: F.cumprod(x, -1), {"inputs": ND}),
    "diff": (lambda x: F.diff(x, 2, dim=-1), {"inputs": [(2, 5)]}),
    "diagonal": (lambda x: F.diagonal(x, 1, -2, -1), {"inputs": MATRIX}),
    "trace": (F.trace, {"inputs": [(3, 4)]}),
    "tile": (lambda x: F.tile(x, (2, 1, 2)), {"inputs": [(2, 3)]}),
    "repeat_interleave": (lambda x: F.repeat_interleave(x, np.array([2, 0, 1]), 1), {"inputs": [(2, 3)]}),
    "take_along_dim": (lambda x: F.take_along_dim(x, np.array([[2, 0]]), 1), {"inputs": [(3, 3)]}),
    "mv": (F.mv, {"inputs": [(2, 3), (3,)]}),
    "inner": (F.inner, {"inputs": [(2, 3), (4, 3)]}),
    "addcdiv": (lambda a, b, c: F.addcdiv(a, b, F.exp(c), value=0.5), {"inputs": [(2, 3), (2, 3), (2, 3)]}),
    "index_add": (lambda x, s: F.index_add(x, 0, np.array([1, 0, 1]), s), {"inputs": [(2, 3), (3, 3)]}),
    "index_copy": (lambda x, s: F.index_copy(x, 1, np.array([2, 0]), s), {"inputs": [(2, 3), (2, 2)]}),
    "rot90": (lambda x: F.rot90(x, 3), {"inputs": [(2, 3)]}),
    # offsets keep the five values apart (at ties the order, so the gradient, is a choice)
    "median": (
        lambda x: F.median(x + np.arange(5) * 10, dim=-1).values,
        {"inputs": [(3, 5)], "min_value": -4.0, "max_value": 4.0},
    ),
    # nn.functional
    "hardtanh": (activation.hardtanh, {"conventions": declared(activation.hardtanh), "kinks": (-1.0, 1.0)}),
    "relu6": (lambda x: activation.relu6(x * 4), {"conventions": declared(activation.relu6), "kinks": (0.0, 1.5)}),
    "logsigmoid": (activation.logsigmoid, {}),
    "mish": (activation.mish, {}),
    "softsign": (activation.softsign, {"conventions": mean_of_sides(at=0.0)}),
    "hardsigmoid": (
        lambda x: activation.hardsigmoid(x * 2),
        {"conventions": declared(activation.hardsigmoid), "kinks": (-1.5, 1.5)},
    ),
    "hardswish": (
        lambda x: activation.hardswish(x * 2),
        {"conventions": declared(activation.hardswish), "kinks": (-1.5, 1.5)},
    ),
    "selu": (activation.selu, {"conventions": declared(activation.selu)}),
    "celu": (lambda x: activation.celu(x, 0.5), {"conventions": declared(activation.celu)}),
    "elu": (lambda x: activation.elu(x, 1.5), {"conventions": declared(activation.elu)}),
    "threshold": (
        lambda x: activation.threshold(x, 0.0, -2.0),
        {"conventions": declared(activation.threshold), "kinks": (0.0,)},
    ),
    "hardshrink": (activation.hardshrink, {"conventions": declared(activation.hardshrink)}),
    "softshrink": (activation.softshrink, {"conventions": declared(activation.softshrink)}),
    "tanhshrink": (activation.tanhshrink, {}),
    "softmin": (lambda x: activation.softmin(x, -1), {"inputs": ND}),
    "glu": (lambda x: activation.glu(x, 1), {"inputs": [st.tuples(st.integers(1, 3), st.sampled_from([2, 4]))]}),
    "prelu": (
        lambda x, w: activation.prelu(x, w),
        {"inputs": [(2, 3, 2), (3,)], "conventions": {0: declared(activation.prelu)}, "kinks": (0.0,)},
    ),
    "rrelu eval": (lambda x: activation.rrelu(x, 0.1, 0.3), {"conventions": declared(activation.leaky_relu)}),
    "atan2": (F.atan2, {"inputs": 2, "broadcast": True}),
    "hypot": (F.hypot, {"inputs": 2, "broadcast": True, "min_value": 0.1}),
    # at a tie the whole gradient goes to the first input (PyTorch's fmax/fmin)
    "fmax": (F.fmax, {"inputs": 2, "broadcast": True, "conventions": [from_above(), from_below()]}),
    "fmin": (F.fmin, {"inputs": 2, "broadcast": True, "conventions": [from_below(), from_above()]}),
    "copysign": (F.copysign, {"inputs": 2, "broadcast": True, "conventions": [mean_of_sides(at=0.0), None]}),
    "logaddexp2": (F.logaddexp2, {"inputs": 2, "broadcast": True}),
    "exp2": (F.exp2, {}),
    "erfc": (F.erfc, {}),
    "cummax": (lambda x: F.cummax(x, -1).values, {"inputs": ND, "conventions": any_subgradient()}),
    "cummin": (lambda x: F.cummin(x, 0).values, {"inputs": ND, "conventions": any_subgradient()}),
    "logcumsumexp": (lambda x: F.logcumsumexp(x, -1), {"inputs": ND}),
    "Tensor.unfold": (
        lambda x: F.unfold_dimension(x, -1, 2, 1),
        {"inputs": [shapes(min_dims=1, max_dims=3, min_side=2, max_side=5)]},
    ),
    "kron": (F.kron, {"inputs": [(2, 3), (2, 2)]}),
    "cross": (lambda a, b: F.cross(a, b, dim=1), {"inputs": [(2, 3), (2, 3)]}),
    "pad constant, cropping": (lambda x: vision.pad(x, (1, -1, 2, 0), value=0.5), {"inputs": [(2, 3, 3)]}),
    "pad reflect": (lambda x: vision.pad(x, (2, 1)), {"inputs": [(1, 2, 4)]}),
    "pad replicate": (lambda x: vision.pad(x, (1, 2, 2, 1), mode="replicate"), {"inputs": [(1, 1, 2, 3)]}),
    "pad circular": (lambda x: vision.pad(x, (2, 1), mode="circular"), {"inputs": [(1, 2, 3)]}),
    "interpolate nearest": (lambda x: vision.interpolate(x, scale_factor=1.5), {"inputs": IMAGES}),
    "interpolate bilinear": (
        lambda x: vision.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False),
        {"inputs": IMAGES},
    ),
    "interpolate linear, corners": (
        lambda x: vision.interpolate(x, size=5, mode="linear", align_corners=True),
        {"inputs": [(1, 2, 3)]},
    ),
    "nn.functional.unfold": (lambda x: vision.unfold(x, (2, 3), padding=1, stride=(1, 2)), {"inputs": IMAGES}),
    "nn.functional.fold": (lambda x: vision.fold(x, (3, 4), 2, padding=1), {"inputs": [(1, 8, 20)]}),
    "normalize": (lambda x: distance.normalize(x, dim=-1), {"inputs": MATRIX, "min_value": 0.1}),
    "cosine_similarity": (distance.cosine_similarity, {"inputs": [(2, 3), (2, 3)], "min_value": 0.1}),
    # from a point far from the drawn values: at distance 0 the 2-norm has its kink
    "pairwise_distance": (
        lambda a: distance.pairwise_distance(a, np.full(a.shape, 1e3, a.dtype)),
        {"inputs": [(2, 3)]},
    ),
    "kl_div": (
        lambda x: loss.kl_div(F.log_softmax(x, -1), np.array([[0.0, 0.25, 0.75]], x.dtype), reduction="batchmean"),
        {"inputs": [(1, 3)]},
    ),
}


@pytest.mark.parametrize("name", list(OPS))
def test_op(name: str) -> None:
    fn, kwargs = OPS[name]
    check_op(fn, name=name, max_examples=EXAMPLES, **kwargs)


def test_max_over_every_axis_splits_ties_as_pytorch() -> None:
    check_op(F.max, conventions=split_max(), name="max()", max_examples=EXAMPLES)
    x = tg.Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    assert gradcheck(F.max, x, conventions=split_max())  # PyTorch's x.max().backward(): [0, 0.5, 0.5]
