"""The speed-only paths inside primitives compute exactly what the plain paths compute.

Some primitives pick a faster NumPy formulation by shape or memory layout (see
docs/performance.md). The property tests elsewhere draw small arrays, which mostly take the plain
path; here every fast path is forced on arrays that take it, and compared with a plain NumPy
computation of the same thing.
"""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, kernels
from tinygrad_cnn import primitives as P
from tinygrad_cnn.testing import gradcheck


@given(
    rows=st.integers(1, 5000),
    width=st.sampled_from([1, 3, 16, 100, 256]),
    dtype=st.sampled_from([np.float32, np.float64]),
    keepdims=st.booleans(),
)
@settings(max_examples=30, deadline=None)
def test_sum_over_many_short_rows(rows, width, dtype, keepdims):
    """A bias gradient's shape: (M, T) summed over M, with a remainder of rows after the blocks."""
    x = np.random.default_rng(rows).standard_normal((rows, width)).astype(dtype)
    got = F.sum(Tensor(x), axis=0, keepdims=keepdims).array
    want = x.astype(np.float64).sum(axis=0, keepdims=keepdims)
    assert got.dtype == dtype and got.shape == want.shape
    single = dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5 if single else 1e-12, atol=1e-3 if single else 1e-10)


@given(
    rows=st.integers(1, 5000),
    width=st.sampled_from([1, 3, 16, 100, 256, 300]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_bias_added_to_many_short_rows(rows, width, dtype):
    """A bias added to a GEMM's output in blocks of rows: exactly y + b, remainder rows included."""
    rng = np.random.default_rng(rows)
    y, b = rng.standard_normal((rows, width)).astype(dtype), rng.standard_normal(width).astype(dtype)
    want = y + b
    kernels.add_row(y, b)
    np.testing.assert_array_equal(y, want)
    one = rng.standard_normal(1).astype(dtype)  # a row that broadcasts along it: the plain add
    want = y + one
    kernels.add_row(y, one)
    np.testing.assert_array_equal(y, want)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    ufunc=st.sampled_from([np.add, np.subtract, np.multiply, np.divide]),
    dtypes=st.sampled_from([(np.float32, np.float32), (np.float64, np.float32), (np.float32, np.float64)]),
    threads=st.sampled_from([1, 3]),
)
def test_binary_ops_with_a_short_row_broadcast_equal_numpys(data, ufunc, dtypes, threads):
    """kernels.binary against NumPy's broadcasting, bit for bit: a large array in any memory order
    with a row along any of its axes (innermost in memory: the long-row path), either operand
    first, the row also given as a stride-0 broadcast of the large array's shape."""
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 3, 16, 33, 64]), min_size=3, max_size=4)))
    order = data.draw(st.permutations(range(len(shape))))
    big = np.random.default_rng(len(shape)).uniform(1, 2, [shape[a] for a in order]).astype(dtypes[0])
    big = big.transpose(kernels.inverse(list(order)))
    if data.draw(st.booleans()):  # the row's axes innermost in memory, as a bias's or a batch norm's
        kept = {order[-1]} | ({order[-2]} if shape[order[-1]] * shape[order[-2]] <= 256 else set())
    else:
        kept = data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))
    row_shape = tuple(n if i in kept else 1 for i, n in enumerate(shape))
    row = np.random.default_rng(1).uniform(1, 2, row_shape).astype(dtypes[1])
    if data.draw(st.booleans()):
        row = row.reshape(row_shape[min(kept) :]) if data.draw(st.booleans()) else np.broadcast_to(row, shape)
    a, b = (row, big) if data.draw(st.booleans()) else (big, row)
    with tg.threads.exactly(threads), mock.patch.object(kernels, "LONG_ROW_MIN", 4096):
        got = kernels.binary(ufunc, a, b)
    want = ufunc(a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_binary_op_of_a_batch_inner_conv_output_and_a_channel_row_takes_the_long_row_path(monkeypatch):
    """(N, C, H, W) laid out (H, W, N, C) times a (1, C, 1, 1) row: a batch norm's scale."""
    x = np.random.default_rng(0).standard_normal((16, 16, 32, 16)).astype(np.float32).transpose(2, 3, 0, 1)
    row = np.arange(1, 17, dtype=np.float32).reshape(1, 16, 1, 1)
    calls, with_long_row = [], kernels._with_long_row
    monkeypatch.setattr(
        kernels, "_with_long_row", lambda *args, **kw: calls.append(with_long_row(*args, **kw)) or calls[-1]
    )
    got = kernels.binary(np.multiply, x, row)
    np.testing.assert_array_equal(got, x * row)
    assert calls and calls[0] is not None and kernels.memory_order(got) == kernels.memory_order(x)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2), (0, 1, 2)])
