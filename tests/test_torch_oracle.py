"""PyTorch as an independent oracle: forward values and gradients of every op, in float64.

Each property draws small shapes and values with Hypothesis, runs the op in tinygrad_cnn and in
PyTorch on the same numbers, compares the outputs, then pulls the same random cotangent back
through both graphs and compares the gradients of every input. Example counts come from the
Hypothesis profile (see conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# --------------------------------------------------------------------------- strategies

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False, allow_subnormal=False)
POSITIVE = st.floats(0.1, 5, allow_nan=False, allow_infinity=False)
AWAY_FROM_ZERO = st.one_of(st.floats(0.5, 3), st.floats(-3, -0.5))
TIES = st.sampled_from([-1.0, 0.0, 0.0, 0.5, 1.0, 2.0])  # few distinct values: ties are frequent
ZERO_HEAVY = st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.25, 1.0])  # MNIST-like flat background
SEEDS = st.integers(0, 2**32 - 1)


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(shape, elements=FLOATS, unique=False):
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique)


@st.composite
def axes_for(draw, ndim):
    """None, an int (maybe negative) or a non-empty tuple of distinct axes."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))


def norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in items))


# --------------------------------------------------------------------------- the comparison


def compare(tg_fn, torch_fn, inputs, seed, *, rtol=1e-9, atol=1e-11, grads=True):
    """Run ``tg_fn(*tensors)`` and ``torch_fn(*torch_tensors)`` on float64 copies of ``inputs``,
    compare the outputs, then backpropagate one random cotangent through both and compare the
    gradients of every input."""
    xs = [tg.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    ts = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    out = tg_fn(*xs)
    ref = torch_fn(*ts)
    want = ref.detach().numpy()
    assert out.shape == tuple(ref.shape), (out.shape, tuple(ref.shape))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, want, rtol=rtol, atol=atol, err_msg="forward")
    if not grads:
        return
    cot = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(cot)
    ref.backward(torch.from_numpy(cot))
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        got = np.zeros(x.shape) if x.grad is None else x.grad
        ref_g = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
        assert got.shape == x.shape and got.dtype == np.float64
        scale = max(1.0, float(np.abs(ref_g).max(initial=0.0)))
        np.testing.assert_allclose(got, ref_g, rtol=rtol, atol=atol * scale, err_msg=f"gradient of input {i}")


# =========================================================================== elementwise

UNARY = {
    "exp": (lambda x: x.exp(), torch.exp, FLOATS),
    "log": (lambda x: x.log(), torch.log, POSITIVE),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, POSITIVE),
    "relu": (lambda x: x.relu(), torch.relu, st.one_of(FLOATS, TIES)),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, st.floats(-40, 40)),
    "tanh": (lambda x: x.tanh(), torch.tanh, st.floats(-10, 10)),
    "abs": (lambda x: x.abs(), torch.abs, st.one_of(FLOATS, TIES)),
    "neg": (lambda x: -x, torch.neg, FLOATS),
    # torch's softplus returns x itself above threshold=20; raise it so both are exact there
    "softplus": (F.softplus, lambda t: TF.softplus(t, threshold=100), st.floats(-30, 30)),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), seed=SEEDS)
def test_unary(name, data, seed):
    tg_fn, torch_fn, elements = UNARY[name]
    x = data.draw(arrays(shapes(), elements))
    compare(tg_fn, torch_fn, [x], seed)


def test_relu_and_abs_at_exactly_zero():
    for tg_fn, torch_fn in [(F.relu, torch.relu), (F.abs, torch.abs)]:
        compare(tg_fn, torch_fn, [np.array([0.0, -0.0, 1.0, -1.0])], 0)
    x = tg.Tensor(np.zeros(3), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)


@pytest.mark.parametrize("p", [0, 1, 2, 3, -1, 0.5, -0.5, 1.5, 2.5, -2])
@given(data=st.data(), seed=SEEDS)
def test_pow(p, data, seed):
    integer = float(p).is_integer() and p != 0
    elements = AWAY_FROM_ZERO if integer else POSITIVE
    x = data.draw(arrays(shapes(), elements))
    compare(lambda t: t**p, lambda t: t**p, [x], seed)


BINARY = {
    "add": (lambda a, b: a + b, torch.add),
    "sub": (lambda a, b: a - b, torch.sub),
    "mul": (lambda a, b: a * b, torch.mul),
    "div": (lambda a, b: a / b, torch.div),
    "maximum": (F.maximum, torch.maximum),
    "minimum": (F.minimum, torch.minimum),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), seed=SEEDS)
