"""conv2d by Winograd's F(2x2, 3x3) (tinygrad_cnn.winograd) computes what the im2col path computes.

The Winograd path takes 3x3 stride-1 convolutions of many channels only (winograd.fits); here
MIN_CHANNELS is lowered so that small arrays take it, and BLOCK_BYTES and MIN_ROWS so that they are
cut into many blocks of tiles (whole rows of tiles and pieces of a row), on one or several threads.
"""

from __future__ import annotations

from unittest import mock

import conv_paths
import numpy as np
import pytest
from conv_paths import LAYOUTS, conv_path, laid_out
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, winograd
from tinygrad_cnn.testing import gradcheck

F32_TOLERANCE = 1e-5  # of the largest magnitude of the result: float32 rounding of sums of up to ~100 products


def im2col_path(x, w, b, g, padding, needs):
    with mock.patch.object(winograd, "fits", return_value=False):
        return conv_path(x, w, b, g, padding, needs)


def winograd_path(x, w, b, g, padding, needs, threads=1):
    assert winograd.fits(x.shape, w.shape, (1, 1), (1, 1), padding)
    return conv_path(x, w, b, g, padding, needs, threads, keeps_cols=False)


def assert_close(got, want, dtype):
    conv_paths.assert_close(got, want, dtype, F32_TOLERANCE)


small_winograd = mock.patch.multiple(
    winograd, MIN_CHANNELS=1, MIN_VALUES=1, MIN_FULL_PIXELS=1, BLOCK_BYTES=512, MIN_ROWS=1
)


