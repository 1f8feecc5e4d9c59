"""conv2d by Winograd's F(2x2, 5x5) (tinygrad_cnn.winograd5) computes what the im2col path computes.

The path takes 5x5 stride-1 convolutions of many channels only (winograd5.fits); here
MIN_CHANNELS and MIN_WORK are lowered so that small arrays take it, and BLOCK_BYTES and MIN_ROWS
so that they are cut into many blocks of tiles (whole rows of tiles and pieces of a row), on one
or several threads.
"""

from __future__ import annotations

from unittest import mock

import conv_paths
import numpy as np
import pytest
from conv_paths import LAYOUTS, against_pytorch, conv_path, laid_out
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
import tinygrad_cnn.nn.functional as NF
from tinygrad_cnn import Tensor, winograd, winograd5
from tinygrad_cnn.testing import gradcheck, gradgradcheck

# of the largest magnitude of the result: float32 rounding in the transforms, whose entries go up to
# 5 and down to 1/24 (the weight gradient's errors, 1-2e-5 at 16 to 256 channels, are the largest)
F32_TOLERANCE = 1e-4


def im2col_path(x, w, b, g, padding, needs):
    with mock.patch.object(winograd5, "fits", return_value=False):
        return conv_path(x, w, b, g, padding, needs)


def winograd_path(x, w, b, g, padding, needs, threads=1):
    assert winograd5.fits(x.shape, w.shape, (1, 1), (1, 1), padding, x.dtype)
    return conv_path(x, w, b, g, padding, needs, threads, keeps_cols=False)


def assert_close(got, want, dtype):
    conv_paths.assert_close(got, want, dtype, F32_TOLERANCE)


small_winograd = mock.patch.multiple(winograd5, MIN_CHANNELS=1, MIN_WORK=1, BLOCK_BYTES=512, MIN_ROWS=1)


@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    layout=st.sampled_from(sorted(LAYOUTS)),
    dtype=st.sampled_from([np.float64, np.float32]),
    bias=st.booleans(),
    needs=st.sampled_from([(True, True, True), (True, False, False), (False, True, True), (False, False, True)]),
    block_bytes=st.sampled_from([64, 2048, 1 << 21]),
)
@settings(max_examples=300, deadline=None)
def test_winograd5_equals_the_im2col_path(shape, padding, layout, dtype, bias, needs, block_bytes):
    """Output, input and weight gradients of x in any layout, odd and even sizes, paddings 0 to 3
    (the padded image at least 5x5), batch 1 and more: the im2col path's to float64 rounding
    (tight) or within F32_TOLERANCE in float32; the output and the input gradient laid out
    batch-inner; the same bits on 1 and 3 threads."""
    n, c, oh, ow, c_out = shape
    h, wd = oh + 4 - 2 * padding[0], ow + 4 - 2 * padding[1]
    if h < 1 or wd < 1:
        h, wd = max(h, 1), max(wd, 1)
        oh, ow = h + 2 * padding[0] - 4, wd + 2 * padding[1] - 4
    rng = np.random.default_rng(sum(shape))
    x = laid_out(rng.standard_normal((n, c, h, wd)).astype(dtype), LAYOUTS[layout])
    w = rng.standard_normal((5, 5, c, c_out)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    g = rng.standard_normal((n, oh, ow, c_out)).astype(dtype)
    want = im2col_path(x, w, b, g, padding, needs)
    with small_winograd, mock.patch.object(winograd5, "BLOCK_BYTES", block_bytes):
        got = winograd_path(x, w, b, g, padding, needs)
        on_three = winograd_path(x, w, b, g, padding, needs, threads=3)
    assert_close(got, want, dtype)
    conv_paths.assert_thread_free_and_batch_inner(got, on_three, True)


@pytest.mark.parametrize(
    ("n", "c", "c_out", "hw", "padding"),
    [(64, 16, 32, 12, (0, 0)), (2, 16, 32, 16, (2, 2)), (3, 4, 40, 21, (1, 0)), (4, 64, 3, 13, (2, 3))],
)
def test_winograd5_at_the_channel_counts_that_take_it(n, c, c_out, hw, padding):
    """Unpatched: these shapes take the path by themselves (LeNet-ish's second layer among them),
    strided inputs included."""
    rng = np.random.default_rng(c + hw)
    x = rng.standard_normal((n, c, 2 * hw, hw)).astype(np.float32)[:, :, ::2]  # non-contiguous rows
    w = (rng.standard_normal((c_out, c, 5, 5)).astype(np.float32) / 5).transpose(2, 3, 1, 0)  # conv2d's view
    assert winograd5.fits(x.shape, w.shape, (1, 1), (1, 1), padding, x.dtype)
    b = rng.standard_normal(c_out).astype(np.float32)
    g = rng.standard_normal((n, hw + 2 * padding[0] - 4, hw + 2 * padding[1] - 4, c_out)).astype(np.float32)
    needs = (True, True, True)
    assert_close(winograd_path(x, w, b, g, padding, needs), im2col_path(x, w, b, g, padding, needs), np.float32)


def test_fits_only_5x5_stride_1_float_convolutions_of_4_input_channels_and_enough_work():
    one, none = (1, 1), (0, 0)
    assert winograd5.fits((128, 16, 12, 12), (5, 5, 16, 32), one, one, none, np.float32)  # LeNet-ish at batch 128
    assert winograd5.fits((4, 16, 12, 12), (5, 5, 16, 32), one, one, none, np.float64)
    assert winograd5.fits((64, 4, 28, 28), (5, 5, 4, 1), one, one, none, np.float32)
    assert winograd5.fits((1, 64, 16, 16), (5, 5, 64, 64), one, one, (2, 2), np.float32)
    assert not winograd5.fits((2, 16, 12, 12), (5, 5, 16, 32), one, one, none, np.float32)  # too little work
    assert not winograd5.fits((128, 1, 28, 28), (5, 5, 1, 16), one, one, none, np.float32)  # LeNet-ish's first
    assert not winograd5.fits((64, 3, 32, 32), (5, 5, 3, 32), one, one, (2, 2), np.float32)
    assert not winograd5.fits((128, 16, 12, 12), (5, 5, 16, 32), (2, 2), one, none, np.float32)
    assert not winograd5.fits((128, 16, 12, 12), (5, 5, 16, 32), one, (2, 2), none, np.float32)
    assert not winograd5.fits((128, 16, 12, 12), (5, 5, 16, 32), one, one, none, np.int64)
    assert not winograd5.fits((128, 16, 12, 12), (5, 5, 16, 32), one, one, none, np.float16)
    assert not winograd5.fits((128, 16, 12, 12), (3, 3, 16, 32), one, one, none, np.float32)
    assert not winograd5.fits((128, 16, 12, 12), (5, 3, 16, 32), one, one, none, np.float32)
    assert not winograd5.fits((128, 16, 3, 3), (5, 5, 16, 32), one, one, none, np.float32)  # no output


def test_transforms_are_f2x2_5x5():
    """One tile in 1-D: A^T [(G w) ⊙ (B^T d)] is the correlation of d (6,) with w (5,);
    weight_from_tiles is weight_tiles' adjoint."""
    rng = np.random.default_rng(0)
    d, w = rng.standard_normal(6), rng.standard_normal(5)
    want = [d[i : i + 5] @ w for i in range(2)]
    np.testing.assert_allclose(winograd5.A_T @ ((winograd5.G @ w) * (winograd5.B_T @ d)), want)
    w4, du = rng.standard_normal((5, 5, 3, 4)), rng.standard_normal((36, 3, 4))
    u = winograd.weight_tiles(w4, winograd5.G)
    np.testing.assert_allclose(u.reshape(6, 6, 3, 4)[1, 4, 2, 3], winograd5.G[1] @ w4[:, :, 2, 3] @ winograd5.G[4])
    np.testing.assert_allclose(np.vdot(u, du), np.vdot(w4, winograd.weight_from_tiles(du, winograd5.G)))


@pytest.mark.parametrize(("padding", "hw"), [(0, (6, 7)), (2, (3, 4)), ((1, 3), (5, 2))])
def test_gradcheck_and_gradgradcheck_of_conv2d_on_the_winograd5_path(padding, hw):
    rng = np.random.default_rng(hw[0])
    x = Tensor(rng.standard_normal((2, 2, *hw)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 5, 5)), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    with small_winograd, mock.patch.object(winograd5, "conv_forward", wraps=winograd5.conv_forward) as used:
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), x, w, b)
        assert gradgradcheck(lambda x, w: F.conv2d(x, w, padding=padding), x, w)
    assert used.called


