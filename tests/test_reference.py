"""Forward passes against plain-loop reference implementations written here, one output element
at a time, with no vectorisation tricks to share bugs with: conv2d, the pools, the softmax family
(huge logits included) and matmul."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing.strategies import (
    arrays,
    broadcastable_shapes,
    conv2d_configs,
    pool2d_configs,
    shapes,
)

# --------------------------------------------------------------------------- references


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d_ref(x, w, b, stride, padding, dilation):
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    out = np.zeros((n, c_out, oh, ow))
    for b_ in range(n):
        for o in range(c_out):
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if b is None else float(b[o])
                    for c in range(c_in):
                        for p in range(kh):
                            for q in range(kw):
                                r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
                                if 0 <= r < h and 0 <= s < wd:  # zero padding contributes nothing
                                    acc += x[b_, c, r, s] * w[o, c, p, q]
                    out[b_, o, i, j] = acc
    return out


def pool_windows_ref(x, kernel, stride, padding, dilation):
    """Yield (n, c, i, j, real values in the window) for every output position."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    values = []
                    for p in range(kh):
                        for q in range(kw):
                            r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
                            if 0 <= r < h and 0 <= s < w:
                                values.append(float(x[b, ch, r, s]))
                    yield b, ch, i, j, values, (oh, ow)


def max_pool2d_ref(x, kernel, stride, padding, dilation):
    out = None
    for b, ch, i, j, values, (oh, ow) in pool_windows_ref(x, kernel, stride, padding, dilation):
        if out is None:
            out = np.empty((x.shape[0], x.shape[1], oh, ow))
        out[b, ch, i, j] = max(values) if values else -math.inf  # padding is -inf
    return out


def avg_pool2d_ref(x, kernel, stride, padding):
    out = None
    for b, ch, i, j, values, (oh, ow) in pool_windows_ref(x, kernel, stride, padding, (1, 1)):
        if out is None:
            out = np.empty((x.shape[0], x.shape[1], oh, ow))
        out[b, ch, i, j] = math.fsum(values) / (kernel[0] * kernel[1])  # padding counts as zeros
    return out


def rows_along(x: np.ndarray, axes: tuple[int, ...]):
    """x with ``axes`` moved last and flattened: (other elements, reduced elements)."""
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes))
    return moved.reshape(-1, math.prod(x.shape[a] for a in axes)), kept


def logsumexp_row(row) -> float:
    m = max(row)
    if math.isinf(m):
        return m
    return m + math.log(math.fsum(math.exp(v - m) for v in row))


def logsumexp_ref(x, axis, keepdims):
    axes = tuple(range(x.ndim)) if axis is None else tuple(sorted(a % x.ndim for a in np.atleast_1d(axis)))
    rows, kept = rows_along(x, axes)
    out = np.array([logsumexp_row([float(v) for v in row]) for row in rows])
    out = out.reshape([x.shape[a] for a in kept])
    if keepdims:
        out = out.reshape([1 if a in axes else n for a, n in enumerate(x.shape)])
    return out


def log_softmax_ref(x, axis):
    axis = axis % x.ndim
    rows, kept = rows_along(x, (axis,))
    out = np.array([[float(v) - logsumexp_row([float(u) for u in row]) for v in row] for row in rows])
    moved_shape = [x.shape[a] for a in kept] + [x.shape[axis]]
    return np.moveaxis(out.reshape(moved_shape), -1, axis)


def softmax_ref(x, axis):
    axis = axis % x.ndim
    rows, kept = rows_along(x, (axis,))
    out = []
    for row in rows:
        m = max(float(v) for v in row)
        e = [math.exp(float(v) - m) for v in row]
        total = math.fsum(e)
        out.append([v / total for v in e])
    moved_shape = [x.shape[a] for a in kept] + [x.shape[axis]]
    return np.moveaxis(np.array(out).reshape(moved_shape), -1, axis)


# --------------------------------------------------------------------------- convolution and pooling


@given(cfg=conv2d_configs(max_side=6), data=st.data())
def test_conv2d_matches_reference(cfg, data):
    x = data.draw(arrays(cfg.input_shape))
    w = data.draw(arrays(cfg.weight_shape))
    b = data.draw(arrays((cfg.weight_shape[0],))) if cfg.bias else None
    bias = None if b is None else Tensor(b)
    got = F.conv2d(Tensor(x), Tensor(w), bias, cfg.stride, cfg.padding, cfg.dilation)
    assert got.shape == cfg.output_shape
    np.testing.assert_allclose(
        got.data, conv2d_ref(x, w, b, cfg.stride, cfg.padding, cfg.dilation), rtol=1e-12, atol=1e-12
    )


@given(cfg=conv2d_configs(max_side=5), data=st.data())
def test_conv2d_int_arguments_and_float32(cfg, data):
    """Scalar stride/padding/dilation mean the same on both axes; float32 stays float32."""
    x = data.draw(arrays(cfg.input_shape, dtype=np.float32))
    w = data.draw(arrays(cfg.weight_shape, dtype=np.float32))
    s, p, d = cfg.stride[0], cfg.padding[0], cfg.dilation[0]
    h, wd = cfg.input_shape[2:]
    kh, kw = cfg.weight_shape[2:]
    if d * (kh - 1) + 1 > h + 2 * p or d * (kw - 1) + 1 > wd + 2 * p:
        return  # the height's settings do not fit the width
    got = F.conv2d(Tensor(x), Tensor(w), stride=s, padding=p, dilation=d)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.data, conv2d_ref(x, w, None, (s, s), (p, p), (d, d)), rtol=1e-5, atol=1e-5)


