"""The activations and tensor functions added for PyTorch's API breadth (hardswish, prelu, rrelu,
atan2, cummax, logcumsumexp, Tensor.unfold, kron, cross, ...): values, dtypes and gradients
against PyTorch when it is installed (inf and nan inputs, kinks and ties included), fixed values
always, PyTorch's errors, the in-place spellings and the modules. Their float64 gradients are
property-tested against finite differences in tests/test_ops_check.py."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the oracle is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")
nan, inf = float("nan"), float("inf")

# kinks, corners, ties, and the non-finite values
EDGES = [-inf, -7.0, -3.0, -2.5, -1.0, -0.5, -0.25, 0.0, -0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 6.5, inf, nan]

# name -> f(lib, F, x) over one float tensor
UNARY: dict[str, Callable[[Any, Any, Any], Any]] = {
    "hardsigmoid": lambda lib, F, x: F.hardsigmoid(x),
    "hardswish": lambda lib, F, x: F.hardswish(x),
    "selu": lambda lib, F, x: F.selu(x),
    "celu": lambda lib, F, x: F.celu(x, 0.7),
    "elu": lambda lib, F, x: F.elu(x, 1.3),
    "threshold": lambda lib, F, x: F.threshold(x, 0.5, -4.0),
    "hardshrink": lambda lib, F, x: F.hardshrink(x),
    "softshrink": lambda lib, F, x: F.softshrink(x, 1.0),
    "tanhshrink": lambda lib, F, x: F.tanhshrink(x),
    "rrelu eval": lambda lib, F, x: F.rrelu(x, 0.1, 0.3),
    "prelu one slope": lambda lib, F, x: F.prelu(x, lib.tensor([0.2], dtype=x.dtype)),
    "leaky_relu": lambda lib, F, x: F.leaky_relu(x, 0.2),
    "exp2": lambda lib, F, x: lib.exp2(x),
    "erfc": lambda lib, F, x: lib.erfc(x),
    "sgn": lambda lib, F, x: lib.sgn(x),
    "sign": lambda lib, F, x: x.sign(),
    "floor": lambda lib, F, x: x.floor(),
    "ceil": lambda lib, F, x: lib.ceil(x),
    "round": lambda lib, F, x: x.round(),
    "round(decimals)": lambda lib, F, x: lib.round(x, decimals=1),
    "trunc": lambda lib, F, x: x.trunc(),
    "fix": lambda lib, F, x: lib.fix(x),
    "positive": lambda lib, F, x: lib.positive(x) * 1,
}


def _value_and_grad(lib: Any, F: Any, fn: Callable[..., Any], values: Any, dtype: Any) -> tuple[np.ndarray, Any]:
    x = lib.tensor(values, dtype=dtype, requires_grad=True)
    y = fn(lib, F, x)
    y.backward(lib.ones_like(y))
    return y.detach().numpy(), x.grad.numpy(force=True)  # force: PyTorch's sgn gives a ZeroTensor


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_matches_pytorch_at_edges(name: str, dtype: str) -> None:
    fn = UNARY[name]
    ours, our_grad = _value_and_grad(tg, F, fn, EDGES, getattr(tg, dtype))
    theirs, their_grad = _value_and_grad(torch, TF, fn, EDGES, getattr(torch, dtype))
    assert ours.dtype == theirs.dtype
    rtol = 1e-6 if dtype == "float64" else 3e-6
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-30, err_msg=f"{name} values")
    np.testing.assert_allclose(our_grad, their_grad, rtol=rtol, atol=1e-30, err_msg=f"{name} gradients")
    np.testing.assert_array_equal(np.signbit(ours[ours == 0]), np.signbit(theirs[theirs == 0]), err_msg="-0.0")
    constant = fn(tg, F, tg.tensor(EDGES, dtype=getattr(tg, dtype))).numpy()  # the path without a graph
    np.testing.assert_allclose(constant, ours, rtol=rtol, atol=1e-30, err_msg=f"{name} without grad")


A = [0.0, 0.0, -0.0, 1.0, 3.0, -5.0, 2.0, 2.0, nan, 2.0, nan, 1e30, -inf, 4.0, inf]
B = [0.0, -0.0, 0.0, 1.0, -4.0, 0.0, 2.0, -2.0, 1.0, nan, nan, 1e30, 3.0, inf, 7.0]
# (name, f(lib, a, b), positions whose gradient is allowed to differ: see docs/pytorch.md)
BINARY: list[tuple[str, Callable[[Any, Any, Any], Any], tuple[int, ...]]] = [
    ("atan2", lambda lib, a, b: lib.atan2(a, b), (11, 12, 13, 14)),  # PyTorch: x/(x²+y²) overflows or is nan
    ("arctan2", lambda lib, a, b: a.arctan2(b), (11, 12, 13, 14)),
    ("hypot", lambda lib, a, b: lib.hypot(a, b), ()),
    ("fmax", lambda lib, a, b: lib.fmax(a, b), ()),
    ("fmin", lambda lib, a, b: a.fmin(b), ()),
    ("copysign", lambda lib, a, b: lib.copysign(a, b), (12, 14)),  # PyTorch: inf / inf = nan, here ±1
    ("logaddexp2", lambda lib, a, b: lib.logaddexp2(a, b), ()),
    ("kron", lambda lib, a, b: lib.kron(a[:4], b[:3]), ()),
]


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, fn, differ", BINARY, ids=[b[0] for b in BINARY])
def test_binary_matches_pytorch_at_edges(
    name: str, fn: Callable[..., Any], differ: tuple[int, ...], dtype: str
) -> None:
    def run(lib: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = lib.tensor(A, dtype=getattr(lib, dtype), requires_grad=True)
        b = lib.tensor(B, dtype=getattr(lib, dtype), requires_grad=True)
        y = fn(lib, a, b)
        y.backward(lib.ones_like(y))
        return y.detach().numpy(), a.grad.numpy(), b.grad.numpy()

    ours, theirs = run(tg), run(torch)
    assert ours[0].dtype == theirs[0].dtype
    rtol = 1e-6 if dtype == "float64" else 3e-6
    np.testing.assert_allclose(ours[0], theirs[0], rtol=rtol, err_msg=f"{name} values")
    keep = np.setdiff1d(np.arange(len(A)), differ)
    for o, t in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(o[keep], t[keep], rtol=rtol, atol=1e-30, err_msg=f"{name} gradients")


def test_gradients_where_pytorch_gives_nan_are_the_limits() -> None:
    """The documented differences: the one-sided limits where PyTorch's formula divides inf by inf."""
    y = tg.tensor([inf, 1e30], dtype=tg.float64, requires_grad=True)
    x = tg.tensor([inf, 1e30], dtype=tg.float64, requires_grad=True)
    tg.atan2(y, x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -5e-31], rtol=1e-6)
    a = tg.tensor([-inf, inf], requires_grad=True)
    tg.copysign(a, tg.tensor([1.0, -1.0])).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [-1.0, -1.0])
    z = tg.tensor([-inf, 0.0, 1000.0], requires_grad=True)
    tg.logcumsumexp(z, 0).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [1.0, 1.0, 1.0])  # PyTorch: nan for the -inf


