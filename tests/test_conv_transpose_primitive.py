"""The ``ConvTranspose`` primitive (conv_transpose2d's core, and conv2d's recorded input gradient):
its forward against a plain NumPy statement of its docstring's formula (one strided slice-add per
kernel offset and group onto a canvas, cropped) over shapes, strides, paddings, dilations, groups
and output sizes, on NCHW inputs and inputs laid out (H, W, N, C) as conv2d's outputs are;
gradients against finite differences in float64, to second order; conv_transpose2d on shapes
large enough for the kernels' bands, blocks and threads, against PyTorch (float32)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.nn.functional as NF
from tinygrad_cnn import primitives as P
from tinygrad_cnn.testing import gradcheck, gradgradcheck

SEEDS = st.integers(0, 2**31 - 1)


class Geometry(NamedTuple):
    """A ConvTranspose call: input and weight (kh, kw, C_out/G, C_in) shapes, output size and arguments."""

    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    groups: int


@st.composite
def geometries(draw: Any, max_side: int = 4, max_channels: int = 2) -> Geometry:
    """Any valid call: an output size whose convolution (by this kernel, stride, dilation and
    padding) has exactly the input's windows, from the smallest to that plus stride - 1 (PyTorch's
    output_padding)."""
    groups, per_in, per_out = draw(st.integers(1, 3)), draw(st.integers(1, max_channels)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    side = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    full = [(h - 1) * s + d * (k - 1) + 1 for h, s, d, k in zip(side, stride, dilation, kernel)]
    padding = tuple(draw(st.integers(0, min(3, (f + s - 2) // 2))) for f, s in zip(full, stride))
    size = tuple(draw(st.integers(max(1, f - 2 * p), f - 2 * p + s - 1)) for f, p, s in zip(full, padding, stride))
    return Geometry(
        (n, groups * per_in, *side),
        (*kernel, per_out, groups * per_in),
        size,  # type: ignore[arg-type]
        stride,
        dilation,
        padding,  # type: ignore[arg-type]
        groups,
    )


def array(shape: tuple[int, ...], seed: int, images_inner: bool = False, dtype: Any = np.float64) -> np.ndarray:
    """Random values; ``images_inner``: an (N, C, H, W) array laid out (H, W, N, C) in memory."""
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1) if images_inner else a


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: Geometry) -> np.ndarray:
    """The docstring's formula in plain NumPy: y[n, g*K + o, i*sh + p*dh - ph, j*sw + q*dw - pw] +=
    x[n, g*M + m, i, j] * w[p, q, o, g*M + m], on a canvas as large as every window reaches, cropped."""
    n, c_in, h, wd = x.shape
    kh, kw, k, _ = w.shape
    (sh, sw), (dh, dw), (ph, pw), m = geo.stride, geo.dilation, geo.padding, c_in // geo.groups
    rows = max((h - 1) * sh + (kh - 1) * dh + 1, geo.size[0] + 2 * ph)
    cols = max((wd - 1) * sw + (kw - 1) * dw + 1, geo.size[1] + 2 * pw)
    canvas = np.zeros((n, k * geo.groups, rows, cols))
    for g in range(geo.groups):
        xg = x[:, g * m : (g + 1) * m]
        for p in range(kh):
            for q in range(kw):
                product = np.einsum("nmij,om->noij", xg, w[p, q, :, g * m : (g + 1) * m])
                canvas[
                    :,
                    g * k : (g + 1) * k,
                    p * dh : p * dh + sh * (h - 1) + 1 : sh,
                    q * dw : q * dw + sw * (wd - 1) + 1 : sw,
                ] += product
    y = canvas[:, :, ph : ph + geo.size[0], pw : pw + geo.size[1]]
    return y if b is None else y + b.reshape(-1, 1, 1)


def apply(geo: Geometry, x: Any, w: Any, b: Any = None) -> Any:
    return P.ConvTranspose.apply(x, w, b, geo.size, geo.stride, geo.dilation, geo.padding, geo.groups)


@given(geo=geometries(), images_inner=st.booleans(), bias=st.booleans(), seed=SEEDS)
def test_forward_is_the_formula(geo, images_inner, bias, seed):
    x, w = array(geo.x_shape, seed, images_inner), array(geo.w_shape, seed + 1)
    b = array((geo.w_shape[2] * geo.groups,), seed + 2) if bias else None
    y = apply(geo, tg.Tensor(x), tg.Tensor(w), None if b is None else tg.Tensor(b))
    assert y.shape == (geo.x_shape[0], geo.w_shape[2] * geo.groups, *geo.size)
    np.testing.assert_allclose(y.numpy(), reference(x, w, b, geo), rtol=1e-12, atol=1e-12)


@given(geo=geometries(max_side=3), images_inner=st.booleans(), seed=SEEDS)
def test_gradcheck(geo, images_inner, seed):
    x = tg.Tensor(array(geo.x_shape, seed, images_inner), requires_grad=True)
    w = tg.Tensor(array(geo.w_shape, seed + 1), requires_grad=True)
    b = tg.Tensor(array((geo.w_shape[2] * geo.groups,), seed + 2), requires_grad=True)
    assert gradcheck(lambda x_, w_, b_: apply(geo, x_, w_, b_), x, w, b)


@settings(max_examples=10)
@given(geo=geometries(max_side=2, max_channels=1), seed=SEEDS)
def test_gradgradcheck(geo, seed):
    """The recorded backward (Convolution for dx, conv2d's weight gradient for dw) differentiated again."""
    x = tg.Tensor(array(geo.x_shape, seed), requires_grad=True)
    w = tg.Tensor(array(geo.w_shape, seed + 1), requires_grad=True)
    b = tg.Tensor(array((geo.w_shape[2] * geo.groups,), seed + 2), requires_grad=True)
    assert gradgradcheck(lambda x_, w_, b_: apply(geo, x_, w_, b_).tanh(), x, w, b)


def test_a_size_whose_windows_do_not_match_the_input_is_an_error():
    x, w = tg.zeros(1, 2, 3, 3), tg.zeros(3, 3, 4, 2)
    with pytest.raises(
        ValueError,
        match=r"ConvTranspose: an output of size \(9, 9\) has \(5, 5\) windows of kernel \(3, 3\).*input's \(3, 3\)",
    ):
        P.ConvTranspose.apply(x, w, None, (9, 9), (2, 2), (1, 1), (1, 1), 1)


# float32 shapes with several bands, im2col blocks and tasks: the DCGAN generator's layers (also
# laid out as conv2d's outputs), U-Net upsampling, 3x3 stride 1, grouped, depthwise, output_padding
# (also beyond the stride, with a larger dilation)
LAYERS = [
    # c_in, c_out, kernel, stride, padding, output_padding, groups, dilation, input (N, H, W)
    (64, 32, 4, 2, 1, 0, 1, 1, (16, 16, 16)),
    (100, 64, 4, 1, 0, 0, 1, 1, (32, 1, 1)),
    (32, 16, 2, 2, 0, 0, 1, 1, (8, 32, 32)),
    (16, 16, 3, 1, 1, 0, 1, 1, (8, 32, 32)),
    (32, 32, 4, 2, 1, 0, 32, 1, (16, 16, 16)),
    (32, 64, 3, 2, 1, 1, 32, 1, (8, 16, 16)),
    (24, 12, 3, 2, 1, 1, 4, 1, (8, 16, 16)),
    (16, 8, 3, 1, 2, 1, 1, 2, (8, 20, 20)),
]


@pytest.mark.parametrize("images_inner", [False, True])
@pytest.mark.parametrize(("c_in", "c_out", "k", "s", "p", "op", "groups", "d", "nhw"), LAYERS)
def test_float32_layers_against_torch(c_in, c_out, k, s, p, op, groups, d, nhw, images_inner):
    torch = pytest.importorskip("torch")
    n, h, wd = nhw
    x_np = array((n, c_in, h, wd), 0, images_inner, np.float32)
    w_np, b_np = array((c_in, c_out // groups, k, k), 1, dtype=np.float32), array((c_out,), 2, dtype=np.float32)
    results = []
    for lib in (tg, torch):
        x = lib.tensor(x_np, requires_grad=True)
        w, b = lib.tensor(w_np, requires_grad=True), lib.tensor(b_np, requires_grad=True)
        y = lib.nn.functional.conv_transpose2d(x, w, b, s, p, op, groups, d)
        (y * y).sum().backward()
        results.append([t.detach().numpy() for t in (y, x.grad, w.grad, b.grad)])
    for ours, theirs in zip(*results):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_threads_do_not_change_the_result():
    """The same bits on one thread and on three (the tasks are cut by the shapes alone)."""
    x, w = (
        tg.tensor(array((16, 64, 16, 16), 0, dtype=np.float32)),
        tg.tensor(array((64, 32, 4, 4), 1, dtype=np.float32)),
    )
    results = []
    for threads in (1, 3):
        with tg.threads.exactly(threads):
            xt, wt = x.detach().requires_grad_(), w.detach().requires_grad_()
            y = NF.conv_transpose2d(xt, wt, None, 2, 1)
            (y * y).sum().backward()
            results.append([t.detach().numpy() for t in (y, xt.grad, wt.grad)])
    for one, three in zip(*results):
        np.testing.assert_array_equal(one, three)


@pytest.mark.parametrize("padding", [1, 2])
def test_stride_1_by_the_flipped_convolution(padding):
    """At stride 1 with channels enough for the Winograd path, the forward is the conv2d by the
    flipped kernel and the gradients Winograd's: float64 values against the formula, gradients
    against PyTorch."""
    geo = Geometry((16, 16, 12, 12), (3, 3, 24, 16), (14 - 2 * padding,) * 2, (1, 1), (1, 1), (padding,) * 2, 1)
    x, w, b = array(geo.x_shape, 0, images_inner=True), array(geo.w_shape, 1), array((24,), 2)
    xt, wt, bt = (tg.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = apply(geo, xt, wt, bt)
    np.testing.assert_allclose(y.detach().numpy(), reference(x, w, b, geo), rtol=1e-11, atol=1e-11)
    (y * y).sum().backward()
    torch = pytest.importorskip("torch")
    x_t, w_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, w.transpose(3, 2, 0, 1), b))
    y_t = torch.nn.functional.conv_transpose2d(x_t, w_t, b_t, 1, padding)
    (y_t * y_t).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), x_t.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), w_t.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-9)