def test_sum_along_repeated_axes_is_a_product_by_their_length(axes, keepdims):
    """A gradient broadcast by np.broadcast_to (stride 0) summed back: the same values as summing it."""
    g = np.broadcast_to(np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1), (7, 5, 3))
    got, want = kernels.sum_axes(g, axes, keepdims), g.sum(axes, keepdims=keepdims)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    dtypes=st.sampled_from(
        [(np.float32,) * 2, (np.float64,) * 2, (np.float32, np.float64), (np.int32,) * 2, (np.int64, np.int32)]
        + [(np.uint32,) * 2, (np.float16,) * 2, (np.bool_,) * 2]
    ),
    select_min=st.sampled_from([1, kernels.SELECT_MIN]),
)
def test_where_by_bits_equals_numpys_where(data, dtypes, select_min):
    """kernels.where against np.where, bit for bit (NaNs, infinities and -0.0 included), with
    cond, a and b broadcasting against each other, 0-d operands and mixed dtypes."""
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 2, 5, 64]), min_size=0, max_size=3)))
    rng = np.random.default_rng(len(shape))

    def operand(dtype: type) -> np.ndarray:
        sub = tuple(n if data.draw(st.booleans()) else 1 for n in shape)[data.draw(st.integers(0, len(shape))) :]
        values = rng.standard_normal(sub) * 100
        if np.dtype(dtype).kind == "f":
            values.reshape(-1)[:3] = [np.nan, -0.0, np.inf][: values.size]
        return values.astype(dtype)

    cond, a, b = operand(np.float64) > 0, operand(dtypes[0]), operand(dtypes[1])
    with mock.patch.object(kernels, "SELECT_MIN", select_min):
        got = kernels.where(cond, a, b)
    want = np.where(cond, a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


def test_sigmoid_is_exact_on_both_sides_of_zero():
    x = np.array([-80, -30, -1, -0.0, 0, 1e-8, 30, 100, np.inf, -np.inf, np.nan], dtype=np.float32)
    y = kernels.sigmoid(x)
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, rtol=2e-7)  # relative: sigmoid(-80) = 1.8e-35 survives
    big = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 10
    np.testing.assert_allclose(kernels.sigmoid(big), 1 / (1 + np.exp(-big.astype(np.float64))), rtol=3e-7)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    keepdims=st.booleans(),
    short_sum_min=st.sampled_from([1, kernels.SHORT_SUM_MIN]),
)
def test_sum_over_a_few_short_axes_as_slices_equals_numpys(data, dtype, keepdims, short_sum_min):
    """Sums of at most SHORT_SUM_TERMS terms per output (a nearest upsampling's or a 2x2 average
    pool's backward) added as slices: NumPy's sums up to rounding, in any layout."""
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 2, 3, 4, 17]), min_size=1, max_size=5)))
    axes = tuple(sorted(data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))))
    order = data.draw(st.permutations(range(len(shape))))
    x = np.random.default_rng(len(shape)).standard_normal([shape[a] for a in order]).astype(dtype)
    x = x.transpose(kernels.inverse(list(order)))
    with mock.patch.object(kernels, "SHORT_SUM_MIN", short_sum_min):
        got = kernels.sum_axes(x, axes, keepdims)
    want = x.astype(np.float64).sum(axes, keepdims=keepdims)
    assert got.dtype == x.dtype and got.shape == want.shape
    # each of up to 16 additions rounds to the dtype: bound the error by the size of the terms
    scale = np.abs(x).astype(np.float64).sum(axes, keepdims=keepdims)
    tolerance = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-14}[dtype]
    assert (np.abs(got.astype(np.float64) - want) <= tolerance * scale + 1e-30).all()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64, np.int64]), keepdims=st.booleans())
def test_sum_over_any_axes_in_any_layout_equals_numpys(data, dtype, keepdims):
    """kernels.sum_axes against a float64 sum: the innermost axes in memory summed by a GEMM with
    ones, a mix of innermost and outermost axes split into two sums, whatever the layout."""
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 3, 8, 40, 130]), min_size=1, max_size=4)))
    assume(math.prod(shape) >= kernels.SHORT_SUM_MIN)
    axes = tuple(data.draw(st.permutations(sorted(data.draw(st.sets(st.sampled_from(range(len(shape))), min_size=1))))))
    order = data.draw(st.permutations(range(len(shape))))
    x = (np.random.default_rng(len(shape)).standard_normal([shape[a] for a in order]) * 100).astype(dtype)
    x = x.transpose(kernels.inverse(list(order)))
    got = kernels.sum_axes(x, axes, keepdims)
    want = x.astype(np.float64).sum(axes, keepdims=keepdims)
    assert got.dtype == x.sum(axes).dtype and got.shape == want.shape
    scale = np.abs(x).astype(np.float64).sum(axes, keepdims=keepdims)
    assert (np.abs(got - want) <= {np.float32: 1e-6, np.float64: 1e-14, np.int64: 0}[dtype] * scale).all()