def test_fixed_values() -> None:
    x = tg.tensor([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0], requires_grad=True)
    np.testing.assert_allclose(F.hardswish(x).detach().numpy(), [0, 0, -0.375, 0, 1.125, 3, 4])
    F.hardswish(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 0, 0.5, 1, 1, 1])  # 0 at -3, 1 at 3 (PyTorch)
    np.testing.assert_allclose(F.hardsigmoid(x).detach().numpy(), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(F.softshrink(tg.tensor([-1.0, 0.3, 2.0])).numpy(), [-0.5, 0, 1.5])
    np.testing.assert_allclose(F.hardshrink(tg.tensor([-1.0, 0.5, 0.6])).numpy(), [-1, 0, 0.6])
    np.testing.assert_allclose(F.threshold(tg.tensor([0.1, 0.2, 0.3]), 0.2, 9.0).numpy(), [9, 9, 0.3])
    np.testing.assert_allclose(F.selu(tg.tensor([1.0])).numpy(), [1.0507009873554805], rtol=1e-7)
    np.testing.assert_allclose(F.glu(tg.tensor([[1.0, 2.0, 0.0, 0.0]])).numpy(), [[0.5, 1.0]])
    np.testing.assert_allclose(F.softmin(tg.tensor([0.0, np.log(3.0)]), 0).numpy(), [0.75, 0.25], rtol=1e-6)
    np.testing.assert_allclose(
        tg.atan2(tg.tensor([1.0, -1.0]), tg.tensor([-1.0, 0.0])).numpy(), [0.75 * np.pi, -np.pi / 2]
    )
    assert tg.atan2(tg.tensor([1]), tg.tensor([2])).dtype == tg.float32  # integers as floats
    assert tg.hypot(tg.tensor([3.0]), tg.tensor([4.0])).item() == 5.0
    np.testing.assert_allclose(tg.hypot(tg.tensor([1e30]), tg.tensor([1e30])).numpy(), [1.4142135e30], rtol=1e-6)
    assert tg.erfc(tg.tensor([10.0], dtype=tg.float64)).item() == pytest.approx(2.088487583762545e-45, rel=1e-14)
    np.testing.assert_array_equal(tg.signbit(tg.tensor([-0.0, 0.0, -1.0, nan])).numpy(), [True, False, True, False])
    np.testing.assert_array_equal(tg.isposinf(tg.tensor([inf, -inf, 1.0])).numpy(), [True, False, False])
    np.testing.assert_array_equal(tg.tensor([inf, -inf, 1.0]).isneginf().numpy(), [False, True, False])
    np.testing.assert_array_equal(
        tg.heaviside(tg.tensor([-1.0, 0.0, 2.0, nan]), tg.tensor([0.5])).numpy(), [0, 0.5, 1, 0]
    )
    np.testing.assert_array_equal(tg.sign(tg.tensor([nan, -2.0])).numpy(), [0.0, -1.0])  # PyTorch: sign(nan) = 0
    assert tg.exp2(tg.tensor([3])).item() == 8.0 and tg.exp2(tg.tensor([3])).dtype == tg.float32
    np.testing.assert_allclose(tg.logaddexp2(tg.tensor([1.0, inf]), tg.tensor([1.0, inf])).numpy(), [2.0, inf])


def test_roundings_and_sign_have_zero_gradients_as_pytorch() -> None:
    for op in ("sign", "sgn", "floor", "ceil", "round", "trunc", "fix"):
        x = tg.tensor([-inf, -1.5, 0.0, 2.5, inf, nan], requires_grad=True)
        y = getattr(x, op)()
        assert y.requires_grad, op
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros(6), err_msg=op)
        assert np.isinf(y.detach().numpy()[[0, 4]]).all() or op in ("sign", "sgn"), op  # inf stays inf
    with tg.no_grad():
        assert not tg.tensor([1.5], requires_grad=True).floor().requires_grad


