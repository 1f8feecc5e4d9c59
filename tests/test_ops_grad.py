"""Property-based gradient tests of every op: autograd vs float64 central differences.

Every op of :mod:`tinygrad_cnn.functional` (and the Tensor methods that delegate to it) is
checked with :func:`tinygrad_cnn.testing.gradcheck` over Hypothesis-drawn shapes, configs and
values; a representative subset is also checked to second order with ``gradgradcheck``.
Inputs are kept away from kinks (see :mod:`tinygrad_cnn.testing.strategies`), and the tie
conventions at the kinks are pinned down by exact tests at the end of the file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn import primitives as P
from tinygrad_cnn.testing import gradcheck, gradgradcheck
from tinygrad_cnn.testing.strategies import (
    arrays,
    away_from,
    broadcastable_shapes,
    conv2d_configs,
    distinct_values,
    pool2d_configs,
    shapes,
    tensors,
)

SMALL = shapes(max_dims=3, max_side=4)
NONEMPTY = shapes(min_dims=1, max_dims=3, max_side=4)
TINY = shapes(max_dims=2, max_side=3)  # for second-order checks
TINY_ND = shapes(min_dims=1, max_dims=2, max_side=3)  # 0-d excluded: see test_second_order_of_0d_outputs
PAIRS = broadcastable_shapes(max_dims=3, max_side=3)


def t(a: np.ndarray) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def axes_for(ndim: int, full: bool = True) -> st.SearchStrategy:
    """axis=None, a single (possibly negative) axis, or a tuple of distinct axes.

    ``full=False`` leaves out reductions over every axis (None, or a tuple of all axes).
    """
    single = st.integers(-ndim, ndim - 1) if ndim else st.nothing()
    several = st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim).map(tuple)
    if not full:
        return st.one_of(single, several.filter(lambda a: len(a) < ndim)) if ndim >= 2 else st.nothing()
    return st.one_of(st.none(), single, several)


def reduces_everything(axis, ndim: int) -> bool:
    return axis is None or (isinstance(axis, tuple) and len(axis) == ndim)


# Core bug: Max.backward raises TypeError for a reduction over every axis (x.max(), x.min(),
# axis=None or a tuple of all axes): _select(mask, axis, pos) then indexes every axis of the mask
# and gets a NumPy scalar instead of a view, and `scalar[...] = hit` fails.


# --------------------------------------------------------------------------- elementwise binary

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "F.add": F.add,
    "F.sub": F.sub,
    "F.mul": F.mul,
    "F.div": F.div,
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), pair=PAIRS)
def test_binary_broadcasting(name, data, pair):
    a = data.draw(tensors(pair[0]))
    b = data.draw(tensors(pair[1]))
    if "div" in name:  # denominators away from 0
        b = away_from((0.0,), margin=0.3)(b)
    assert gradcheck(BINARY[name], a, b)


@given(x=tensors(SMALL), c=st.floats(-2, 2).map(away_from((0.0,), 0.3)))
def test_binary_with_python_scalars(x, c):
    assert gradcheck(lambda v: (c + v) * c - v / c + (c - v), x)
    assert gradcheck(lambda v: c / v, away_from((0.0,), 0.3)(x))


@given(pair=broadcastable_shapes(max_dims=2, max_side=3), data=st.data())
def test_binary_second_order(pair, data):
    a = data.draw(tensors(pair[0]))
    b = away_from((0.0,), 0.3)(data.draw(tensors(pair[1])))
    assert gradgradcheck(lambda x, y: x * y + x / y - y, a, b)


# --------------------------------------------------------------------------- elementwise unary

UNARY = {
    "neg": (lambda x: -x, {}),
    "F.neg": (F.neg, {}),
    "exp": (lambda x: x.exp(), {}),
    "tanh": (lambda x: x.tanh(), {}),
    "sigmoid": (lambda x: x.sigmoid(), {}),
    "softplus": (F.softplus, {}),
    "log": (lambda x: x.log(), {"min_value": 0.1}),
    "sqrt": (lambda x: x.sqrt(), {"min_value": 0.1}),
    "F.exp": (F.exp, {}),
    "F.log": (F.log, {"min_value": 0.1}),
    "F.sqrt": (F.sqrt, {"min_value": 0.1}),
    "F.tanh": (F.tanh, {}),
    "F.sigmoid": (F.sigmoid, {}),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=SMALL)
def test_unary(name, data, shape):
    fn, kw = UNARY[name]
    assert gradcheck(fn, data.draw(tensors(shape, **kw)))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "softplus"])
@given(data=st.data(), shape=TINY_ND)
def test_unary_second_order(name, data, shape):
    fn, kw = UNARY[name]
    assert gradgradcheck(fn, data.draw(tensors(shape, **kw)))


@pytest.mark.parametrize("name", ["relu", "abs"])
@given(x=tensors(SMALL).map(away_from((0.0,))))
def test_kinked_unary(name, x):
    fn = {"relu": lambda v: v.relu(), "abs": lambda v: v.abs()}[name]
    assert gradcheck(fn, x)
    assert gradcheck(getattr(F, name), x)


@given(x=tensors(TINY).map(away_from((0.0,))))
def test_kinked_unary_second_order(x):
    assert gradgradcheck(lambda v: v.relu() * v + v.abs() * v, x)


@given(x=tensors(SMALL, min_value=-60, max_value=60))
def test_softplus_large_inputs(x):
    """softplus is stable for large |x| and its gradient is sigmoid(x) everywhere."""
    (g,) = tg.grad(F.softplus(x).sum(), x)
    np.testing.assert_allclose(g.data, 1 / (1 + np.exp(-x.data)), rtol=1e-12, atol=1e-300)
    assert gradcheck(F.softplus, x)


@pytest.mark.parametrize("p", [0.5, 1.5, 2, 3, -1, -2, 0, 1])
@given(data=st.data(), shape=SMALL)
def test_pow(p, data, shape):
    if p in (0.5, 1.5):
        x = data.draw(tensors(shape, min_value=0.1))  # real only for positive bases
    elif p < 0:
        x = data.draw(tensors(shape).map(away_from((0.0,), margin=0.3)))
    else:
        x = data.draw(tensors(shape))
    assert gradcheck(lambda v: v**p, x)
    assert gradcheck(lambda v: F.pow(v, p), x)


@pytest.mark.parametrize("p", [0.5, 2, 3, -1])
@given(data=st.data(), shape=TINY)
def test_pow_second_order(p, data, shape):
    x = data.draw(tensors(shape, min_value=0.1) if p == 0.5 else tensors(shape).map(away_from((0.0,), 0.3)))
    assert gradgradcheck(lambda v: v**p, x)


BOUNDS = [(-1.0, 1.0), (-0.5, None), (None, 0.7), (0.2, 0.2)]


@pytest.mark.parametrize("lo,hi", BOUNDS)
@given(shape=SMALL, data=st.data())
def test_clip(lo, hi, shape, data):
    kinks = [b for b in {lo, hi} if b is not None]
    x = data.draw(tensors(shape).map(away_from(kinks)))
    assert gradcheck(lambda v: v.clip(lo, hi), x)
    assert gradcheck(lambda v: F.clip(v, lo, hi), x)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(pair=PAIRS, data=st.data())
def test_maximum_minimum(name, pair, data):
    # All values distinct (pairwise >= 0.05 apart), so no a/b pair ties under broadcasting.
    na, nb = math.prod(pair[0]), math.prod(pair[1])
    values = data.draw(distinct_values((na + nb,), margin=0.05, min_value=-5, max_value=5))
    a, b = t(values[:na].reshape(pair[0])), t(values[na:].reshape(pair[1]))
    assert gradcheck(lambda x, y: getattr(x, name)(y), a, b)
    assert gradcheck(getattr(F, name), a, b)


@given(pair=PAIRS, data=st.data())
def test_where(pair, data):
    a, b = data.draw(tensors(pair[0])), data.draw(tensors(pair[1]))
    out_shape = np.broadcast_shapes(pair[0], pair[1])
    cond_shape = data.draw(st.sampled_from([out_shape, pair[0], pair[1], out_shape[1:]]))
    cond = data.draw(hnp.arrays(bool, cond_shape))
    assert gradcheck(lambda x, y: tg.where(cond, x, y), a, b)
    assert gradcheck(lambda x, y: F.where(tg.tensor(cond), x, y), a, b)


@given(x=tensors(SMALL))
def test_astype_float64_to_float32(x):
    fn = lambda v: v.astype(np.float32) * 2.0  # noqa: E731
    assert fn(x).dtype == np.float32
    assert gradcheck(fn, x)  # output float32: float32 tolerances are used
    (g,) = tg.grad(fn(x), x, grad_outputs=np.ones(x.shape, np.float32))
    assert g.dtype == np.float64


@given(x=tensors(SMALL, dtype=np.float32))
def test_astype_float32_to_float64(x):
    fn = lambda v: v.astype(np.float64).tanh()  # noqa: E731
    assert fn(x).dtype == np.float64
    assert gradcheck(fn, x)
    assert gradcheck(lambda v: F.astype(v, np.float64), x)


# --------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("name", ["sum", "mean", "var"])
@given(shape=SMALL, data=st.data(), keepdims=st.booleans())
def test_smooth_reductions(name, shape, data, keepdims):
    x = data.draw(tensors(shape))
    axis = data.draw(axes_for(len(shape)))
    if name == "var":  # the biased variance: defined for one element too
        assert gradcheck(lambda v: v.var(axis=axis, keepdims=keepdims, unbiased=False), x)
        assert gradcheck(lambda v: F.var(v, axis, False, keepdims), x)
        return
    assert gradcheck(lambda v: getattr(v, name)(axis=axis, keepdims=keepdims), x)
    assert gradcheck(lambda v: getattr(F, name)(v, axis, keepdims), x)


@given(shape=NONEMPTY, data=st.data(), keepdims=st.booleans())
def test_var_ddof1(shape, data, keepdims):
    x = data.draw(tensors(shape))
    axis = data.draw(axes_for(len(shape)))
    axes = range(len(shape)) if axis is None else [axis] if isinstance(axis, int) else axis
    if math.prod(shape[a] for a in axes) < 2:
        return  # ddof=1 needs at least two elements per group
    assert gradcheck(lambda v: v.var(axis=axis, keepdims=keepdims, ddof=1), x)


@pytest.mark.parametrize("name", ["amax", "amin"])
@given(shape=shapes(min_dims=2, max_dims=3, max_side=4), data=st.data(), keepdims=st.booleans())
def test_amax_amin(name, shape, data, keepdims):
    x = t(data.draw(distinct_values(shape)))  # no ties: the winner is stable under +-eps
    axis = data.draw(axes_for(len(shape)))
    if name == "var":  # the biased variance: defined for one element too
        assert gradcheck(lambda v: v.var(axis=axis, keepdims=keepdims, unbiased=False), x)
        assert gradcheck(lambda v: F.var(v, axis, False, keepdims), x)
        return
    assert gradcheck(lambda v: getattr(v, name)(axis=axis, keepdims=keepdims), x)
    assert gradcheck(lambda v: getattr(F, name)(v, axis, keepdims), x)


@pytest.mark.parametrize("name", ["max", "min"])
@given(shape=shapes(min_dims=1, max_dims=3, max_side=4), data=st.data(), keepdim=st.booleans())
def test_max_min_over_a_dim(name, shape, data, keepdim):
    x = t(data.draw(distinct_values(shape)))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradcheck(lambda v: getattr(v, name)(dim, keepdim).values, x)
    values, indices = getattr(F, name)(x, dim, keepdim)
    pick = np.argmax if name == "max" else np.argmin
    np.testing.assert_array_equal(indices.numpy(), pick(x.detach().numpy(), axis=dim, keepdims=keepdim))


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@pytest.mark.parametrize(
    "shape,axis,keepdims", [((), None, False), ((3,), 0, True), ((2, 3), None, False), ((2, 3, 4), (0, 1, 2), True)]
)
def test_max_min_full_reduction(name, shape, axis, keepdims):
    x = t(np.random.default_rng(0).permutation(math.prod(shape)).reshape(shape) / 4)
    if name in ("max", "min"):
        assert gradcheck(lambda v: getattr(v, name)(), x)
    else:
        assert gradcheck(lambda v: getattr(v, name)(axis=axis, keepdims=keepdims), x)


@given(shape=shapes(min_dims=2, max_dims=3, max_side=3), data=st.data())
def test_reductions_second_order(shape, data):
    x = t(data.draw(distinct_values(shape)))
    axis = data.draw(axes_for(len(shape)))
    assert gradgradcheck(lambda v: v.var(axis=axis, correction=0) * v.amax(axis=axis) + v.mean(axis=axis) ** 2, x)


# --------------------------------------------------------------------------- shape ops


@given(shape=SMALL, data=st.data())
def test_reshape(shape, data):
    x = data.draw(tensors(shape))
    assert gradcheck(lambda v: v.reshape(-1), x)
    assert gradcheck(lambda v: F.reshape(v, (-1,) + shape[1:]) if shape else v.reshape(()), x)
    if shape:
        assert gradcheck(lambda v: v.reshape(shape[0], -1), x)


@given(shape=SMALL, data=st.data())
def test_transpose_permute(shape, data):
    x = data.draw(tensors(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    assert gradcheck(lambda v: v.permute(perm), x)
    assert gradcheck(lambda v: v.permute(*perm), x)
    if len(shape) >= 2:
        d0, d1 = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
        assert gradcheck(lambda v: v.transpose(d0, d1), x)
    assert gradcheck(lambda v: v.T, x)
    if len(shape) >= 2:
        assert gradcheck(lambda v: v.mT, x)


@given(shape=NONEMPTY, data=st.data())
def test_swapaxes(shape, data):
    x = data.draw(tensors(shape))
    a1 = data.draw(st.integers(-len(shape), len(shape) - 1))
    a2 = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradcheck(lambda v: v.swapaxes(a1, a2), x)
    assert gradcheck(lambda v: F.swapaxes(v, a1, a2), x)


@given(shape=NONEMPTY, data=st.data())
def test_flatten(shape, data):
    x = data.draw(tensors(shape))
    start = data.draw(st.integers(0, len(shape) - 1))
    end = data.draw(st.integers(start, len(shape) - 1))
    assert gradcheck(lambda v: v.flatten(start, end), x)
    if len(shape) >= 2:
        assert gradcheck(lambda v: F.flatten(v, 1), x)
    assert gradcheck(lambda v: F.flatten(v), x)  # default start_dim=0: everything


@given(pair=PAIRS, data=st.data())
def test_broadcast_to_expand(pair, data):
    target = np.broadcast_shapes(*pair)
    x = data.draw(tensors(pair[0]))
    assert gradcheck(lambda v: v.expand(target), x)
    assert gradcheck(lambda v: F.broadcast_to(v, *target), x)


@given(shape=NONEMPTY, data=st.data())
def test_getitem_basic(shape, data):
    """Ints, slices (negative steps too), None and Ellipsis."""
    x = data.draw(tensors(shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    assert gradcheck(lambda v: v[index], x)


@given(shape=NONEMPTY, data=st.data())
def test_getitem_integer_arrays(shape, data):
    """Integer array indices (negative and repeated indices included), alone or with slices."""
    x = data.draw(tensors(shape))
    index = data.draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2, max_side=4)))
    assert gradcheck(lambda v: v[index], x)
    first = data.draw(hnp.arrays(np.int64, st.integers(1, 5), elements=st.integers(-shape[0], shape[0] - 1)))
    assert gradcheck(lambda v: v[first], x)  # one array on the first axis, the rest sliced
    assert gradcheck(lambda v: v[tg.tensor(first)], x)
    assert gradcheck(lambda v: v[list(first)], x)
    if len(shape) >= 2:
        second = np.array(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=1, max_size=5)))
        assert gradcheck(lambda v: v[:, second], x)
        assert gradcheck(lambda v: v[::-1, second], x)


def test_getitem_repeated_indices_accumulate():
    x = t(np.arange(4.0))
    assert gradcheck(lambda v: v[np.array([0, 0, 3, 0, -1])], x)
    (g,) = tg.grad(x[np.array([0, 0, 3, 0, -1])].sum(), x)
    np.testing.assert_array_equal(g.data, [3, 0, 0, 2])


@given(shape=NONEMPTY, data=st.data())
def test_getitem_boolean_masks(shape, data):
    x = data.draw(tensors(shape))
    full = data.draw(hnp.arrays(bool, shape))
    first = data.draw(hnp.arrays(bool, shape[:1]))
    assert gradcheck(lambda v: v[full], x)
    assert gradcheck(lambda v: v[tg.tensor(full)], x)
    assert gradcheck(lambda v: v[first], x)
    assert gradcheck(lambda v: v[x.data > 0], x)


@given(shape=shapes(min_dims=1, max_dims=2, max_side=3), data=st.data())
def test_getitem_second_order(shape, data):
    x = data.draw(tensors(shape))
    basic = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    fancy = data.draw(hnp.integer_array_indices(shape))
    assert gradgradcheck(lambda v: v[basic] ** 2, x)
    assert gradgradcheck(lambda v: v[fancy] ** 2, x)


def pad_widths(ndim: int) -> st.SearchStrategy:
    pair = st.tuples(st.integers(0, 2), st.integers(0, 2))
    return st.one_of(st.integers(0, 2), pair, st.lists(pair, min_size=ndim, max_size=ndim).map(tuple))


@given(shape=NONEMPTY, data=st.data(), value=st.floats(-2, 2))
def test_pad(shape, data, value):
    x = data.draw(tensors(shape))
    widths = data.draw(pad_widths(len(shape)))
    assert gradcheck(lambda v: v.pad(widths, value), x)
    assert gradcheck(lambda v: F.pad(v, widths), x)


@given(shape=TINY_ND, data=st.data())
def test_pad_second_order(shape, data):
    x = data.draw(tensors(shape))
    widths = data.draw(pad_widths(len(shape)))
    assert gradgradcheck(lambda v: F.pad(v, widths, 1.5) ** 3, x)


@given(shape=NONEMPTY, data=st.data())
def test_concatenate(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    ax = axis % len(shape)
    ts = [data.draw(tensors(shape[:ax] + (n,) + shape[ax + 1 :])) for n in sizes]
    assert gradcheck(lambda *vs: tg.concatenate(vs, axis=axis), *ts)
    assert gradcheck(lambda *vs: F.concatenate(list(vs), axis), *ts)


@given(shape=SMALL, data=st.data())
def test_stack(shape, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    ts = [data.draw(tensors(shape)) for _ in range(data.draw(st.integers(1, 3)))]
    assert gradcheck(lambda *vs: tg.stack(vs, axis=axis), *ts)
    assert gradcheck(lambda *vs: F.stack(vs, axis), *ts)


@given(shape=NONEMPTY, data=st.data())
def test_concatenate_with_constant(shape, data):
    """Only some of the joined tensors require grad."""
    a, b = data.draw(tensors(shape)), data.draw(tensors(shape, requires_grad=False))
    assert gradcheck(lambda v: tg.concatenate([b, v, b], axis=0), a)


# --------------------------------------------------------------------------- linear algebra

DIM = st.integers(1, 4)


@st.composite
def matmul_shapes(draw):
    """(a_shape, b_shape) covering 1-D x 1-D, 1-D x N-D, N-D x 1-D and batched broadcasting."""
    n, k, m = draw(DIM), draw(DIM), draw(DIM)
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=2, max_side=3))
    a = draw(st.sampled_from([(k,), batch_a + (n, k)]))
    b = draw(st.sampled_from([(k,), batch_b + (k, m)]))
    return a, b


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [
        ((3,), (3,)),
        ((3,), (3, 2)),
        ((2, 3), (3,)),
        ((2, 3), (3, 4)),
        ((3,), (2, 3, 4)),
        ((2, 4, 3), (3,)),
        ((2, 1, 2, 3), (4, 3, 2)),
        ((1, 2, 3), (5, 3, 2)),
    ],
)
def test_matmul_cases(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = t(rng.standard_normal(a_shape)), t(rng.standard_normal(b_shape))
    assert gradcheck(lambda x, y: x @ y, a, b)


@given(shapes_=matmul_shapes(), data=st.data())
def test_matmul(shapes_, data):
    a, b = data.draw(tensors(shapes_[0])), data.draw(tensors(shapes_[1]))
    assert gradcheck(lambda x, y: x @ y, a, b)
    assert gradcheck(F.matmul, a, b)
    assert gradcheck(lambda x, y: x.matmul(y), a, b)


@given(shapes_=matmul_shapes(), data=st.data())
def test_matmul_second_order(shapes_, data):
    a, b = data.draw(tensors(shapes_[0])), data.draw(tensors(shapes_[1]))
    assert gradgradcheck(lambda x, y: (x @ y) * (x @ y), a, b)


@given(data=st.data(), n=DIM, k=DIM, m=DIM, c_shape=st.sampled_from(["row", "1xm", "nxm", "scalar"]))
def test_matmul_add(data, n, k, m, c_shape):
    """The fused primitive behind linear and conv2d with a bias: y = a @ b + c, c broadcast to y."""
    a, b = data.draw(tensors((n, k))), data.draw(tensors((k, m)))
    c = data.draw(tensors({"row": (m,), "1xm": (1, m), "nxm": (n, m), "scalar": ()}[c_shape]))
    fused = tg.primitives.MatMulAdd.apply
    np.testing.assert_allclose(fused(a, b, c).data, a.data @ b.data + c.data, rtol=1e-12, atol=1e-12)
    assert gradcheck(fused, a, b, c)
    assert gradgradcheck(lambda x, y, z: fused(x, y, z) * fused(x, y, z), a, b, c)


@given(
    data=st.data(),
    n=DIM,
    oh=DIM,
    ow=DIM,
    kh=DIM,
    kw=DIM,
    c=DIM,
    c_out=DIM,
    bias=st.booleans(),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    spare=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_window_matmul(data, n, oh, ow, kh, kw, c, c_out, bias, stride, dilation, spare, padding):
    """The primitive behind conv2d on its own: an image's windows times a weight, with strides,
    dilations, zero padding (windows that read only padding too) and (with a stride of 2) rows or
    columns that no window reaches (``spare``); the forward against an explicit sum over the
    windows of the padded image."""
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    h = max(1, (oh - 1) * sh + dh * (kh - 1) + 1 + spare[0] * (sh - 1) - 2 * ph)
    w_ = max(1, (ow - 1) * sw + dw * (kw - 1) + 1 + spare[1] * (sw - 1) - 2 * pw)
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    assume(oh >= 1 and ow >= 1)
    x = data.draw(tensors((n, c, h, w_)))
    w = data.draw(tensors((kh, kw, c, c_out)))
    b = data.draw(tensors((c_out,))) if bias else None
    padded = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    want = np.zeros((n, oh, ow, c_out)) + (0 if b is None else b.data)
    for p in range(kh):
        for q in range(kw):
            rows = p * dh + sh * np.arange(oh)
            cols = q * dw + sw * np.arange(ow)
            pixels = padded[:, :, rows[:, None], cols[None, :]]  # (N, C, OH, OW)
            want += np.einsum("ncij,co->nijo", pixels, w.data[p, q])

    def op(*t: Tensor) -> Tensor:
        return tg.primitives.Convolution.apply(t[0], t[1], t[2] if bias else None, stride, dilation, padding)

    inputs = (x, w) if b is None else (x, w, b)
    np.testing.assert_allclose(op(*inputs).data, want, rtol=1e-12, atol=1e-12)
    assert gradcheck(op, *inputs)
    assert gradgradcheck(lambda *t: op(*t) ** 2, *inputs)


@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), n_in=DIM, n_out=DIM, bias=st.booleans())
def test_linear(data, lead, n_in, n_out, bias):
    x = data.draw(tensors(lead + (n_in,)))
    w = data.draw(tensors((n_out, n_in)))
    if bias:
        b = data.draw(tensors((n_out,)))
        assert gradcheck(F.linear, x, w, b)
    else:
        assert gradcheck(F.linear, x, w)


# --------------------------------------------------------------------------- convolution and pooling

CONV = conv2d_configs(max_batch=2, max_in_channels=2, max_out_channels=2, max_side=5)


@given(cfg=CONV, data=st.data())
def test_conv2d(cfg, data):
    x, w = data.draw(tensors(cfg.input_shape)), data.draw(tensors(cfg.weight_shape))
    args = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation)
    if cfg.bias:
        b = data.draw(tensors((cfg.weight_shape[0],)))
        assert gradcheck(lambda x_, w_, b_: F.conv2d(x_, w_, b_, **args), x, w, b)
    else:
        assert gradcheck(lambda x_, w_: x_.conv2d(w_, **args), x, w)


@given(cfg=conv2d_configs(max_batch=1, max_in_channels=2, max_out_channels=2, max_side=3, max_kernel=2), data=st.data())
def test_conv2d_second_order(cfg, data):
    x, w = data.draw(tensors(cfg.input_shape)), data.draw(tensors(cfg.weight_shape))
    b = data.draw(tensors((cfg.weight_shape[0],))) if cfg.bias else None
    fn = lambda x_, w_: F.conv2d(x_, w_, b, cfg.stride, cfg.padding, cfg.dilation).tanh()  # noqa: E731
    assert gradgradcheck(fn, x, w)


@given(cfg=CONV, data=st.data(), pad_value=st.sampled_from([0.0, -1.5]))
def test_unfold(cfg, data, pad_value):
    x = data.draw(tensors(cfg.input_shape))
    kernel = cfg.weight_shape[2:]
    assert gradcheck(lambda v: F.unfold(v, kernel, cfg.stride, cfg.padding, cfg.dilation, pad_value), x)


@given(cfg=pool2d_configs(max_batch=2, max_channels=2, max_side=5), data=st.data())
def test_max_pool2d(cfg, data):
    x = t(data.draw(distinct_values(cfg.input_shape, margin=1e-2, min_value=-3, max_value=3)))
    assert gradcheck(lambda v: v.max_pool2d(cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation), x)


@given(cfg=pool2d_configs(max_batch=1, max_channels=2, max_side=4), data=st.data())
def test_max_pool2d_second_order(cfg, data):
    x = t(data.draw(distinct_values(cfg.input_shape)))
    args = (cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation)
    assert gradgradcheck(lambda v: F.max_pool2d(v, *args) ** 2, x)


def test_max_pool2d_default_stride():
    x = t(np.random.default_rng(1).permutation(36).reshape(1, 1, 6, 6) / 10)
    assert gradcheck(lambda v: F.max_pool2d(v, 2), x)
    assert gradcheck(lambda v: F.max_pool2d(v, (3, 2)), x)


@given(cfg=pool2d_configs(max_batch=2, max_channels=2, max_side=5, max_dilation=1), data=st.data())
def test_avg_pool2d(cfg, data):
    x = data.draw(tensors(cfg.input_shape))
    assert gradcheck(lambda v: v.avg_pool2d(cfg.kernel_size, cfg.stride, cfg.padding), x)
    assert gradcheck(lambda v: F.avg_pool2d(v, cfg.kernel_size, padding=cfg.padding), x)  # stride = kernel


# --------------------------------------------------------------------------- softmax family


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@given(shape=NONEMPTY, data=st.data())
def test_softmaxes(name, shape, data):
    x = data.draw(tensors(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradcheck(lambda v: getattr(v, name)(axis), x)
    assert gradcheck(lambda v: getattr(F, name)(v, axis=axis), x)


@given(shape=shapes(min_dims=1, max_dims=2, max_side=3), data=st.data())
def test_log_softmax_second_order(shape, data):
    x = data.draw(tensors(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradgradcheck(lambda v: v.log_softmax(axis), x)
    assert gradgradcheck(lambda v: v.softmax(axis), x)


@given(shape=shapes(min_dims=1, max_dims=4, max_side=4), data=st.data())
def test_standardize(shape, data):
    """The Standardize primitive over any set of axes, in any memory layout (a batch-inner conv
    output's included), against finite differences; the array path against the Tensor path."""
    axes = tuple(sorted(data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))))
    assume(math.prod(shape[a] for a in axes) > 1)  # one value per mean: y is 0, its gradient too
    eps = data.draw(st.sampled_from([1e-5, 0.5]))
    order = data.draw(st.permutations(range(len(shape))))
    x = data.draw(tensors(shape, min_value=-3, max_value=3))
    # with eps tiny, a group of equal values makes y bend on a scale of sqrt(eps): beyond finite differences
    assume(eps > 0.1 or (x.array.var(axes) > 1e-2).all())
    laid_out = Tensor(np.ascontiguousarray(x.array.transpose(order)).transpose(np.argsort(order)), requires_grad=True)
    assert gradcheck(lambda v: F.standardize(v, axes, eps), laid_out)
    y = F.standardize(laid_out, axes, eps)
    centred = x.array - x.array.mean(axes, keepdims=True)
    np.testing.assert_allclose(y.array, centred / np.sqrt((centred**2).mean(axes, keepdims=True) + eps), atol=1e-10)