@pytest.mark.parametrize(("padding", "hw"), [(0, 12), (2, 9)])
def test_winograd5_conv2d_against_pytorch(padding, hw):
    """float32 conv2d forward and backward of LeNet-ish's second layer (16 -> 32 channels, 12x12
    images, batch 32) and a padded one, against PyTorch's (oneDNN's) result."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(32, 16, hw, hw), (32, 16, 5, 5), 32])
    with mock.patch.object(winograd5, "conv_forward", wraps=winograd5.conv_forward) as used:
        got, want = against_pytorch(
            lambda *a: F.conv2d(*a, padding=padding),
            lambda *a: torch.nn.functional.conv2d(*a, padding=padding),
            (x, w / 10, b),
        )
    assert used.called
    assert_close(got, want, np.float32)


@pytest.mark.parametrize("padding", [0, 2, (1, 3)])
def test_conv_transpose2d_on_the_winograd5_path(padding):
    """A 5x5 transposed convolution at stride 1 (and so conv2d's double backward) takes the path:
    its forward is conv2d's input gradient, its gradients conv2d's forward and weight gradient.
    float64 gradcheck, and float32 against PyTorch."""
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 5, 5)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    with small_winograd, mock.patch.object(winograd5, "input_grad", wraps=winograd5.input_grad) as used:
        assert gradcheck(lambda x, w, b: NF.conv_transpose2d(x, w, b, padding=padding), x, w, b)
    assert used.called
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(16, 16, 9, 9), (16, 8, 5, 5), 8]]
    with mock.patch.object(winograd5, "input_grad", wraps=winograd5.input_grad) as used:
        got, want = against_pytorch(
            lambda *a: NF.conv_transpose2d(*a, padding=padding),
            lambda *a: torch.nn.functional.conv_transpose2d(*a, padding=padding),
            arrays,
        )
    assert used.called
    assert_close(got, want, np.float32)