def test_cummax_cummin_ties_and_nan() -> None:
    x = tg.tensor([1.0, 3.0, 3.0, nan, 2.0, nan, 5.0], requires_grad=True)
    values, indices = tg.cummax(x, 0)
    np.testing.assert_array_equal(indices.numpy(), [0, 1, 2, 3, 3, 5, 5])  # the last of a tie; nan sticks
    np.testing.assert_array_equal(values.detach().numpy(), [1, 3, 3, nan, nan, nan, nan])
    values.backward(tg.arange(1.0, 8.0))
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3, 9, 0, 13, 0])  # to the index, as PyTorch
    assert x.cummin(0).indices.tolist() == [0, 0, 0, 3, 3, 5, 5]
    assert tg.cummax(tg.tensor([1, 0, 2]), 0).values.tolist() == [1, 1, 2]  # integers too
    r = tg.cummax(tg.tensor(2.0), 0)
    assert r.values.item() == 2.0 and r.indices.item() == 0 and r.indices.dtype == tg.int64


def _arrays(draw: Any, max_dims: int = 3) -> np.ndarray:
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_dims))
    values = draw(st.lists(st.integers(-2, 2), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(values, dtype=np.float64).reshape(shape)  # few values: many ties


@needs_torch
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_scans_match_pytorch(data: Any) -> None:
    a = _arrays(data.draw)
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    w = np.random.default_rng(0).standard_normal(a.shape)
    for name in ("cummax", "cummin", "logcumsumexp"):
        outs = []
        for lib in (tg, torch):
            x = lib.tensor(a, requires_grad=True)
            out = getattr(lib, name)(x, dim)
            values = out if name == "logcumsumexp" else out.values
            (values * lib.tensor(w)).sum().backward()
            index = None if name == "logcumsumexp" else out.indices.numpy()
            outs.append((values.detach().numpy(), index, x.grad.numpy()))
        (v, i, g), (tv, ti, tgrad) = outs
        np.testing.assert_allclose(v, tv, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(g, tgrad, rtol=1e-10, atol=1e-12, err_msg=name)
        if i is not None:
            np.testing.assert_array_equal(i, ti, err_msg=name)


@needs_torch
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_tensor_unfold_matches_pytorch(data: Any) -> None:
    a = _arrays(data.draw)
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    size = data.draw(st.integers(0, a.shape[dim]))
    step = data.draw(st.integers(1, 3))
    outs = []
    for lib in (tg, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x.unfold(dim, size, step)
        y.backward(lib.tensor(np.arange(y.numel(), dtype=np.float64).reshape(tuple(y.shape))))
        outs.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])  # overlapping windows add up


@needs_torch
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_kron_matches_pytorch(data: Any) -> None:
    a, b = _arrays(data.draw), _arrays(data.draw)
    outs = []
    for lib in (tg, torch):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        z = lib.kron(x, y)
        z.backward(lib.tensor(np.arange(z.numel(), dtype=np.float64).reshape(tuple(z.shape))))
        outs.append((z.detach().numpy(), x.grad.numpy(), y.grad.numpy()))
    for o, t in zip(*outs):
        np.testing.assert_array_equal(o, t)


@needs_torch
def test_cross_matches_pytorch() -> None:
    rng = np.random.default_rng(1)
    a, b, g = rng.standard_normal((2, 3, 4)), rng.standard_normal((1, 3, 4)), rng.standard_normal((2, 3, 4))
    for kwargs in ({"dim": 1}, {"dim": -2}, {}):
        outs = []
        for lib in (tg, torch):
            x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                z = lib.cross(x, y, **kwargs)
            assert bool(caught) == (not kwargs)  # PyTorch's deprecation warning without dim
            z.backward(lib.tensor(g))
            outs.append((z.detach().numpy(), x.grad.numpy(), y.grad.numpy()))
        for o, t in zip(*outs):
            np.testing.assert_allclose(o, t, rtol=1e-12)
    np.testing.assert_array_equal(tg.linalg.cross(tg.tensor([1.0, 0, 0]), tg.tensor([0.0, 1, 0])).numpy(), [0, 0, 1])


def test_errors_as_pytorch() -> None:
    cases: list[tuple[Callable[[], Any], type[BaseException], str]] = [
        (lambda: F.softshrink(tg.ones(2), -1.0), RuntimeError, "lambda must be greater or equal to 0"),
        (lambda: F.glu(tg.ones(3)), RuntimeError, "Halving dimension must be even, but dimension 0 is size 3"),
        (lambda: F.glu(tg.tensor(1.0)), RuntimeError, "glu does not support scalars"),
        (lambda: F.celu(tg.ones(2), 0.0), RuntimeError, "alpha cannot be 0 for CELU"),
        (lambda: F.prelu(tg.ones(2, 3), tg.ones(2)), RuntimeError, "parameter numbers = 2 and channel size = 3"),
        (lambda: F.prelu(tg.tensor(1.0), tg.ones(2)), RuntimeError, "Not allow zero-dim input tensor"),
        (lambda: F.prelu(tg.ones(2, 3), tg.ones(1, 3)), RuntimeError, "scalar or 1D tensor"),
        (lambda: F.rrelu(tg.ones(2), 0.5, 0.1), RuntimeError, "Lower bound should be less than or equal"),
        (lambda: tg.ones(3).unfold(0, 4, 1), RuntimeError, "maximum size for tensor at dimension 0 is 3 but size is 4"),
        (lambda: tg.ones(3).unfold(0, 2, 0), RuntimeError, "step is 0 but must be > 0"),
        (lambda: tg.cross(tg.ones(2, 2), tg.ones(2, 2)), RuntimeError, "no dimension of size 3"),
        (lambda: tg.cross(tg.ones(3, 2), tg.ones(3, 2), dim=1), RuntimeError, "must have length 3. Got 2 and 2"),
        (lambda: tg.heaviside(tg.ones(2), tg.ones(2, dtype=tg.float64)), RuntimeError, "different dtypes"),
        (lambda: tg.positive(tg.ones(2, dtype=tg.bool)), RuntimeError, "on a bool tensor is not supported"),
        (lambda: tg.hypot(tg.tensor([3]), tg.tensor([4])), NotImplementedError, "hypot"),
        (lambda: tg.logcumsumexp(tg.tensor([1, 2]), 0), NotImplementedError, "logcumsumexp"),
        (lambda: tg.cummax(tg.ones(2), 1), ValueError, "cummax"),
        (lambda: F.selu_(tg.ones(2, requires_grad=True)), RuntimeError, "a leaf Variable that requires grad"),
    ]
    for fn, error, message in cases:
        with pytest.raises(error, match=message):
            fn()


# name -> f(F, x): the in-place spelling, and the out-of-place one it must equal
INPLACE: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = {
    "relu_": (lambda F, x: F.relu_(x), lambda F, x: F.relu(x)),
    "elu_": (lambda F, x: F.elu_(x, 0.5), lambda F, x: F.elu(x, 0.5)),
    "leaky_relu_": (lambda F, x: F.leaky_relu_(x, 0.2), lambda F, x: F.leaky_relu(x, 0.2)),
    "hardtanh_": (lambda F, x: F.hardtanh_(x, -0.5, 0.5), lambda F, x: F.hardtanh(x, -0.5, 0.5)),
    "threshold_": (lambda F, x: F.threshold_(x, 0.1, 2.0), lambda F, x: F.threshold(x, 0.1, 2.0)),
    "celu_": (lambda F, x: F.celu_(x, 2.0), lambda F, x: F.celu(x, 2.0)),
    "selu_": (lambda F, x: F.selu_(x), lambda F, x: F.selu(x)),
    "rrelu_ eval": (lambda F, x: F.rrelu_(x), lambda F, x: F.rrelu(x)),
    "relu6 inplace": (lambda F, x: F.relu6(x, inplace=True), lambda F, x: F.relu6(x)),
    "silu inplace": (lambda F, x: F.silu(x, inplace=True), lambda F, x: F.silu(x)),
    "mish inplace": (lambda F, x: F.mish(x, inplace=True), lambda F, x: F.mish(x)),
    "hardswish inplace": (lambda F, x: F.hardswish(x, inplace=True), lambda F, x: F.hardswish(x)),
    "hardsigmoid inplace": (lambda F, x: F.hardsigmoid(x, inplace=True), lambda F, x: F.hardsigmoid(x)),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_spellings_write_into_the_input(name: str) -> None:
    inplace, plain = INPLACE[name]
    values = np.array([-2.0, -0.3, 0.0, 0.4, 3.0])
    x = tg.tensor(values)
    view = x[1:]
    assert inplace(F, x) is x  # returned, and written where views see it
    want = plain(F, tg.tensor(values)).numpy()
    np.testing.assert_allclose(x.numpy(), want, rtol=1e-7)
    np.testing.assert_allclose(view.numpy(), want[1:], rtol=1e-7)
    # recorded on an intermediate: the gradient through the earlier value is right
    a = tg.tensor(values, requires_grad=True)
    h = a * 2
    inplace(F, h)
    (h * h).sum().backward()
    b = tg.tensor(values, requires_grad=True)
    (plain(F, b * 2) ** 2).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-7)
    if torch is not None and name in ("relu_", "elu_", "leaky_relu_", "hardtanh_", "threshold_", "celu_", "selu_"):
        t = torch.tensor(values)
        getattr(TF, name)(t, *{"elu_": (0.5,), "leaky_relu_": (0.2,), "hardtanh_": (-0.5, 0.5),
                               "threshold_": (0.1, 2.0), "celu_": (2.0,)}.get(name, ()))  # fmt: skip
        np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-7)


def test_modules() -> None:
    x = tg.tensor(np.linspace(-4, 4, 24).reshape(2, 3, 4), dtype=tg.float32)
    layers = [
        (nn.Hardswish(), "Hardswish()"),
        (nn.Hardsigmoid(inplace=True), "Hardsigmoid()"),  # PyTorch's repr leaves inplace out
        (nn.SELU(), "SELU()"),
        (nn.CELU(2.0, inplace=True), "CELU(alpha=2.0, inplace=True)"),
        (nn.Threshold(0.1, 20.0), "Threshold(threshold=0.1, value=20.0)"),
        (nn.Softmin(1), "Softmin(dim=1)"),
        (nn.Hardshrink(), "Hardshrink(0.5)"),
        (nn.Softshrink(0.3), "Softshrink(0.3)"),
        (nn.Tanhshrink(), "Tanhshrink()"),
        (nn.GLU(), "GLU(dim=-1)"),
        (nn.RReLU(0.1, 0.2), "RReLU(lower=0.1, upper=0.2)"),
        (nn.PReLU(3), "PReLU(num_parameters=3)"),
    ]
    for layer, text in layers:
        assert repr(layer) == text
        if torch is not None:
            assert repr(eval("torch.nn." + text.replace("Hardsigmoid()", "Hardsigmoid(inplace=True)"))) == text
        out = layer(x.clone())
        assert out.shape == ((2, 3, 2) if text.startswith("GLU") else x.shape)
    p = nn.PReLU(3, init=0.1)
    assert list(p.state_dict()) == ["weight"] and p.weight.tolist() == pytest.approx([0.1] * 3)
    assert isinstance(p.weight, nn.Parameter) and p.weight.dtype == tg.float32
    p(x).sum().backward()
    np.testing.assert_allclose(p.weight.grad.numpy(), x.numpy().clip(None, 0).sum((0, 2)), rtol=1e-6)
    assert nn.PReLU(dtype=tg.float64).weight.dtype == tg.float64


@needs_torch
def test_prelu_gradients_match_pytorch() -> None:
    a = np.array([[[-1.0, 0.0, inf], [3.0, -0.5, 0.0]]])  # (1, 2, 3): two channels, kinks at 0, inf
    w = np.array([0.2, -0.3])
    outs = []
    for lib, F_ in ((tg, F), (torch, TF)):
        x, wt = lib.tensor(a, requires_grad=True), lib.tensor(w, requires_grad=True)
        y = F_.prelu(x, wt)
        y.backward(lib.tensor(np.arange(6.0).reshape(1, 2, 3)))
        outs.append((y.detach().numpy(), x.grad.numpy(), wt.grad.numpy()))
    for o, t in zip(*outs):
        np.testing.assert_allclose(o, t, rtol=1e-12)
    assert tg.tensor([-1.0, 2.0]).prelu(tg.tensor([0.5])).tolist() == [-0.5, 2.0]


def test_rrelu_training_draws_a_slope_per_element() -> None:
    layer = nn.RReLU(0.1, 0.3)
    x = tg.full((4000,), -1.0, requires_grad=True)
    tg.manual_seed(3)
    y = layer(x)
    slopes = -y.detach().numpy()
    assert 0.1 <= slopes.min() and slopes.max() <= 0.3 and slopes.std() > 0.05
    assert abs(slopes.mean() - 0.2) < 0.01
    tg.manual_seed(3)
    np.testing.assert_array_equal(layer(x).detach().numpy(), y.detach().numpy())  # the library's generator
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), slopes)  # the drawn slope is the gradient
    np.testing.assert_array_equal(layer(tg.tensor([2.0, 0.0])).numpy(), [2.0, 0.0])
    layer.eval()
    np.testing.assert_allclose(layer(tg.tensor([-1.0, 2.0])).numpy(), [-0.2, 2.0], rtol=1e-6)