def test_binary_broadcasting(name, data, seed):
    tg_fn, torch_fn = BINARY[name]
    sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    ties = name in ("maximum", "minimum") and data.draw(st.booleans())
    a = data.draw(arrays(sa, TIES if ties else FLOATS))
    b = data.draw(arrays(sb, TIES if ties else (AWAY_FROM_ZERO if name == "div" else FLOATS)))
    compare(tg_fn, torch_fn, [a, b], seed)


def test_maximum_minimum_split_ties_like_torch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    compare(F.maximum, torch.maximum, [a, b], 1)
    compare(F.minimum, torch.minimum, [a, b], 2)
    x, y = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    F.maximum(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(y.grad, [0.5, 0.0, 0.5])


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@given(data=st.data(), seed=SEEDS, c=AWAY_FROM_ZERO, left=st.booleans())
def test_python_scalar_operand(name, data, seed, c, left):
    tg_fn, torch_fn = BINARY[name]
    x = data.draw(arrays(shapes(), AWAY_FROM_ZERO))
    if left:
        compare(lambda t: tg_fn(c, t), lambda t: torch_fn(torch.tensor(c, dtype=torch.float64), t), [x], seed)
    else:
        compare(lambda t: tg_fn(t, c), lambda t: torch_fn(t, c), [x], seed)


@given(data=st.data(), seed=SEEDS, lo=st.one_of(st.none(), TIES), hi=st.one_of(st.none(), TIES))
def test_clip_like_clamp(data, seed, lo, hi):
    assume(lo is not None or hi is not None)
    assume(lo is None or hi is None or lo <= hi)
    x = data.draw(arrays(shapes(), st.one_of(TIES, FLOATS)))  # values exactly at the bounds included
    compare(lambda t: t.clip(lo, hi), lambda t: torch.clamp(t, lo, hi), [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_where(data, seed):
    shapes3 = hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3)
    sc, sa, sb = data.draw(shapes3).input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc))
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    compare(lambda x, y: tg.where(cond, x, y), lambda x, y: torch.where(torch.from_numpy(cond), x, y), [a, b], seed)


# =========================================================================== reductions


@pytest.mark.parametrize("name", ["sum", "mean", "var"])
@given(data=st.data(), seed=SEEDS, keepdims=st.booleans())
def test_sum_mean_var(name, data, seed, keepdims):
    x = data.draw(arrays(shapes(min_dims=1)))
    axis = data.draw(axes_for(x.ndim))
    dims = norm_axes(axis, x.ndim)
    if name == "var":
        compare(
            lambda t: t.var(axis, unbiased=False, keepdims=keepdims),
            lambda t: torch.var(t, dim=dims, unbiased=False, keepdim=keepdims),
            [x],
            seed,
        )
    else:
        compare(
            lambda t: getattr(t, name)(axis, keepdims=keepdims),
            lambda t: getattr(torch, name)(t, dim=dims, keepdim=keepdims),
            [x],
            seed,
        )


@given(data=st.data(), seed=SEEDS, keepdims=st.booleans())
def test_var_with_ddof_1(data, seed, keepdims):
    x = data.draw(arrays(shapes(min_dims=1)))
    axis = data.draw(axes_for(x.ndim))
    dims = norm_axes(axis, x.ndim)
    assume(int(np.prod([x.shape[d] for d in dims])) > 1)
    compare(lambda t: t.var(axis, keepdim=keepdims), lambda t: torch.var(t, dim=dims, keepdim=keepdims), [x], seed)


@pytest.mark.parametrize("name", ["amax", "amin"])
@given(data=st.data(), seed=SEEDS, keepdims=st.booleans())
def test_amax_amin(name, data, seed, keepdims):
    x = data.draw(arrays(shapes(min_dims=1), st.sampled_from([-1.0, 0.0, 2.0, 2.5]) | st.floats(-100, 100)))
    axis = data.draw(axes_for(x.ndim))
    dims = norm_axes(axis, x.ndim)
    torch_fn = getattr(torch, name)  # ties share the gradient evenly, in both
    compare(
        lambda t: getattr(t, name)(axis, keepdims=keepdims),
        lambda t: torch_fn(t, dim=dims, keepdim=keepdims),
        [x],
        seed,
    )


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data(), seed=SEEDS, keepdim=st.booleans())
def test_max_min_over_a_dim_with_ties(name, data, seed, keepdim):
    """max(dim)/min(dim): values, the index of the first extreme, and its gradient, as PyTorch's."""
    x = data.draw(arrays(shapes(min_dims=1), st.sampled_from([-1.0, 0.0, 2.0])))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    compare(lambda t: getattr(t, name)(dim, keepdim).values, lambda t: getattr(t, name)(dim, keepdim).values, [x], seed)
    got = getattr(tg.Tensor(x), name)(dim, keepdim).indices
    want = getattr(torch.from_numpy(x), name)(dim, keepdim).indices
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data(), seed=SEEDS)
def test_max_min_of_everything_with_ties(name, data, seed):
    x = data.draw(arrays(shapes(min_dims=0), st.sampled_from([-1.0, 0.0, 2.0])))
    compare(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], seed)