@pytest.mark.parametrize("rows", [9, 1001, 100_000])
def test_rows_are_summed_by_halves_to_float32_accuracy(rows):
    """Down a long axis 0, NumPy adds row after row: 7.8e-6 relative error over 100,000 rows of
    float32 in [0, 1), which drifted a batch-norm training run off PyTorch's. By halves: ~1e-7."""
    x = np.random.default_rng(rows).uniform(0, 1, (rows, 8)).astype(np.float32)
    want = x.astype(np.float64).sum(axis=0)
    got = kernels._pairwise_sum(x)
    assert got.dtype == np.float32 and got.shape == (8,)
    assert np.abs(got - want).max() <= 4e-7 * want.max()


@settings(max_examples=40, deadline=None)
@given(data=st.data(), value=st.sampled_from([0.0, -np.inf, 2.5]), dtype=st.sampled_from([np.float32, np.int64]))
def test_constant_padding_keeps_the_memory_layout(data, value, dtype):
    """kernels.pad_constant equals np.pad in any layout and is laid out in memory as its input."""
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4)))
    order = data.draw(st.permutations(range(len(shape))))
    x = np.arange(math.prod(shape), dtype=dtype).reshape([shape[a] for a in order]).transpose(kernels.inverse(order))
    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape]
    fill = value if dtype == np.float32 else 7
    got = kernels.pad_constant(x, widths, fill)
    np.testing.assert_array_equal(got, np.pad(x, widths, constant_values=fill))
    assert got.dtype == x.dtype
    if x.size and min(x.shape) > 1:
        assert kernels.memory_order(got) == kernels.memory_order(x)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), threads=st.sampled_from([1, 3]), dtype=st.sampled_from([np.float32, np.float64]))
def test_relu_against_rows_of_zeros_equals_maximum_with_zero(data, threads, dtype):
    """kernels.relu bit for bit as np.maximum(x, 0) (NaN, -0.0 and infinities too), in any memory
    order, laid out like x, on any number of threads, across slab and row remainders."""
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 3, 64, 130]), min_size=1, max_size=3)))
    order = data.draw(st.permutations(range(len(shape))))
    x = np.random.default_rng(len(shape)).standard_normal([shape[a] for a in order]).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, -0.0, np.inf, -np.inf][: x.size]
    x = x.transpose(kernels.inverse(order))
    with (
        tg.threads.exactly(threads),
        mock.patch.object(kernels, "TASK_BYTES", data.draw(st.sampled_from([64, 1 << 19]))),
    ):
        got = kernels.relu(x)
    assert got.tobytes() == np.maximum(x, 0).tobytes()
    assert got.shape == x.shape and got.dtype == x.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [2, 0.5, -0.5, -1, 3, -2, 1, 1.5, 0, -3])
def test_power_by_its_fast_routes_is_within_one_ulp_of_pow(p, dtype):
    """kernels.power's square, sqrt, 1/sqrt, reciprocal and products against np.power: within one
    ulp (two where two roundings are made: pow rounds too), the same NaNs, except that -inf ** +-0.5 is NaN by
    the sqrt route (PyTorch's too; C's pow gives inf and 0), and the same infinities up to the
    sign of 1/sqrt(-0.0) (PyTorch's rsqrt: -inf)."""
    x = np.random.default_rng(0).standard_normal(5000).astype(dtype) * 10
    x[:7] = [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1e-30]
    with np.errstate(all="ignore"):
        got, want = kernels.power(x, p), np.power(x, dtype(p))
    assert got.dtype == x.dtype and not np.shares_memory(got, x)
    nan = np.isnan(want) | ((x == -np.inf) & (abs(p) == 0.5))
    assert (np.isnan(got) == nan).all()
    infinite = np.isinf(want) & ~nan
    assert (np.abs(got[infinite]) == np.inf).all()
    finite = np.isfinite(want) & ~nan
    ulps = np.abs(got[finite].astype(np.float64) - want[finite]) / np.spacing(np.abs(want[finite]).astype(dtype))
    assert ulps.max(initial=0) <= (2.0 if p in (-0.5, -2, 3, -3) else 1.0)  # against pow's own rounding