def test_tensor_properties_and_aliases() -> None:
    t = tg.ones(2, 3)
    assert (t.nbytes, t.itemsize, t.is_cpu) == (24, 4, True)
    assert tg.ones(2, dtype=tg.float64).nbytes == 16
    assert [tg.ones(1, dtype=d).is_signed() for d in (tg.float32, tg.int64, tg.uint8, tg.bool)] == [
        True,
        True,
        False,
        False,
    ]
    assert tg.is_signed(tg.ones(1)) and tg.is_floating_point(tg.ones(1)) and not tg.is_floating_point(tg.tensor([1]))
    a, b = tg.tensor([1.0, 2.0, 3.0]), tg.tensor([2.0, 2.0, 2.0])
    assert a.less(b).tolist() == [True, False, False] and tg.less(a, b).tolist() == [True, False, False]
    assert a.less_equal(b).tolist() == [True, True, False] and tg.less_equal(a, b).tolist() == [True, True, False]
    assert a.greater_equal(b).tolist() == [False, True, True] and tg.greater_equal(a, b).tolist() == [False, True, True]
    assert a.not_equal(b).tolist() == [True, False, True] and tg.not_equal(a, b).tolist() == [True, False, True]
    assert a.multiply(b).tolist() == [2, 4, 6] and a.subtract(b, alpha=2).tolist() == [-3, -2, -1]
    assert tg.greater(a, b).tolist() == [False, False, True]
    c = tg.tensor([1.0, -1.0], requires_grad=True)
    assert tg.positive(c) is c