@given(cfg=pool2d_configs(max_side=6), data=st.data())
def test_max_pool2d_matches_reference(cfg, data):
    x = data.draw(arrays(cfg.input_shape))
    got = F.max_pool2d(Tensor(x), cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation)
    np.testing.assert_array_equal(got.data, max_pool2d_ref(x, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation))


@given(cfg=pool2d_configs(max_side=6, max_dilation=1), data=st.data())
def test_avg_pool2d_matches_reference(cfg, data):
    x = data.draw(arrays(cfg.input_shape))
    got = F.avg_pool2d(Tensor(x), cfg.kernel_size, cfg.stride, cfg.padding)
    np.testing.assert_allclose(
        got.data, avg_pool2d_ref(x, cfg.kernel_size, cfg.stride, cfg.padding), rtol=1e-12, atol=1e-12
    )


def test_pool_default_stride_is_the_kernel():
    x = np.arange(2 * 3 * 7 * 6, dtype=np.float64).reshape(2, 3, 7, 6) % 11
    np.testing.assert_array_equal(
        F.max_pool2d(Tensor(x), (3, 2)).data, max_pool2d_ref(x, (3, 2), (3, 2), (0, 0), (1, 1))
    )
    np.testing.assert_allclose(F.avg_pool2d(Tensor(x), 2).data, avg_pool2d_ref(x, (2, 2), (2, 2), (0, 0)))


# --------------------------------------------------------------------------- softmax family


def axis_of(ndim: int) -> st.SearchStrategy[int]:
    return st.integers(-ndim, ndim - 1)


LOGITS = dict(min_value=-1000.0, max_value=1000.0)


@given(shape=shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_log_softmax_and_softmax_match_reference(shape, data):
    x = data.draw(arrays(shape, **data.draw(st.sampled_from([{}, LOGITS]))))
    axis = data.draw(axis_of(len(shape)))
    ls = F.log_softmax(Tensor(x), axis)
    sm = F.softmax(Tensor(x), axis)
    assert np.isfinite(ls.data).all() and np.isfinite(sm.data).all()
    np.testing.assert_allclose(ls.data, log_softmax_ref(x, axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sm.data, softmax_ref(x, axis), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sm.data.sum(axis=axis), 1.0, rtol=1e-12)


@given(shape=shapes(max_dims=3, max_side=4), data=st.data(), keepdims=st.booleans())
def test_logsumexp_matches_reference(shape, data, keepdims):
    x = data.draw(arrays(shape, **data.draw(st.sampled_from([{}, LOGITS]))))
    n = len(shape)
    axis = data.draw(
        st.one_of(
            st.none(),
            axis_of(n) if n else st.nothing(),
            st.lists(st.integers(0, max(n - 1, 0)), unique=True, max_size=n).map(tuple),
        )
    )
    got = F.logsumexp(Tensor(x), axis, keepdims)
    want = logsumexp_ref(x, axis, keepdims)
    assert got.shape == want.shape == np.sum(x, axis=axis, keepdims=keepdims).shape
    np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_logits(dtype):
    x = Tensor(np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0], [-1000.0, -1000.0, -999.0]], dtype=dtype))
    ls, sm, lse = x.log_softmax(axis=1), x.softmax(axis=1), x.logsumexp(axis=1)
    for out in (ls, sm, lse):
        assert out.dtype == dtype and np.isfinite(out.data).all()
    log3 = math.log(3.0)
    tail = math.log1p(2 * math.exp(-1.0))  # log(e^-1 + e^-1 + e^0)
    np.testing.assert_allclose(
        ls.data, [[0.0, -1000.0, -2000.0], [-log3] * 3, [-1 - tail, -1 - tail, -tail]], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(sm.data[0], [1.0, 0.0, 0.0], atol=1e-30)
    np.testing.assert_allclose(sm.data[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(lse.data, [1000.0, 1000.0 + log3, -999.0 + tail], rtol=1e-6)


def test_logsumexp_of_infinities():
    x = Tensor(np.array([[-np.inf, -np.inf], [np.inf, 0.0], [-np.inf, 2.0]]))
    np.testing.assert_array_equal(x.logsumexp(axis=1).data, [-np.inf, np.inf, 2.0])


# --------------------------------------------------------------------------- matmul


# Core bug: matmul of two 1-D tensors returns shape (1,) instead of () (np.matmul gives a 0-d
# result): functional.matmul removes the promoted column axis first and then drops axis -2 of the
# already reduced (1,) result instead of its last axis.


@st.composite
def matmul_operands(draw, vector_dot: bool = True):
    """1-D x 1-D, 1-D x N-D, N-D x 1-D and batched matrices with broadcast batch axes."""
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=3, max_side=3))
    a = draw(st.sampled_from([(k,), batch_a + (n, k)]))
    b = draw(st.sampled_from([(k,), batch_b + (k, m)] if vector_dot or len(a) > 1 else [batch_b + (k, m)]))
    return draw(arrays(a)), draw(arrays(b))


@given(a=arrays(st.integers(1, 5).map(lambda k: (k,))), data=st.data())
def test_matmul_vector_dot(a, data):
    b = data.draw(arrays(a.shape))
    got = Tensor(a) @ Tensor(b)
    assert got.shape == ()
    np.testing.assert_allclose(got.data, np.dot(a, b), rtol=1e-12, atol=1e-12)


@given(operands=matmul_operands())
def test_matmul_matches_numpy(operands):
    a, b = operands
    want = np.matmul(a, b)
    for got in (Tensor(a) @ Tensor(b), F.matmul(Tensor(a), Tensor(b)), Tensor(a) @ b, a @ Tensor(b)):
        assert isinstance(got, Tensor)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (5, 3, 2)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 5))],
)
def test_matmul_shapes_like_numpy(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    got = Tensor(a) @ Tensor(b)
    assert got.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(got.data, np.matmul(a, b), rtol=1e-12)