@given(shape=shapes(min_dims=1, max_dims=4, max_side=4), data=st.data())
def test_standardize_affine(shape, data):
    """Standardize with a weight and a bias along any axes (folded into one scale and shift where
    they are constant along most of x, as a batch or group norm's are), against finite differences
    and the formula, in any memory layout."""
    axes = tuple(sorted(data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))))
    assume(math.prod(shape[a] for a in axes) > 1)
    order = data.draw(st.permutations(range(len(shape))))
    x = data.draw(tensors(shape, min_value=-3, max_value=3))
    x = Tensor(np.ascontiguousarray(x.array.transpose(order)).transpose(np.argsort(order)), requires_grad=True)
    affine = tuple(data.draw(st.sampled_from([1, n])) for n in shape)
    weight = data.draw(tensors(affine, min_value=-2, max_value=2)) if data.draw(st.booleans()) else None
    bias = data.draw(tensors(affine)) if weight is None or data.draw(st.booleans()) else None
    params = [t for t in (weight, bias) if t is not None]

    def normalised(v, *ps):
        w = ps[0] if weight is not None else None
        b = ps[-1] if bias is not None else None
        return P.Standardize.apply(v, w, b, axes, 0.5)

    assert gradcheck(normalised, x, *params)
    centred = x.array - x.array.mean(axes, keepdims=True)
    want = centred / np.sqrt((centred**2).mean(axes, keepdims=True) + 0.5)
    want = want * (1 if weight is None else weight.array) + (0 if bias is None else bias.array)
    np.testing.assert_allclose(normalised(x, *params).array, want, atol=1e-10)