def test_bias_of_linear_and_conv2d_added_on_the_fast_path():
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((300, 20), (16, 20), (16,)))
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).array, x @ w.T + b, rtol=1e-5, atol=1e-5)
    assert kernels.many_short_rows(x @ w.T, 1)
    img, k = (rng.standard_normal(s).astype(np.float32) for s in ((8, 1, 28, 28), (16, 1, 5, 5)))
    no_bias = F.conv2d(Tensor(img), Tensor(k)).array
    np.testing.assert_array_equal(F.conv2d(Tensor(img), Tensor(k), Tensor(b)).array, no_bias + b[:, None, None])


def test_sum_over_leading_axes_of_an_image_batch():
    x = np.random.default_rng(0).standard_normal((64, 24, 24, 8)).astype(np.float32)
    got = F.sum(Tensor(x), axis=(0, 1, 2)).array
    np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-3)
    assert kernels.many_short_rows(x, 3)  # the case above took the fast path


def _naive_fold(g, x_shape, kernel, stride, dilation):
    """Fold by np.add.at over every window element: slow, obviously right."""
    n, c, h, w = x_shape
    out = np.zeros((n, c, h, w), dtype=g.dtype)
    _, oh, ow, kh, kw, _ = g.shape
    for p in range(kh):
        for q in range(kw):
            rows = p * dilation[0] + stride[0] * np.arange(oh)
            cols = q * dilation[1] + stride[1] * np.arange(ow)
            np.add.at(
                out, (slice(None), slice(None), rows[:, None], cols[None, :]), g[:, :, :, p, q, :].transpose(0, 3, 1, 2)
            )
    return out