def test_new_names_are_listed() -> None:
    for name in ("atan2", "arctan2", "hypot", "cummax", "cummin", "logcumsumexp", "erfc", "exp2", "logaddexp2",
                 "sgn", "signbit", "positive", "fix", "copysign", "fmax", "fmin", "heaviside", "isposinf",
                 "isneginf", "kron", "cross", "selu", "celu", "prelu", "rrelu", "threshold", "hardshrink"):  # fmt: skip
        assert hasattr(tg, name) and hasattr(tg.Tensor, name) or name in ("selu", "celu", "rrelu", "threshold"), name
    for name in F.__all__:
        assert hasattr(F, name)
        if torch is not None:
            assert hasattr(TF, name), name
    for name in ("PReLU", "Hardswish", "Hardsigmoid", "SELU", "CELU", "Threshold", "Softmin", "Hardshrink",
                 "Softshrink", "Tanhshrink", "GLU", "RReLU"):  # fmt: skip
        assert name in nn.__all__ and issubclass(getattr(nn, name), nn.Module)


def test_modules_with_inplace_write_into_their_input() -> None:
    """nn.ReLU(inplace=True) and friends mean PyTorch's: the input is overwritten and returned,
    and a model using them trains with the same gradients as without."""
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    for make in (
        lambda inplace: nn.ReLU(inplace=inplace),
        lambda inplace: nn.LeakyReLU(0.1, inplace=inplace),
        lambda inplace: nn.ELU(inplace=inplace),
        lambda inplace: nn.SELU(inplace=inplace),
        lambda inplace: nn.Hardswish(inplace=inplace),
        lambda inplace: nn.Threshold(0.2, -1.0, inplace=inplace),
        lambda inplace: nn.RReLU(inplace=inplace).eval(),
    ):
        grads = []
        for inplace in (False, True):
            weight = tg.tensor(w, requires_grad=True)
            h = tg.tensor(x) @ weight.T
            out = make(inplace)(h)
            assert (out is h) == inplace
            (out * out).sum().backward()
            grads.append(weight.grad.numpy())
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        nn.ReLU(inplace=True)(tg.ones(2, requires_grad=True))  # PyTorch's error too