@given(shape=shapes(min_dims=2, max_dims=3, max_side=3), data=st.data())
def test_standardize_affine_second_order(shape, data):
    axes = tuple(range(1, len(shape)))  # a layer norm's axes, and a batch norm's per-channel weight
    assume(math.prod(shape[a] for a in axes) > 1)
    x = data.draw(tensors(shape, min_value=-3, max_value=3))
    affine = data.draw(st.sampled_from([(1,) + shape[1:], (1, shape[1]) + (1,) * (len(shape) - 2)]))
    w, b = data.draw(tensors(affine, min_value=-2, max_value=2)), data.draw(tensors(affine))
    assert gradgradcheck(lambda v, ww, bb: P.Standardize.apply(v, ww, bb, axes, 0.1) * v, x, w, b)


@given(shape=shapes(min_dims=1, max_dims=3, max_side=3), data=st.data())
def test_standardize_second_order(shape, data):
    axes = tuple(sorted(data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))))
    assume(math.prod(shape[a] for a in axes) > 1)
    x = data.draw(tensors(shape, min_value=-3, max_value=3))
    assert gradgradcheck(lambda v: F.standardize(v, axes, 0.1) * v, x)


@given(shape=SMALL, data=st.data(), keepdims=st.booleans())
def test_logsumexp(shape, data, keepdims):
    x = data.draw(tensors(shape))
    axis = data.draw(axes_for(len(shape)))
    assert gradcheck(lambda v: v.logsumexp(axis=axis, keepdims=keepdims), x)
    assert gradcheck(lambda v: F.logsumexp(v, axis, keepdims), x)