@pytest.mark.parametrize("block_bytes", [1, 5000, kernels.FOLD_BLOCK_BYTES])
@pytest.mark.parametrize("channels", [1, 3, 16, 80])
def test_fold_in_blocks_of_images(monkeypatch, block_bytes, channels):
    """Fold copies a few images' window gradients at a time offset-major; any block size agrees."""
    monkeypatch.setattr(kernels, "FOLD_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(channels)
    x_shape, kernel, stride, dilation = (7, channels, 9, 8), (3, 2), (1, 2), (2, 1)
    oh = (9 - 2 * 2 - 1) // 1 + 1
    ow = (8 - 1 * 1 - 1) // 2 + 1
    g = rng.standard_normal((7, oh, ow, 3, 2, channels)).astype(np.float32)
    got = P.Fold.apply(Tensor(g), x_shape, kernel, stride, dilation).array
    np.testing.assert_allclose(got, _naive_fold(g, x_shape, kernel, stride, dilation), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("block_bytes", [1, 3000, kernels.FOLD_BLOCK_BYTES])
@pytest.mark.parametrize(
    "padding,stride,dilation", [((0, 0), (1, 2), (2, 1)), ((2, 1), (2, 1), (1, 2)), ((1, 1), (1, 1), (1, 1))]
)
def test_conv2d_input_gradient_in_bands_of_rows(monkeypatch, block_bytes, padding, stride, dilation):
    """conv2d's plain backward multiplies and folds a band of image rows at a time, one kernel
    offset after another, leaving out the padding; any band height (one row each with
    block_bytes=1) gives the fold of the whole window gradient of the padded image, cropped."""
    monkeypatch.setattr(kernels, "FOLD_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(block_bytes)
    x = Tensor(rng.standard_normal((5, 3, 9, 8)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 2)))
    out = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    window_grad = np.einsum("noij,ocpq->nijpqc", g, w.array)  # (N, OH, OW, kh, kw, C)
    (ph, pw), padded = padding, (5, 3, 9 + 2 * padding[0], 8 + 2 * padding[1])
    want = _naive_fold(window_grad, padded, (3, 2), stride, dilation)[:, :, ph : ph + 9, pw : pw + 8]
    np.testing.assert_allclose(x.grad, want, rtol=1e-12, atol=1e-12)


def test_conv2d_with_one_input_channel_copies_columns_kernel_major():
    """A wide one-channel image takes the column-major im2col copy; forward and gradients stay right."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 1, 6, 30)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 1, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    im2col = kernels.Im2col(x.array, (3, 3), (1, 1), (1, 1))
    assert im2col.block(0, im2col.buffer()).flags.f_contiguous  # the column-major copy
    out = F.conv2d(x, w, b)
    want = np.zeros((2, 3, 4, 28))
    for i in range(4):
        for j in range(28):
            want[:, :, i, j] = np.einsum("nchw,ochw->no", x.array[:, :, i : i + 3, j : j + 3], w.array) + b.array
    np.testing.assert_allclose(out.array, want, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b), x, w, b)


@pytest.mark.parametrize("c", [1, 3, 40])  # the column-major and (40 float64 channels) the row-major im2col copies
@pytest.mark.parametrize("batch_inner", [False, True])  # an NCHW image, or a conv2d output's (H, W, N, C) memory
@pytest.mark.parametrize(
    "padding,stride,dilation", [((1, 1), (1, 1), (1, 1)), ((2, 0), (2, 1), (1, 2)), ((3, 1), (2, 2), (1, 1))]
)
def test_padding_inside_convolution(c, batch_inner, padding, stride, dilation):
    """Convolution pads inside its im2col copy and leaves the padding out of its fold: the same
    output and gradients as the plain convolution of the explicitly padded image (windows that
    read only padding included: padding 3 with a 3x3 kernel)."""
    rng = np.random.default_rng(c)
    image = rng.standard_normal((3, c, 5, 6))
    if batch_inner:
        image = np.ascontiguousarray(image.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    w, b, ph, pw = rng.standard_normal((3, 3, c, 4)), rng.standard_normal(4), *padding
    x = Tensor(image, requires_grad=True)
    x_padded = Tensor(np.pad(image, ((0, 0), (0, 0), (ph, ph), (pw, pw))), requires_grad=True)
    ws = [Tensor(w, requires_grad=True) for _ in range(2)]
    got = P.Convolution.apply(x, ws[0], Tensor(b), stride, dilation, padding)
    want = P.Convolution.apply(x_padded, ws[1], Tensor(b), stride, dilation)
    np.testing.assert_allclose(got.array, want.array, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(got.shape)
    got.backward(g)
    want.backward(g)
    np.testing.assert_allclose(
        x.grad.array, x_padded.grad.array[:, :, ph : ph + 5, pw : pw + 6], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(ws[0].grad.array, ws[1].grad.array, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [2, 40])  # the column-major and the row-major copies (a batch-inner image)
@pytest.mark.parametrize("pixels", [1, 3, 14])  # per block: one output pixel, part of a row, two rows of 7
def test_convolution_in_blocks_of_im2col_rows(monkeypatch, c, pixels):
    """With the im2col matrix cut into blocks (whole rows of output pixels, or pieces of one row),
    conv2d's output and gradients are those of the matrix in one block (which the forward keeps
    for the weight gradient; in blocks, the backward copies them again)."""
    rng = np.random.default_rng(c)
    image = np.ascontiguousarray(rng.standard_normal((7, 7, 3, c)).transpose(2, 3, 0, 1))  # (N, C, H, W), batch-inner
    w, b = rng.standard_normal((4, c, 3, 3)), rng.standard_normal(4)
    results = []
    for budget in (kernels.IM2COL_BLOCK_BYTES, pixels * 3 * 9 * c * 8):  # 3 images, 9*c columns, float64
        monkeypatch.setattr(kernels, "IM2COL_BLOCK_BYTES", budget)
        x, wt, bt = Tensor(image, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        y = F.conv2d(x, wt, bt, padding=1, stride=(1, 1))
        y.backward(np.arange(y.numel(), dtype=np.float64).reshape(y.shape) % 5)
        results.append([y.array, x.grad.array, wt.grad.array, bt.grad.array])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c,c_out", [(0, 2, 3), (0, 40, 3), (2, 2, 0), (0, 2, 0)])
def test_conv2d_backward_of_empty_batches_and_channels(n, c, c_out):
    """Fold's blocks of images and Convolution's reshapes with a zero-size axis."""
    x = Tensor(np.ones((n, c, 5, 5)), requires_grad=True)
    w = Tensor(np.ones((c_out, c, 3, 3)), requires_grad=True)
    b = Tensor(np.ones(c_out), requires_grad=True)
    y = F.conv2d(x, w, b)
    assert y.shape == (n, c_out, 3, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and b.grad.shape == b.shape
    assert not x.grad.any() and not w.grad.any() and np.all(b.grad == n * 9)


@given(
    data=st.data(),
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    order=st.permutations(range(4)),
    nan=st.booleans(),
)
def test_running_max_in_any_memory_order(data, shape, order, nan):
    """Max's running path (one reduced axis at a time, the outermost in memory first) on arrays laid
    out in every axis order, with heavy ties and NaNs: the value of np.max, and the whole gradient
    at the first maximum of each window in row-major order of the reduced axes (a NaN counts as it)."""
    ndim = len(shape)
    perm = [a for a in order if a < ndim]
    axis = tuple(sorted(data.draw(st.sets(st.integers(0, ndim - 1), min_size=1))))
    values = data.draw(
        st.lists(
            st.sampled_from([-np.inf, -1.0, 0.0, 2.0] + [np.nan] * nan),
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        )
    )
    base = np.array(values).reshape([shape[a] for a in perm])
    x = base.transpose(np.argsort(perm))  # shape `shape`, memory in the order `perm`
    kept = [i for i in range(ndim) if i not in axis]
    count = int(np.prod([shape[a] for a in axis]))  # up to 64 (and x not tiny): the running path; more: argmax
    t = Tensor(x, requires_grad=True)
    y = P.Max.apply(t, axis, False)  # the rule itself: the first maximum takes the gradient
    np.testing.assert_array_equal(y.array, np.max(x, axis=axis))
    g_out = np.arange(1.0, y.numel() + 1).reshape(y.shape)
    y.backward(g_out)
    flat = x.transpose(kept + list(axis)).reshape([shape[i] for i in kept] + [count])
    first = np.where(np.isnan(flat).any(-1), np.isnan(flat).argmax(-1), flat.argmax(-1))  # NumPy's argmax: the first
    want = np.zeros(flat.shape)
    np.put_along_axis(want, first[..., None], g_out[..., None], axis=-1)
    want = want.reshape([shape[i] for i in kept] + [shape[a] for a in axis]).transpose(np.argsort(kept + list(axis)))
    np.testing.assert_array_equal(t.grad, want)


def test_conv2d_output_is_laid_out_batch_inner():
    """Convolution's rows run (OH, OW, N): conv2d's NCHW output is a view of (H, W, N, C) memory."""
    rng = np.random.default_rng(0)
    for c in (1, 3, 20):  # the column-major and the row-major im2col copies
        x = Tensor(rng.standard_normal((4, c, 9, 8)).astype(np.float32))
        y = F.conv2d(x, Tensor(rng.standard_normal((5, c, 3, 3)).astype(np.float32)))
        assert kernels.memory_order(y.array) == [2, 3, 0, 1] and y.array.transpose(2, 3, 0, 1).flags.c_contiguous


def test_cnn_gradients_through_batch_inner_layouts():
    """conv -> relu -> max-pool -> conv -> relu -> flatten -> linear: every layer after the first
    conv reads (and its backward writes) batch-inner arrays; the gradients of the input and of
    every parameter against finite differences, in float64."""
    rng = np.random.default_rng(1)
    x, w1, b1, w2, b2, w3 = (
        Tensor(rng.standard_normal(shape), requires_grad=True)
        for shape in ((3, 2, 10, 9), (4, 2, 3, 3), (4,), (5, 4, 2, 2), (5,), (2, 5 * 3 * 2))
    )

    def net(x, w1, b1, w2, b2, w3):
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1)), 2)  # (3, 4, 4, 3)
        h = F.relu(F.conv2d(h, w2, b2))  # (3, 5, 3, 2)
        return F.linear(h.reshape(3, -1), w3)

    assert gradcheck(net, x, w1, b1, w2, b2, w3)


@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), step=st.integers(1, 2))
def test_reshape_without_copy_exactly_where_numpy_can(data, shape, step):
    """Reshape's own test for a view agrees with NumPy's reshape on permuted and sliced arrays."""
    order = data.draw(st.permutations(range(len(shape))))
    x = np.arange(int(np.prod(shape)) * step)[::step].reshape(shape).transpose(order)
    sizes, rest = [], x.size
    while rest > 1:
        factor = data.draw(st.sampled_from([f for f in range(2, rest + 1) if rest % f == 0]))
        sizes += [factor] + ([1] if data.draw(st.booleans()) else [])
        rest //= factor
    if sizes and data.draw(st.booleans()):
        sizes[data.draw(st.integers(0, len(sizes) - 1))] = -1
    new_shape = tuple(sizes) or (1,)
    want = x.reshape(new_shape)
    got = kernels.reshaped_view(x, new_shape)
    assert (got is None) == (not np.shares_memory(want, x))
    if got is not None:
        np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), slab_bytes=st.sampled_from([1, 100, 1000]), threads=st.sampled_from([1, 3]))
def test_copy_between_layouts_copies_every_element(data, slab_bytes, threads):
    """Any two layouts, any slab size: slabs, or staging where the source's stride along the
    destination's innermost axis is a multiple of 1 KiB (sides of 256, or 16 by 16, float32s)."""
    if data.draw(st.booleans()):  # dst's innermost axis is src's outermost, whose stride is 1 KiB: staged
        shape = (data.draw(st.sampled_from([17, 32])),) + data.draw(st.sampled_from([(256,), (16, 16), (4, 16, 4)]))
        src_order = tuple(range(len(shape)))
        dst_order = tuple(data.draw(st.permutations(range(1, len(shape))))) + (0,)
    else:
        sides = st.lists(st.sampled_from([1, 3, 16, 17, 256]), min_size=1, max_size=4)
        shape = tuple(data.draw(sides.filter(lambda s: math.prod(s) <= 1 << 16)))
        src_order = data.draw(st.permutations(range(len(shape))))
        dst_order = data.draw(st.permutations(range(len(shape))))
    src = np.arange(math.prod(shape), dtype=np.float32).reshape([shape[a] for a in src_order])
    src = src.transpose(kernels.inverse(list(src_order)))
    dst = np.empty([shape[a] for a in dst_order], dtype=np.float32).transpose(kernels.inverse(list(dst_order)))
    if data.draw(st.booleans()):  # a padded destination, as conv2d's pad_image copies into
        dst = np.empty([shape[a] + 2 for a in dst_order], dtype=np.float32).transpose(kernels.inverse(list(dst_order)))
        dst = dst[tuple(slice(1, 1 + n) for n in shape)]
    with tg.threads.exactly(threads), mock.patch.object(kernels, "SLAB_BYTES", slab_bytes):
        assert kernels.copy_in_slabs(src, dst) is dst
    np.testing.assert_array_equal(dst, src)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(
    ("shape", "order", "staged"),
    [
        ((96, 64, 32), (1, 2, 0), True),  # a batch-inner conv output read as NCHW: a stride of 8 KiB
        ((96, 32, 32), (1, 2, 0), True),  # 4 KiB
        ((400, 16, 32), (1, 2, 0), True),  # 2 KiB: two cache sets
        ((6, 6, 64, 32), (2, 3, 0, 1), True),  # (H, W, N, C) read as NCHW: H, W and N, C merge in both
        ((97, 60, 32), (1, 2, 0), False),  # 7.5 KiB: many sets
        ((16, 128, 64), (1, 2, 0), False),  # 16 lines along dst's innermost axis: they fit
        ((64, 4, 32, 16), (3, 0, 2, 1), False),
    ],
)
def test_copy_between_layouts_staged_or_in_slabs(monkeypatch, shape, order, staged, threads):
    """Past SLAB_BYTES a copy across layouts is staged through a padded buffer where src's stride
    along dst's innermost axis falls into few cache sets, else cut into slabs; both copy every element."""
    calls, staged_copy = [], kernels.staged_copy
    monkeypatch.setattr(kernels, "staged_copy", lambda *args: calls.append(staged_copy(*args)))
    src = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32).transpose(order)
    dst = np.empty(src.shape, dtype=np.float32)
    assert src.nbytes > kernels.SLAB_BYTES
    with tg.threads.exactly(threads):
        assert kernels.copy_in_slabs(src, dst) is dst
    np.testing.assert_array_equal(dst, src)
    assert bool(calls) == staged


