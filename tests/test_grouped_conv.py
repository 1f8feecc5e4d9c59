"""conv2d with ``groups`` > 1 (the ``GroupedConvolution`` primitive): gradients against finite
differences in float64 over groups, channels per group, channel multipliers, strides, paddings and
dilations, for NCHW inputs and for inputs laid out (H, W, N, C) as conv2d's outputs are; second
order; PyTorch as an oracle (forward and gradients, float64 and float32); errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.nn.functional as NF
from tinygrad_cnn.testing import gradcheck, gradgradcheck
from tinygrad_cnn.testing.strategies import Conv2dConfig, conv2d_configs

SEEDS = st.integers(0, 2**31 - 1)


def grouped(cfg: Conv2dConfig, groups: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """cfg's input and weight shapes with every channel count times ``groups`` (its channels per group)."""
    (n, c_in, h, w), (c_out, _, kh, kw) = cfg.input_shape, cfg.weight_shape
    return (n, groups * c_in, h, w), (groups * c_out, c_in, kh, kw)


def array(shape: tuple[int, ...], seed: int, images_inner: bool = False, dtype=np.float64) -> np.ndarray:
    """Random values; ``images_inner``: an (N, C, H, W) array laid out (H, W, N, C) in memory."""
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1) if images_inner else a


CONFIGS = conv2d_configs(max_batch=2, max_in_channels=2, max_out_channels=2, max_side=5)


@given(cfg=CONFIGS, groups=st.integers(2, 3), images_inner=st.booleans(), seed=SEEDS)
def test_grouped_conv2d_gradcheck(cfg, groups, images_inner, seed):
    """Depthwise (one input channel per group, any multiplier) and general groups."""
    x_shape, w_shape = grouped(cfg, groups)
    x = tg.Tensor(array(x_shape, seed, images_inner), requires_grad=True)
    w = tg.Tensor(array(w_shape, seed + 1), requires_grad=True)
    args = (cfg.stride, cfg.padding, cfg.dilation, groups)
    if cfg.bias:
        b = tg.Tensor(array((w_shape[0],), seed + 2), requires_grad=True)
        assert gradcheck(lambda x_, w_, b_: NF.conv2d(x_, w_, b_, *args), x, w, b)
    else:
        assert gradcheck(lambda x_, w_: NF.conv2d(x_, w_, None, *args), x, w)


@settings(max_examples=10)
@given(
    cfg=conv2d_configs(max_batch=1, max_in_channels=2, max_out_channels=2, max_side=3, max_kernel=2),
    groups=st.integers(2, 3),
    seed=SEEDS,
)
def test_grouped_conv2d_second_order(cfg, groups, seed):
    """The differentiable backward (Einsum, Fold, Unfold) differentiated again."""
    x_shape, w_shape = grouped(cfg, groups)
    x, w = (tg.Tensor(array(s, seed + i), requires_grad=True) for i, s in enumerate((x_shape, w_shape)))
    b = tg.Tensor(array((w_shape[0],), seed + 2)) if cfg.bias else None
    assert gradgradcheck(
        lambda x_, w_: NF.conv2d(x_, w_, b, cfg.stride, cfg.padding, cfg.dilation, groups).tanh(), x, w
    )


def test_depthwise_same_padding_and_layouts_agree():
    """A depthwise 3x3 'same' conv of an NCHW image and of the same image laid out (H, W, N, C):
    one result, and each gradient laid out as the framework lays them out."""
    results = []
    for images_inner in (False, True):
        x = tg.Tensor(array((3, 4, 6, 5), 0, images_inner), requires_grad=True)
        w = tg.Tensor(array((8, 1, 3, 3), 1), requires_grad=True)
        y = NF.conv2d(x, w, None, 1, "same", 1, 4)
        (y * y).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy(), w.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- PyTorch as the oracle

torch_cases = st.tuples(
    st.sampled_from([(4, 1, 1), (4, 1, 2), (2, 3, 2), (3, 2, 1), (2, 4, 4)]),  # groups, channels per group in, out
    st.integers(1, 3),  # kernel
    st.integers(1, 2),  # stride
    st.integers(0, 2),  # padding
    st.integers(1, 2),  # dilation
    st.booleans(),  # bias
    st.booleans(),  # images inner
)


@settings(max_examples=20)
@given(case=torch_cases, seed=SEEDS)
def test_grouped_conv2d_against_torch(case, seed):
    torch = pytest.importorskip("torch")
    (groups, per_in, per_out), k, stride, padding, dilation, bias, images_inner = case
    x_np = array((2, groups * per_in, 7, 6), seed, images_inner)
    w_np, b_np = array((groups * per_out, per_in, k, k), seed + 1), array((groups * per_out,), seed + 2)
    g_np = None
    grads = []
    for lib in (tg, torch):
        x, w = lib.tensor(x_np, requires_grad=True), lib.tensor(w_np, requires_grad=True)
        b = lib.tensor(b_np, requires_grad=True) if bias else None
        y = lib.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups)
        if g_np is None:
            g_np = np.random.default_rng(seed + 3).standard_normal(tuple(y.shape))
        y.backward(lib.tensor(g_np))
        grads.append([y.detach().numpy(), x.grad.numpy(), w.grad.numpy()] + ([b.grad.numpy()] if bias else []))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("channels", "groups", "out"), [(16, 16, 16), (16, 16, 32), (16, 2, 16), (32, 8, 32)])
@pytest.mark.parametrize("stride", [1, 2])
def test_float32_training_shapes_against_torch(channels, groups, out, stride):
    """Depthwise, a channel multiplier of 2 and general groups at float32 and a batch of 8, on
    an input laid out as a conv2d output (the fast paths' blocks and bands at larger sizes)."""
    torch = pytest.importorskip("torch")
    x_np = array((8, channels, 12, 12), 0, images_inner=True, dtype=np.float32)
    w_np = array((out, channels // groups, 3, 3), 1, dtype=np.float32)
    b_np = array((out,), 2, dtype=np.float32)
    results = []
    for lib in (tg, torch):
        x, w, b = (lib.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
        y = lib.nn.functional.conv2d(x, w, b, stride, 1, 1, groups)
        (y * y).sum().backward()
        results.append([t.detach().numpy() for t in (y, x.grad, w.grad, b.grad)])
    assert all(r.dtype == np.float32 for r in results[0])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-3 * np.abs(theirs).max())


# --------------------------------------------------------------------------- errors


def test_bad_groups_name_the_op_and_shapes():
    x, w = tg.zeros(1, 6, 5, 5), tg.zeros(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d: input \(1, 6, 5, 5\) and weight \(4, 3, 3, 3\) do not fit groups=3"):
        NF.conv2d(x, w, groups=3)
    with pytest.raises(ValueError, match="conv2d: groups must be a positive int, got 0"):
        NF.conv2d(x, w, groups=0)
    with pytest.raises(ValueError, match=r"do not fit groups=4"):
        NF.conv2d(x, tg.zeros(4, 1, 3, 3), groups=4)  # 6 input channels in 4 groups