# --------------------------------------------------------------------------- losses

REDUCTIONS = ["mean", "sum", "none"]


@st.composite
def classification(draw, min_value=-3.0, max_value=3.0):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    scores = draw(tensors((n, c), min_value=min_value, max_value=max_value))
    target = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
    return scores, target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=classification())
def test_cross_entropy(reduction, case):
    logits, target = case
    assert gradcheck(lambda v: F.cross_entropy(v, target, reduction=reduction), logits)
    assert gradcheck(lambda v, tt: F.cross_entropy(v, tt, reduction=reduction), logits, tg.tensor(target))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=classification(min_value=-4.0, max_value=-0.05))
def test_nll_loss(reduction, case):
    log_probs, target = case
    assert gradcheck(lambda v: F.nll_loss(v, target, reduction=reduction), log_probs)
    assert gradcheck(lambda v: F.nll_loss(v.log_softmax(), target, reduction=reduction), log_probs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=SMALL, data=st.data())
def test_mse_loss(reduction, shape, data):
    x, y = data.draw(tensors(shape)), data.draw(tensors(shape))
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), x, y)  # w.r.t. input and target
    assert gradcheck(lambda a: F.mse_loss(a, y.data, reduction=reduction), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=SMALL, data=st.data())
def test_binary_cross_entropy(reduction, shape, data):
    p = data.draw(tensors(shape, min_value=0.05, max_value=0.95))  # away from the clamped 0 and 1
    y = data.draw(tensors(shape, min_value=0.0, max_value=1.0))
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), p, y)
    hard = (y.data > 0.5).astype(np.float64)
    assert gradcheck(lambda a: F.binary_cross_entropy(a, hard, reduction=reduction), p)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=SMALL, data=st.data())