def test_reshape_of_a_batch_inner_array_gives_its_gradient_the_same_layout():
    """Flattening a conv output copies it into NCHW order; the plain backward lays the gradient
    out like the conv output again, so the relu and conv backward rules see matching layouts."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    h = Tensor(F.relu(F.conv2d(Tensor(x), Tensor(w))).array, requires_grad=True)  # a conv output's layout
    flat = h.reshape(6, -1)
    np.testing.assert_array_equal(flat.array, np.ascontiguousarray(h.array).reshape(6, -1))
    g = rng.standard_normal(flat.shape).astype(np.float32)
    flat.backward(g)
    np.testing.assert_array_equal(h.grad, g.reshape(h.shape))
    assert kernels.memory_order(h.grad.array) == kernels.memory_order(h.array) == [2, 3, 0, 1]


def test_weight_gradients_are_laid_out_like_the_weights():
    """linear and conv2d multiply views of their weights (transposed, permuted); the gradients reach
    the weights laid out like them, so that an optimizer's passes over both read memory in order."""
    tg.manual_seed(0)
    model = tg.nn.Sequential(
        tg.nn.Conv2d(3, 8, 3), tg.nn.ReLU(), tg.nn.Flatten(), tg.nn.Linear(8 * 6 * 6, 20), tg.nn.Linear(20, 5)
    )
    tg.nn.functional.cross_entropy(model(tg.randn(4, 3, 8, 8)), tg.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad.numpy().flags.c_contiguous, name


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(("stride", "padding"), [((1, 1), (1, 1)), ((2, 1), (0, 2))])
def test_conv_input_and_weight_grads_from_one_queue_equal_each_alone(threads, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 20, 18)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 12)).astype(np.float32)
    y, _ = kernels.conv_forward(x, w, None, stride, (1, 1), padding)
    g_rows = kernels.conv_rows(rng.standard_normal(y.shape).astype(np.float32))
    with tg.threads.exactly(threads):
        gx, gw = kernels.conv_input_and_weight_grads(x, w, g_rows, stride, (1, 1), padding)
    np.testing.assert_array_equal(gx, kernels.fold_products(g_rows, w, x.shape, stride, (1, 1), padding))
    np.testing.assert_array_equal(gw, kernels.conv_weight_grad(x, g_rows, w.shape, stride, (1, 1), padding))


