"""Transposed convolution (``nn.functional.conv_transpose2d``, ``nn.ConvTranspose2d``): gradients
against finite differences in float64 over strides, paddings, output paddings, dilations, groups
and bias, to second order; PyTorch as an oracle (values and gradients, float64 and float32);
the layer's initialisation, ``output_size``, unbatched input, ``state_dict`` moving both ways;
errors that name the op and the shapes at fault.

The layer's uses were checked against the DCGAN generator of pytorch/examples (``dcgan/main.py``:
``ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False)`` then ``(ngf * 8, ngf * 4, 4, 2, 1, bias=False)``)
and U-Net style upsampling with ``output_size``; these tests are our own.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.nn.functional as NF
from tinygrad_cnn import nn
from tinygrad_cnn.testing import gradcheck, gradgradcheck

SEEDS = st.integers(0, 2**31 - 1)


class Case(NamedTuple):
    """One transposed convolution: its input and weight shapes and its arguments."""

    input_shape: tuple[int, int, int, int]
    weight_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    groups: int
    dilation: tuple[int, int]
    bias: bool

    def arguments(self) -> tuple[Any, ...]:
        """stride, padding, output_padding, groups, dilation: conv_transpose2d's order after the bias."""
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation


@st.composite
def cases(draw: Any, max_side: int = 3, max_channels: int = 2, max_groups: int = 3) -> Case:
    """Any valid geometry: output_padding smaller than the stride or the dilation, padding at most
    what keeps the output non-empty."""
    groups = draw(st.integers(1, max_groups))
    per_in, per_out = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    n = draw(st.integers(1, 2))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    side = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    output_padding = (
        draw(st.integers(0, max(stride[0], dilation[0]) - 1)),
        draw(st.integers(0, max(stride[1], dilation[1]) - 1)),
    )
    full = [(h - 1) * s + d * (k - 1) + 1 + e for h, s, d, k, e in zip(side, stride, dilation, kernel, output_padding)]
    padding = (draw(st.integers(0, min(2, (full[0] - 1) // 2))), draw(st.integers(0, min(2, (full[1] - 1) // 2))))
    return Case(
        (n, groups * per_in, *side),
        (groups * per_in, per_out, *kernel),
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        draw(st.booleans()),
    )


def array(shape: tuple[int, ...], seed: int, dtype: Any = np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def expected_size(case: Case) -> tuple[int, int]:
    """PyTorch's documented output size: (H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1."""
    sizes = zip(case.input_shape[2:], case.weight_shape[2:], case.stride, case.padding, case.dilation)
    op = case.output_padding
    h, w = ((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, k, s, p, d in sizes)
    return h + op[0], w + op[1]


@given(case=cases(), seed=SEEDS)
def test_conv_transpose2d_gradcheck(case, seed):
    x = tg.Tensor(array(case.input_shape, seed), requires_grad=True)
    w = tg.Tensor(array(case.weight_shape, seed + 1), requires_grad=True)
    c_out = case.weight_shape[1] * case.groups
    assert NF.conv_transpose2d(x, w, None, *case.arguments()).shape == (
        case.input_shape[0],
        c_out,
        *expected_size(case),
    )
    if case.bias:
        b = tg.Tensor(array((c_out,), seed + 2), requires_grad=True)
        assert gradcheck(lambda x_, w_, b_: NF.conv_transpose2d(x_, w_, b_, *case.arguments()), x, w, b)
    else:
        assert gradcheck(lambda x_, w_: NF.conv_transpose2d(x_, w_, None, *case.arguments()), x, w)


@settings(max_examples=8)
@given(case=cases(max_side=2, max_channels=1, max_groups=2), seed=SEEDS)
def test_conv_transpose2d_second_order(case, seed):
    """Double backward: the reverse-mode gradient (Fold's and Unfold's rules, the GEMM's) differentiated again."""
    x = tg.Tensor(array(case.input_shape, seed), requires_grad=True)
    w = tg.Tensor(array(case.weight_shape, seed + 1), requires_grad=True)
    b = tg.Tensor(array((case.weight_shape[1] * case.groups,), seed + 2)) if case.bias else None
    assert gradgradcheck(lambda x_, w_: NF.conv_transpose2d(x_, w_, b, *case.arguments()).tanh(), x, w)


def test_unbatched_input_is_one_image():
    x = tg.Tensor(array((3, 4, 5), 0), requires_grad=True)
    w = tg.Tensor(array((3, 2, 3, 3), 1))
    y = NF.conv_transpose2d(x, w, None, 2, 1, 1)
    batched = NF.conv_transpose2d(x.detach()[None], w, None, 2, 1, 1)
    assert y.shape == (2, 8, 10)
    np.testing.assert_allclose(y.detach().numpy(), batched.numpy()[0])
    assert gradcheck(lambda x_: NF.conv_transpose2d(x_, w, None, 2, 1, 1), x)


# --------------------------------------------------------------------------- PyTorch as the oracle


@settings(max_examples=25)
@given(case=cases(max_side=5, max_channels=3), seed=SEEDS)
def test_conv_transpose2d_against_torch(case, seed):
    torch = pytest.importorskip("torch")
    x_np, w_np = array(case.input_shape, seed), array(case.weight_shape, seed + 1)
    b_np = array((case.weight_shape[1] * case.groups,), seed + 2)
    results = []
    g_np = None
    for lib in (tg, torch):
        x, w = lib.tensor(x_np, requires_grad=True), lib.tensor(w_np, requires_grad=True)
        b = lib.tensor(b_np, requires_grad=True) if case.bias else None
        y = lib.nn.functional.conv_transpose2d(x, w, b, *case.arguments())
        if g_np is None:
            g_np = array(tuple(y.shape), seed + 3)
        y.backward(lib.tensor(g_np))
        results.append(
            [y.detach().numpy(), x.grad.numpy(), w.grad.numpy()] + ([b.grad.numpy()] if b is not None else [])
        )
    for ours, theirs in zip(*results):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "padding", "output_padding", "groups"),
    [
        (16, 8, 4, 2, 1, 0, 1),  # a DCGAN generator layer
        (8, 8, 2, 2, 0, 0, 1),  # U-Net upsampling: windows that tile the output
        (12, 6, 3, 2, 1, 1, 3),  # groups, output_padding
        (8, 8, 3, 1, 1, 0, 8),  # depthwise
    ],
)
def test_float32_training_shapes_against_torch(c_in, c_out, kernel, stride, padding, output_padding, groups):
    torch = pytest.importorskip("torch")
    x_np = array((4, c_in, 7, 6), 0, np.float32)
    w_np, b_np = array((c_in, c_out // groups, kernel, kernel), 1, np.float32), array((c_out,), 2, np.float32)
    results = []
    for lib in (tg, torch):
        x, w, b = (lib.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
        y = lib.nn.functional.conv_transpose2d(x, w, b, stride, padding, output_padding, groups)
        (y * y).sum().backward()
        results.append([t.detach().numpy() for t in (y, x.grad, w.grad, b.grad)])
    assert all(r.dtype == np.float32 for r in results[0])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-4 * np.abs(theirs).max())


def test_layer_state_dict_and_output_size_match_torch():
    """PyTorch's parameters load into ours and ours into PyTorch: the same outputs and gradients,
    with and without ``output_size`` (both the spatial size and the whole shape), batched and not."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, dilation=(1, 2)).double()
    ours = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, dilation=(1, 2), dtype=np.float64)
    assert repr(ours.load_state_dict(theirs.state_dict())) == "<All keys matched successfully>"
    assert list(ours.state_dict()) == ["weight", "bias"] and repr(ours) == repr(theirs)
    x_np = array((2, 6, 5, 4), 3)
    cases = [(x_np, None), (x_np, (10, 10)), (x_np, [2, 4, 9, 10]), (x_np[0], [4, 10, 9]), (x_np[1], (9, 9))]
    for inp, size in cases:
        x_t, x = torch.tensor(inp, requires_grad=True), tg.tensor(inp, requires_grad=True)
        y_t, y = theirs(x_t, output_size=size), ours(x, output_size=size)
        assert y.shape == tuple(y_t.shape)
        np.testing.assert_allclose(y.detach().numpy(), y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
        y_t.sum().backward()
        y.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), x_t.grad.numpy(), rtol=1e-12, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), dict(theirs.named_parameters())[name].grad.numpy(), rtol=1e-12)
    fresh = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, dilation=(1, 2)).double()
    fresh.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_array_equal(fresh(torch.from_numpy(x_np)).numpy(), theirs(torch.from_numpy(x_np)).numpy())


def test_output_size_picks_output_padding():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=(2, 3), padding=1)
    x = tg.zeros(1, 2, 4, 4)
    assert layer(x).shape == (1, 3, 7, 10)
    for size in [(7, 10), (8, 11), (8, 12)]:
        assert layer(x, output_size=size).shape == (1, 3, *size)
    with pytest.raises(
        ValueError, match=r"requested an output size of \(9, 10\), but valid sizes range from \(7, 10\) to \(8, 12\)"
    ):
        layer(x, output_size=(9, 10))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        layer(x, output_size=(1, 8, 10))
    with pytest.raises(TypeError, match=r"ConvTranspose2d: output_size must be a sequence of ints, got \(7.5, 10\)"):
        layer(x, output_size=(7.5, 10))


# --------------------------------------------------------------------------- the layer


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "groups"), [(64, 32, 4, 1), (16, 48, 3, 4)])
def test_initialisation_is_pytorchs(c_in, c_out, kernel, groups):
    """Uniform in ±1/sqrt(fan_in), PyTorch's kaiming_uniform_(a=sqrt(5)), the fan-in from the
    weight's second dimension: out_channels // groups * kh * kw (not in_channels as for Conv2d)."""
    layer = nn.ConvTranspose2d(c_in, c_out, kernel, groups=groups)
    bound = 1 / math.sqrt(c_out // groups * kernel * kernel)
    w = layer.weight.detach().numpy()
    assert w.shape == (c_in, c_out // groups, kernel, kernel) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # the uniform distribution's
    assert layer.bias is not None and np.abs(layer.bias.detach().numpy()).max() <= bound
    try:
        import torch
    except ImportError:
        return
    theirs = torch.nn.ConvTranspose2d(c_in, c_out, kernel, groups=groups).weight.detach().numpy()
    assert abs(np.abs(theirs).max() - np.abs(w).max()) < 0.05 * bound


def test_layer_options_and_repr():
    layer = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=(1, 0), output_padding=1, groups=2, bias=False)
    assert layer.bias is None and layer.weight.shape == (4, 3, 3, 2)
    assert repr(layer) == (
        "ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), output_padding=(1, 1), "
        "groups=2, bias=False)"
    )
    assert repr(nn.ConvTranspose2d(3, 2, 4)) == "ConvTranspose2d(3, 2, kernel_size=(4, 4), stride=(1, 1))"
    assert nn.ConvTranspose2d(3, 2, 4, dtype=np.float64).weight.dtype == np.float64
    assert layer(tg.zeros(2, 4, 3, 3)).shape == (2, 6, 6, 7)


# --------------------------------------------------------------------------- errors


def test_bad_input_names_the_op_and_shapes():
    x, w = tg.zeros(1, 4, 5, 5), tg.zeros(4, 2, 3, 3)
    op = "conv_transpose2d"
    with pytest.raises(
        ValueError,
        match=rf"{op}: output_padding \(1, 1\) must be smaller than either stride \(1, 1\) or dilation \(1, 1\)",
    ):
        NF.conv_transpose2d(x, w, output_padding=1)
    with pytest.raises(
        ValueError, match=rf"{op}: input has 3 channels \(shape \(1, 3, 5, 5\)\) but weight \(4, 2, 3, 3\) expects 4"
    ):
        NF.conv_transpose2d(tg.zeros(1, 3, 5, 5), w)
    with pytest.raises(
        ValueError, match=rf"{op}: input channels 4 \(weight \(4, 2, 3, 3\)\) are not divisible by groups=3"
    ):
        NF.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match=rf"{op}: groups must be a positive int, got 0"):
        NF.conv_transpose2d(x, w, groups=0)
    with pytest.raises(ValueError, match=rf"{op}: bias has shape \(4,\), expected \(2,\) for weight \(4, 2, 3, 3\)"):
        NF.conv_transpose2d(x, w, tg.zeros(4))
    with pytest.raises(ValueError, match=rf"{op}: weight must be 4-D"):
        NF.conv_transpose2d(x, tg.zeros(4, 2, 3))
    with pytest.raises(ValueError, match=rf"{op}: input must be 3-D \(C, H, W\) or 4-D"):
        NF.conv_transpose2d(tg.zeros(4, 5), w)
    with pytest.raises(ValueError, match=rf"{op}: .* gives output size \(-1, -1\), which is too small"):
        NF.conv_transpose2d(tg.zeros(1, 4, 1, 1), w, padding=2)
    with pytest.raises(ValueError, match=rf"{op}: padding must be >= 0"):
        NF.conv_transpose2d(x, w, padding=-1)
    with pytest.raises(TypeError, match=rf"{op}: input dtype float64 and weight dtype float32 differ"):
        NF.conv_transpose2d(x.double(), w)
    with pytest.raises(
        ValueError,
        match=r"ConvTranspose2d: in_channels \(4\) and out_channels \(6\) must both be divisible by groups \(4\)",
    ):
        nn.ConvTranspose2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="ConvTranspose2d: only padding_mode='zeros' is supported"):
        nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect")