def test_binary_cross_entropy_with_logits(reduction, shape, data):
    z = data.draw(tensors(shape, min_value=-20, max_value=20))
    y = data.draw(tensors(shape, min_value=0.0, max_value=1.0))
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), z, y)


@pytest.fixture
def restore_rng():
    state = tg.get_rng_state()
    yield
    tg.set_rng_state(state)


@pytest.mark.usefixtures("restore_rng")
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@given(shape=SMALL, data=st.data(), seed=st.integers(0, 2**31))
def test_dropout(p, shape, data, seed):
    x = data.draw(tensors(shape))

    def fn(v):
        tg.manual_seed(seed)  # the same mask on every call
        return F.dropout(v, p)

    assert gradcheck(fn, x)
    assert gradcheck(lambda v: F.dropout(v, p, training=False), x)


# --------------------------------------------------------------------------- tie conventions (exact)


def test_relu_gradient_at_zero_is_zero():
    x = t(np.array([-1.0, 0.0, -0.0, 2.0]))
    (g,) = tg.grad(x.relu().sum(), x)
    np.testing.assert_array_equal(g.data, [0.0, 0.0, 0.0, 1.0])


def test_abs_gradient_at_zero_is_zero():
    x = t(np.array([-1.0, 0.0, 2.0]))
    (g,) = tg.grad(x.abs().sum(), x)
    np.testing.assert_array_equal(g.data, [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_min_over_a_dim_ties_go_to_the_first(name, axis, keepdims):
    """PyTorch's max(dim)/min(dim): the index is the first extreme's, and it takes the whole gradient."""
    x = t(np.full((2, 3, 4), 1.5))
    out, indices = getattr(x, name)(axis, keepdims)
    np.testing.assert_array_equal(indices.numpy(), 0)
    g_out = np.arange(1.0, out.numel() + 1).reshape(out.shape)
    (g,) = tg.grad(out, x, grad_outputs=g_out)
    axes = (axis % 3,)
    expected = np.zeros(x.shape)
    g_keep = g_out.reshape([1 if i in axes else n for i, n in enumerate(x.shape)])
    first = tuple(slice(0, 1) if i in axes else slice(None) for i in range(3))
    expected[first] = g_keep
    np.testing.assert_array_equal(g.numpy(), expected)


@pytest.mark.parametrize("name", ["amax", "amin"])
@pytest.mark.parametrize("axis", [None, 0, (0, 2), (0, 1, 2)])
def test_amax_amin_ties_share_the_gradient_evenly(name, axis):
    """PyTorch's amax/amin and max()/min() without a dim: tied extremes share the gradient."""
    x = t(np.full((2, 3, 4), 1.5))
    out = getattr(x, name)(axis)
    (g,) = tg.grad(out.sum(), x)
    count = 24 if axis is None else math.prod(x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    np.testing.assert_allclose(g.numpy(), np.full(x.shape, 1 / count))
    (g,) = tg.grad(x.max() if name == "amax" else x.min(), x)
    np.testing.assert_allclose(g.numpy(), np.full(x.shape, 1 / 24))


def test_max_partial_ties_first_of_the_tied():
    x = t(np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]]))
    (g,) = tg.grad(x.max(1).values.sum(), x)
    np.testing.assert_array_equal(g.numpy(), [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation",
    [
        (2, 2, 0, 1),
        (2, 1, 0, 1),
        (3, 1, 1, 1),
        (3, 2, 1, 2),
        ((2, 3), (1, 2), (1, 1), (2, 1)),
    ],
)
def test_max_pool2d_ties_go_to_first_in_window(kernel, stride, padding, dilation):
    x = t(np.full((1, 2, 5, 6), -0.5))
    out = F.max_pool2d(x, kernel, stride, padding, dilation)
    g_out = np.arange(1.0, out.numel() + 1).reshape(out.shape)
    (g,) = tg.grad(out, x, grad_outputs=g_out)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    expected = np.zeros(x.shape)
    for c in range(2):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                # the first real (non-padding) element of the window, in row-major order
                cells = [(i * sh + p * dh - ph, j * sw + q * dw - pw) for p in range(kh) for q in range(kw)]
                r, s = next((r, s) for r, s in cells if 0 <= r < 5 and 0 <= s < 6)
                expected[0, c, r, s] += g_out[0, c, i, j]
    np.testing.assert_array_equal(g.data, expected)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_ties(name):
    a = t(np.array([1.0, 2.0, 3.0]))
    b = t(np.array([1.0, 5.0, -3.0]))
    ga, gb = tg.grad(getattr(a, name)(b).sum(), [a, b])
    if name == "maximum":
        np.testing.assert_array_equal(ga.data, [0.5, 0.0, 1.0])
        np.testing.assert_array_equal(gb.data, [0.5, 1.0, 0.0])
    else:
        np.testing.assert_array_equal(ga.data, [0.5, 1.0, 0.0])
        np.testing.assert_array_equal(gb.data, [0.5, 0.0, 1.0])


def test_maximum_tie_under_broadcasting():
    a = t(np.array([[2.0], [1.0]]))
    b = t(np.array([2.0, 2.0, 0.0]))
    ga, gb = tg.grad(F.maximum(a, b).sum(), [a, b])
    np.testing.assert_array_equal(ga.data, [[0.5 + 0.5 + 1.0], [1.0]])
    np.testing.assert_array_equal(gb.data, [0.5 + 1.0, 0.5 + 1.0, 0.0])


def test_clip_passes_gradient_at_bounds_inclusive():
    x = t(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    (g,) = tg.grad(x.clip(-1.0, 1.0).sum(), x)
    np.testing.assert_array_equal(g.data, [0, 1, 1, 1, 0])
    (g,) = tg.grad(x.clip(min=0.0).sum(), x)
    np.testing.assert_array_equal(g.data, [0, 0, 1, 1, 1])
    (g,) = tg.grad(x.clip(max=-1.0).sum(), x)
    np.testing.assert_array_equal(g.data, [1, 1, 0, 0, 0])


@given(x=arrays(SMALL, elements=st.sampled_from([-1.0, 1.0, 0.5])))
def test_clip_bounds_property(x):
    v = t(x)
    (g,) = tg.grad(v.clip(-1.0, 1.0).sum(), v)
    np.testing.assert_array_equal(g.data, np.ones_like(x))


# --------------------------------------------------------------------------- edge cases (bugs found and fixed)


# Core bug: ops that save their output (Exp, Tanh) lose the second derivative on 0-d tensors:
# np.exp of a 0-d array returns a NumPy scalar, Function.apply wraps it with np.asarray (a new
# object), so Context.saved_tensors no longer recognises it as the output and returns a constant.
@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_second_order_of_0d_outputs(name):
    x = t(np.array(0.3))
    assert gradgradcheck(lambda v: getattr(v, name)(), x)


# Core bug (minor): pad_width for a 0-d tensor becomes an empty float array and np.pad raises
# "TypeError: `pad_width` must be of integral type"; np.pad(np.array(5.0), 1) returns array(5.0).
def test_pad_0d():
    x = t(np.array(0.3))
    assert gradcheck(lambda v: v.pad(1), x)


# Core bug (minor): transpose/permute reduce out-of-range axes modulo ndim instead of rejecting
# them, so x.transpose(0, 3) on a 2-D tensor is silently the identity and x.transpose(2, 1) is
# too; NumPy raises AxisError. (functional.transpose validates `a % ndim`, not `-ndim <= a < ndim`.)
@pytest.mark.parametrize("axes", [(0, 3), (1, -4), (2, 1)])
def test_transpose_rejects_out_of_range_axes(axes):
    with pytest.raises(ValueError):
        Tensor(np.zeros((2, 3))).transpose(*axes)


# binary_cross_entropy at probabilities of exactly 0 or 1: the clamped log term contributes no
# gradient (it used to be 0/0 = NaN), the other term its exact derivative (1/(1-p) or -1/p).
def test_binary_cross_entropy_gradient_at_saturated_probabilities():
    p = t(np.array([0.0, 0.5, 1.0]))
    with np.errstate(all="ignore"):
        (g,) = tg.grad(F.binary_cross_entropy(p, np.array([0.0, 1.0, 1.0])), p)
    np.testing.assert_allclose(g.data, [1 / 3, -2 / 3, -1 / 3])