def test_reshaping_a_broadcast_gradient_back_keeps_it_a_view():
    """A gradient of a sum arrives broadcast (stride 0); laying it out like the input would copy
    what is one row repeated, so Reshape's backward keeps the view."""
    row = np.arange(16, dtype=np.float32)
    g = np.broadcast_to(row, (18, 16))
    got, _ = kernels.reshape(g, (3, 2, 3, 16), [1, 2, 0, 3])
    assert np.shares_memory(got, row)
    np.testing.assert_array_equal(got, g.reshape(3, 2, 3, 16))
    dense = np.ones((18, 16), dtype=np.float32)  # not broadcast: laid out as asked
    got, _ = kernels.reshape(dense, (3, 2, 3, 16), [1, 2, 0, 3])
    assert kernels.memory_order(got) == [1, 2, 0, 3]


LAYOUTS = {"nchw": [0, 1, 2, 3], "batch-inner": [2, 3, 0, 1], "nhwc": [0, 2, 3, 1], "chwn": [1, 2, 3, 0]}


@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 12), st.integers(1, 7), st.integers(1, 7), st.integers(1, 10)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    layout=st.sampled_from(sorted(LAYOUTS)),
    bias=st.booleans(),
    needs=st.sampled_from([(True, True, True), (True, False, False), (False, True, True)]),
)
@settings(max_examples=40, deadline=None)
def test_pointwise_conv_equals_the_im2col_path(shape, stride, layout, bias, needs):
    """A 1x1 conv2d without padding multiplies x's own memory, in any layout (no im2col copy):
    the same output and gradients as the im2col path within float32 rounding, the output laid out
    batch-inner, and exactly the same results on 1, 2 or 3 threads (pieces small enough that
    several tasks run)."""
    n, c, h, wd, c_out = shape
    rng = np.random.default_rng(sum(shape))
    order = LAYOUTS[layout]
    data = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    x = np.ascontiguousarray(data.transpose(order)).transpose(kernels.inverse(order))
    w = rng.standard_normal((1, 1, c, c_out)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if bias else None
    args = (stride, (1, 1), (0, 0))
    with mock.patch.object(kernels, "pointwise", return_value=False):
        y_want, cols = kernels.conv_forward(x, w, b, *args)
        g = rng.standard_normal(y_want.shape).astype(np.float32)
        want = kernels.conv_grads(x, w, g, *args, cols, needs)
    results = []
    for threads in (1, 2, 3):
        with tg.threads.exactly(threads), mock.patch.multiple(kernels, TASK_BYTES=256, MATMUL_ROWS=4):
            y, _ = kernels.conv_forward(x, w, b, *args)
            g_like_y = kernels.laid_out_like(g, y)  # as the ops after the conv pass it back
            results.append((y, *kernels.conv_grads(x, w, g_like_y, *args, None, needs)))
    for other in results[1:]:
        for a, a1 in zip(results[0], other):
            assert (a is None and a1 is None) or np.array_equal(a, a1)
    y, *got = results[0]
    np.testing.assert_allclose(y, y_want, rtol=1e-5, atol=1e-5)
    for a, a_want in zip(got, want):
        assert (a is None) == (a_want is None)
        if a is not None:
            np.testing.assert_allclose(a, a_want, rtol=1e-5, atol=1e-4)
    if min(y.shape) > 1 and min(x.shape) > 1:  # (axes of length 1 leave the memory order ambiguous)
        assert kernels.memory_order(y) == [1, 2, 0, 3]  # batch-inner, as every conv2d output
        per_image = layout in ("nchw", "nhwc") and stride == (1, 1) and h * wd >= kernels.POINTWISE_MIN_PIXELS
        if got[0] is not None:  # NCHW where x's matrices are its images', else batch-inner
            assert kernels.memory_order(got[0]) == ([0, 1, 2, 3] if per_image else [2, 3, 0, 1])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_conv_gradients_match_finite_differences(layout, stride):
    """Both branches of the pointwise path (per-image (C, H*W) GEMMs, forced on small images, and
    rows of channels, viewed or copied) in float64 against finite differences, with a bias, in
    every layout."""
    rng = np.random.default_rng(stride)
    order = LAYOUTS[layout]
    x = Tensor(
        np.ascontiguousarray(rng.standard_normal((2, 3, 4, 5)).transpose(order)).transpose(kernels.inverse(order))
    )
    w, b = Tensor(rng.standard_normal((4, 3, 1, 1))), Tensor(rng.standard_normal(4))
    with mock.patch.object(kernels, "POINTWISE_MIN_PIXELS", 1):
        assert gradcheck(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride).tanh(), x, w, b)