@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5)),
    padding=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    layout=st.sampled_from(sorted(LAYOUTS)),
    dtype=st.sampled_from([np.float64, np.float32]),
    bias=st.booleans(),
    needs=st.sampled_from([(True, True, True), (True, False, False), (False, True, True)]),
    block_bytes=st.sampled_from([64, 512, 4096, 1 << 21]),
    full_pixels=st.sampled_from([1, 1 << 20]),
)
@settings(max_examples=150, deadline=None)
def test_winograd_equals_the_im2col_path(shape, padding, layout, dtype, bias, needs, block_bytes, full_pixels):
    """Output, input and weight gradients of x in any layout, odd and even sizes, batch 1 and more:
    the im2col path's to float64 rounding (tight) or within F32_TOLERANCE in float32; the output
    and the input gradient laid out batch-inner; the same bits on 1 and 3 threads. Unpadded, the
    input gradient is the full correlation or the fold (full_pixels)."""
    n, c, h, wd, c_out = shape
    h, wd = h + 2 - 2 * padding[0], wd + 2 - 2 * padding[1]  # at least one output row and column
    rng = np.random.default_rng(sum(shape))
    x = laid_out(rng.standard_normal((n, c, h, wd)).astype(dtype), LAYOUTS[layout])
    w = rng.standard_normal((3, 3, c, c_out)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    g = rng.standard_normal((n, h + 2 * padding[0] - 2, wd + 2 * padding[1] - 2, c_out)).astype(dtype)
    want = im2col_path(x, w, b, g, padding, needs)
    with small_winograd, mock.patch.multiple(winograd, BLOCK_BYTES=block_bytes, MIN_FULL_PIXELS=full_pixels):
        got = winograd_path(x, w, b, g, padding, needs)
        on_three = winograd_path(x, w, b, g, padding, needs, threads=3)
    assert_close(got, want, dtype)
    conv_paths.assert_thread_free_and_batch_inner(got, on_three, padding == (1, 1) or full_pixels == 1)


@pytest.mark.parametrize(
    ("n", "c", "c_out", "hw", "padding"),
    [(2, 32, 32, 25, (1, 1)), (1, 48, 32, 32, (0, 0)), (3, 32, 40, 21, (1, 0)), (5, 64, 32, 16, (1, 1))],
)
def test_winograd_at_the_channel_counts_that_take_it(n, c, c_out, hw, padding):
    """Unpatched: these shapes take the Winograd path by themselves, strided inputs included."""
    rng = np.random.default_rng(c + hw)
    x = rng.standard_normal((n, c, 2 * hw, hw)).astype(np.float32)[:, :, ::2]  # non-contiguous rows
    w = rng.standard_normal((c_out, c, 3, 3)).astype(np.float32).transpose(2, 3, 1, 0)  # conv2d's view
    assert winograd.fits(x.shape, w.shape, (1, 1), (1, 1), padding)
    b = rng.standard_normal(c_out).astype(np.float32)
    g = rng.standard_normal((n, hw + 2 * padding[0] - 2, hw + 2 * padding[1] - 2, c_out)).astype(np.float32)
    needs = (True, True, True)
    assert_close(winograd_path(x, w, b, g, padding, needs), im2col_path(x, w, b, g, padding, needs), np.float32)


def test_fits_only_3x3_stride_1_convolutions_of_many_channels():
    assert winograd.fits((1, 32, 32, 32), (3, 3, 32, 32), (1, 1), (1, 1), (1, 1))
    assert winograd.fits((8, 64, 8, 8), (3, 3, 64, 128), (1, 1), (1, 1), (0, 1))
    assert winograd.fits((2, 16, 32, 32), (3, 3, 16, 32), (1, 1), (1, 1), (1, 1))
    assert not winograd.fits((1, 32, 16, 16), (3, 3, 32, 32), (1, 1), (1, 1), (1, 1))  # too little work to win
    assert not winograd.fits((64, 3, 32, 32), (3, 3, 3, 32), (1, 1), (1, 1), (1, 1))
    assert not winograd.fits((64, 32, 32, 32), (3, 3, 32, 8), (1, 1), (1, 1), (1, 1))
    assert not winograd.fits((64, 32, 32, 32), (3, 3, 32, 32), (2, 2), (1, 1), (1, 1))
    assert not winograd.fits((64, 32, 32, 32), (3, 3, 32, 32), (1, 1), (2, 2), (1, 1))
    assert not winograd.fits((64, 32, 32, 32), (3, 3, 32, 32), (1, 1), (1, 1), (2, 2))
    assert not winograd.fits((64, 32, 32, 32), (5, 5, 32, 32), (1, 1), (1, 1), (1, 1))


def test_weight_transform_and_its_adjoint():
    """<G w G^T, dU> = <w, G^T dU G>: weight_from_tiles is the adjoint of weight_tiles."""
    rng = np.random.default_rng(0)
    w, du = rng.standard_normal((3, 3, 4, 5)), rng.standard_normal((16, 4, 5))
    u = winograd.weight_tiles(w)
    np.testing.assert_allclose(u.reshape(4, 4, 4, 5)[1, 2, 3, 4], winograd.G[1] @ w[:, :, 3, 4] @ winograd.G[2])
    np.testing.assert_allclose(np.vdot(u, du), np.vdot(w, winograd.weight_from_tiles(du)))


@pytest.mark.parametrize("padding", [0, 1, (1, 0)])
@pytest.mark.parametrize("hw", [(3, 4), (5, 5)])
def test_gradcheck_of_conv2d_on_the_winograd_path(padding, hw):
    rng = np.random.default_rng(hw[0])
    x = Tensor(rng.standard_normal((2, 3, *hw)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    with small_winograd, mock.patch.object(winograd, "conv_forward", wraps=winograd.conv_forward) as used:
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), x, w, b)
    assert used.called


def test_winograd_conv2d_against_pytorch():
    """float32 conv2d forward and backward of 32 channels, against PyTorch's (oneDNN's) result."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shapes = [(8, 32, 15, 15), (32, 32, 3, 3), 32, (8, 32, 15, 15)]
    x, w, b, g = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    ours = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    with mock.patch.object(winograd, "conv_forward", wraps=winograd.conv_forward) as used:
        y = F.conv2d(*ours, padding=1)
    assert used.called
    y_t = torch.nn.functional.conv2d(*theirs, padding=1)
    (y * Tensor(g)).sum().backward()
    (y_t * torch.tensor(g)).sum().backward()
    got = [y.detach().numpy(), *(t.grad.numpy() for t in ours)]
    assert_close(got, [y_t.detach().numpy(), *(t.grad.numpy() for t in theirs)], np.float32)