def test_sum_of_0d_tensor():
    compare(lambda t: t.sum(), torch.sum, [np.array(1.5)], 0)
    compare(lambda t: t.mean(), torch.mean, [np.array(1.5)], 0)


# =========================================================================== shape ops


@given(data=st.data(), seed=SEEDS)
def test_reshape(data, seed):
    x = data.draw(arrays(shapes()))
    dims = list(data.draw(st.permutations(x.shape))) + [1] * data.draw(st.integers(0, 2))
    dims = data.draw(st.permutations(dims))
    if dims and data.draw(st.booleans()):
        dims[data.draw(st.integers(0, len(dims) - 1))] = -1
    compare(lambda t: t.reshape(dims), lambda t: t.reshape(dims), [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_permute_and_transpose(data, seed):
    x = data.draw(arrays(shapes()))
    perm = tuple(data.draw(st.permutations(range(x.ndim))))
    compare(lambda t: t.permute(perm), lambda t: t.permute(perm), [x], seed)
    compare(lambda t: t.T, lambda t: t.permute(tuple(reversed(range(t.ndim)))), [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_flatten(data, seed):
    x = data.draw(arrays(shapes(min_dims=1)))
    start = data.draw(st.integers(0, x.ndim - 1))
    end = data.draw(st.integers(start, x.ndim - 1))
    start = start - x.ndim if data.draw(st.booleans()) else start
    compare(lambda t: t.flatten(start, end), lambda t: torch.flatten(t, start, end), [x], seed)


@st.composite
def basic_index(draw, shape):
    items = []
    for n in shape[: draw(st.integers(0, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full", "newaxis"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
            stop = draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
            items.append(slice(start, stop, draw(st.one_of(st.none(), st.integers(1, 3)))))
        elif kind == "full":
            items.append(slice(None))
        else:
            items.extend([None, slice(None)])
    return tuple(items)


def torch_index(index):
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    if isinstance(index, tuple):
        return tuple(torch_index(i) for i in index)
    return index


@given(data=st.data(), seed=SEEDS)
def test_getitem_basic(data, seed):
    x = data.draw(arrays(shapes(min_dims=1)))
    index = data.draw(basic_index(x.shape))
    compare(lambda t: t[index], lambda t: t[index], [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_getitem_integer_array_with_repeats(data, seed):
    x = data.draw(arrays(shapes(min_dims=1)))
    axis = data.draw(st.integers(0, x.ndim - 1))
    n = x.shape[axis]
    idx = data.draw(
        hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5), elements=st.integers(-n, n - 1))
    )
    index = (slice(None),) * axis + (idx,)
    compare(lambda t: t[index], lambda t: t[torch_index(index)], [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_getitem_two_integer_arrays(data, seed):
    x = data.draw(arrays(shapes(min_dims=2)))
    i = data.draw(hnp.arrays(np.int64, 4, elements=st.integers(0, x.shape[0] - 1)))
    j = data.draw(hnp.arrays(np.int64, 4, elements=st.integers(0, x.shape[1] - 1)))
    compare(lambda t: t[i, j], lambda t: t[torch.from_numpy(i), torch.from_numpy(j)], [x], seed)


@given(data=st.data(), seed=SEEDS)
def test_getitem_boolean_mask(data, seed):
    x = data.draw(arrays(shapes(min_dims=1)))
    k = data.draw(st.integers(1, x.ndim))
    mask = data.draw(hnp.arrays(np.bool_, x.shape[:k]))
    compare(lambda t: t[mask], lambda t: t[torch.from_numpy(mask)], [x], seed)


@given(data=st.data(), seed=SEEDS, value=st.sampled_from([0.0, -1.5, 2.0]))
def test_pad(data, seed, value):
    x = data.draw(arrays(shapes(min_dims=1)))
    widths = [tuple(data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))) for _ in range(x.ndim)]
    flat = [w for pair in reversed(widths) for w in pair]  # torch: last axis first, (before, after)
    compare(lambda t: t.pad(widths, value), lambda t: TF.pad(t, flat, value=value), [x], seed)


@pytest.mark.parametrize("how", ["concatenate", "stack"])
@given(data=st.data(), seed=SEEDS)
def test_concatenate_and_stack(how, data, seed):
    base = data.draw(shapes(min_dims=1))
    count = data.draw(st.integers(1, 3))
    if how == "concatenate":
        axis = data.draw(st.integers(-len(base), len(base) - 1))
        ax = axis % len(base)
        shps = [base[:ax] + (data.draw(st.integers(1, 3)),) + base[ax + 1 :] for _ in range(count)]
        tg_fn, torch_fn = tg.concatenate, torch.cat
    else:
        axis = data.draw(st.integers(-len(base) - 1, len(base)))
        shps = [base] * count
        tg_fn, torch_fn = tg.stack, torch.stack
    xs = [data.draw(arrays(s)) for s in shps]
    compare(lambda *ts: tg_fn(list(ts), axis=axis), lambda *ts: torch_fn(list(ts), dim=axis), xs, seed)


# =========================================================================== linear algebra


@st.composite
def matmul_shapes(draw):
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kinds = ["1d@2d", "2d@1d", "2d@2d", "batched", "batched@1d", "1d@batched", "batched@2d"]
    kind = draw(st.sampled_from(kinds))
    batches = hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
    batch_a, batch_b = draw(batches).input_shapes
    return {
        "1d@2d": ((k,), (k, m)),
        "2d@1d": ((n, k), (k,)),
        "2d@2d": ((n, k), (k, m)),
        "batched": (batch_a + (n, k), batch_b + (k, m)),
        "batched@1d": (batch_a + (n, k), (k,)),
        "1d@batched": ((k,), batch_b + (k, m)),
        "batched@2d": (batch_a + (n, k), (k, m)),
    }[kind]


@given(data=st.data(), seed=SEEDS)
def test_matmul(data, seed):
    sa, sb = data.draw(matmul_shapes())
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    compare(lambda x, y: x @ y, torch.matmul, [a, b], seed)


@pytest.mark.parametrize("k", [1, 3])
def test_matmul_1d_1d(k):
    rng = np.random.default_rng(k)
    compare(lambda x, y: x @ y, torch.matmul, [rng.standard_normal(k), rng.standard_normal(k)], k)


@given(data=st.data(), seed=SEEDS, bias=st.booleans())
def test_linear(data, seed, bias):
    lead = data.draw(shapes(min_dims=0, max_dims=2))
    fin, fout = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    inputs = [data.draw(arrays(lead + (fin,))), data.draw(arrays((fout, fin)))]
    if bias:
        inputs.append(data.draw(arrays((fout,))))
    compare(F.linear, TF.linear, inputs, seed)


# =========================================================================== convolution and pooling


@st.composite
def window_setup(draw, pool=False):
    """(image shape, kernel, stride, padding, dilation) with a valid output size."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if pool:
        p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    else:
        p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    hw = []
    for i in range(2):
        span = d[i] * (k[i] - 1) + 1
        hw.append(draw(st.integers(max(1, span - 2 * p[i]), max(1, span - 2 * p[i]) + 4)))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (n, c, hw[0], hw[1]), k, s, p, d


@given(data=st.data(), seed=SEEDS, bias=st.booleans())
def test_conv2d(data, seed, bias):
    x_shape, k, s, p, d = data.draw(window_setup())
    c_out = data.draw(st.integers(1, 3))
    inputs = [data.draw(arrays(x_shape)), data.draw(arrays((c_out, x_shape[1]) + k))]
    if bias:
        inputs.append(data.draw(arrays((c_out,))))

    def ours(x, w, b=None):
        return F.conv2d(x, w, b, stride=s, padding=p, dilation=d)

    def theirs(x, w, b=None):
        return TF.conv2d(x, w, b, stride=s, padding=p, dilation=d)

    compare(ours, theirs, inputs, seed)


def windows_all_see_input(x_shape, k, s, p, d):
    """True when no pooling window lies entirely in the padding (torch's max_pool2d aborts the
    process on such windows, so they are left out)."""
    for size, kk, ss, pp, dd in zip(x_shape[2:], k, s, p, d, strict=True):
        out = (size + 2 * pp - dd * (kk - 1) - 1) // ss + 1
        for i in range(out):
            if not any(0 <= i * ss - pp + j * dd < size for j in range(kk)):
                return False
    return True


@given(data=st.data(), seed=SEEDS, default_stride=st.booleans(), values=st.sampled_from(["floats", "ties", "zeros"]))
def test_max_pool2d_with_ties(data, seed, default_stride, values):
    # torch's CPU max_pool2d sends the gradient to the first maximum of each window (row-major),
    # as ours does, so ties are compared too: flat MNIST-like backgrounds and constant inputs.
    x_shape, k, s, p, d = data.draw(window_setup(pool=True))
    stride = None if default_stride else s
    assume(windows_all_see_input(x_shape, k, k if default_stride else s, p, d))
    if values == "zeros":
        x = (
            np.full(x_shape, data.draw(st.sampled_from([0.0, 1.0, -2.0])))
            if data.draw(st.booleans())
            else data.draw(arrays(x_shape, ZERO_HEAVY))
        )
    else:
        x = data.draw(arrays(x_shape, TIES if values == "ties" else FLOATS))
    compare(lambda t: F.max_pool2d(t, k, stride, p, d), lambda t: TF.max_pool2d(t, k, stride, p, d), [x], seed)


def test_max_pool2d_constant_input():
    x = np.zeros((1, 2, 4, 4))
    compare(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), [x], 0)
    t = tg.Tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    assert t.grad.sum() == 8 and t.grad[0, 0, 0, 0] == 1 and t.grad[0, 0, 1, 1] == 0


@given(data=st.data(), seed=SEEDS, default_stride=st.booleans())
def test_avg_pool2d(data, seed, default_stride):
    x_shape, k, s, p, _ = data.draw(window_setup(pool=True))
    stride = None if default_stride else s
    assume(all(x_shape[2 + i] + 2 * p[i] >= k[i] for i in range(2)))
    x = data.draw(arrays(x_shape))
    compare(lambda t: F.avg_pool2d(t, k, stride, p), lambda t: TF.avg_pool2d(t, k, stride, p), [x], seed)


# =========================================================================== softmax family and losses


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@given(data=st.data(), seed=SEEDS)
def test_softmax_family(name, data, seed):
    x = data.draw(arrays(shapes(min_dims=1), st.one_of(FLOATS, st.floats(-50, 50))))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    compare(lambda t: getattr(t, name)(axis), lambda t: getattr(TF, name)(t, dim=axis), [x], seed)


@given(data=st.data(), seed=SEEDS, keepdims=st.booleans())
def test_logsumexp(data, seed, keepdims):
    x = data.draw(arrays(shapes(min_dims=1), st.one_of(FLOATS, st.floats(-50, 50))))
    axis = data.draw(axes_for(x.ndim))
    dims = norm_axes(axis, x.ndim)
    compare(lambda t: t.logsumexp(axis, keepdims), lambda t: torch.logsumexp(t, dim=dims, keepdim=keepdims), [x], seed)


def test_log_softmax_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-500.0, -500.0, -499.0]])
    compare(F.log_softmax, lambda t: TF.log_softmax(t, dim=-1), [x], 0)
    compare(lambda t: F.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1), [x], 0)


REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


@st.composite
def class_problem(draw):
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    scores = draw(arrays((n, c), st.one_of(FLOATS, st.floats(-30, 30))))
    target = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
    return scores, target


@given(problem=class_problem(), seed=SEEDS, reduction=REDUCTIONS)
def test_cross_entropy(problem, seed, reduction):
    scores, target = problem
    compare(
        lambda t: F.cross_entropy(t, target, reduction=reduction),
        lambda t: TF.cross_entropy(t, torch.from_numpy(target), reduction=reduction),
        [scores],
        seed,
    )


@given(problem=class_problem(), seed=SEEDS, reduction=REDUCTIONS)
def test_nll_loss(problem, seed, reduction):
    scores, target = problem
    compare(
        lambda t: F.nll_loss(t, target, reduction=reduction),
        lambda t: TF.nll_loss(t, torch.from_numpy(target), reduction=reduction),
        [scores],
        seed,
    )


@given(data=st.data(), seed=SEEDS, reduction=REDUCTIONS)
def test_mse_loss(data, seed, reduction):
    shape = data.draw(shapes())
    a, b = data.draw(arrays(shape)), data.draw(arrays(shape))
    compare(
        lambda x, y: F.mse_loss(x, y, reduction=reduction),
        lambda x, y: TF.mse_loss(x, y, reduction=reduction),
        [a, b],
        seed,
    )


@given(data=st.data(), seed=SEEDS, reduction=REDUCTIONS)
def test_binary_cross_entropy(data, seed, reduction):
    shape = data.draw(shapes())
    p = data.draw(arrays(shape, st.floats(0.02, 0.98)))
    t = data.draw(arrays(shape, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1))))
    compare(
        lambda x: F.binary_cross_entropy(x, t, reduction=reduction),
        lambda x: TF.binary_cross_entropy(x, torch.from_numpy(t.copy()), reduction=reduction),
        [p],
        seed,
    )


def test_binary_cross_entropy_at_0_and_1_forward():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.3])
    compare(
        lambda x: F.binary_cross_entropy(x, t, reduction="none"),
        lambda x: TF.binary_cross_entropy(x, torch.from_numpy(t.copy()), reduction="none"),
        [p],
        0,
        grads=False,
    )


def test_binary_cross_entropy_gradient_at_0_and_1_is_finite():
    p = np.array([0.0, 1.0, 0.5])
    t = np.array([0.0, 1.0, 0.3])  # target == p at the ends: torch's gradient there is exactly 0
    x = tg.Tensor(p, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        F.binary_cross_entropy(x, t, reduction="sum").backward()
    assert np.isfinite(x.grad).all()
    # The clamped term contributes nothing and the other term its exact derivative, so the ends
    # get -t/p + (1-t)/(1-p) without the clamped part: 1 at p=0 and -1 at p=1. PyTorch's formula
    # (p - t) / max(p(1-p), 1e-12) gives 0 there instead (documented in docs/pytorch.md).
    np.testing.assert_allclose(x.grad, [1.0, -1.0, -0.3 / 0.5 + 0.7 / 0.5])
    compare(
        lambda x: F.binary_cross_entropy(x, t[2:], reduction="sum"),
        lambda x: TF.binary_cross_entropy(x, torch.from_numpy(t[2:].copy()), reduction="sum"),
        [p[2:]],
        0,
    )


@given(data=st.data(), seed=SEEDS, reduction=REDUCTIONS)
def test_binary_cross_entropy_with_logits(data, seed, reduction):
    shape = data.draw(shapes())
    z = data.draw(arrays(shape, st.one_of(st.just(0.0), FLOATS, st.floats(-60, 60))))
    t = data.draw(arrays(shape, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1))))
    compare(
        lambda x: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        lambda x: TF.binary_cross_entropy_with_logits(x, torch.from_numpy(t.copy()), reduction=reduction),
        [z],
        seed,
    )


def test_binary_cross_entropy_with_logits_at_exactly_zero():
    z = np.zeros(4)
    t = np.array([0.0, 1.0, 0.5, 0.25])
    compare(
        lambda x: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
        lambda x: TF.binary_cross_entropy_with_logits(x, torch.from_numpy(t.copy()), reduction="none"),
        [z],
        0,
    )


# =========================================================================== a float32 LeNet


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lenet_float32_matches_torch(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((4, 1, 28, 28)).astype(np.float32)
    x[x < 0.5] = 0.0  # MNIST-like: lots of exact zeros
    labels = rng.integers(0, 10, size=4)
    shapes_ = {"w1": (4, 1, 5, 5), "b1": (4,), "w2": (8, 4, 5, 5), "b2": (8,), "w3": (10, 8 * 4 * 4), "b3": (10,)}
    init = {
        k: (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 10)).astype(np.float32)
        for k, s in shapes_.items()
    }

    def net(f, conv, pool, lin, relu, xs, p):
        h = pool(relu(conv(xs, p["w1"], p["b1"])), 2)
        h = pool(relu(conv(h, p["w2"], p["b2"])), 2)
        return lin(h.reshape(h.shape[0], -1), p["w3"], p["b3"])

    ours = {k: tg.Tensor(v.copy(), requires_grad=True) for k, v in init.items()}
    logits = net(F, F.conv2d, F.max_pool2d, F.linear, F.relu, tg.Tensor(x), ours)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    t_logits = net(TF, TF.conv2d, TF.max_pool2d, TF.linear, torch.relu, torch.from_numpy(x), theirs)
    t_loss = TF.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()

    assert loss.dtype == np.float32 and logits.dtype == np.float32
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-5)
    for k in init:
        got, want = ours[k].grad, theirs[k].grad.numpy()
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(want).max()), err_msg=k)
