"""Numeric edge cases that must not be silently wrong, each against the figure PyTorch gives.

float16 reductions (PyTorch reduces float16 in float32), masked (-inf) logits in cross-entropy,
softplus at infinity, and no bare NumPy RuntimeWarnings from inside the library on Inf/NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F
from tinygrad_cnn.nn import loss as L

INF = np.inf


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ----------------------------------------------------------------------------------------------------
# float16 reductions: the element count and the sum overflow float16 (max 65504)


@pytest.mark.parametrize(
    "n, value, expected",  # PyTorch 2.13: torch.full((n,), value, dtype=torch.float16).mean()
    [(70_000, 0.001, 0.0010004043579101562), (100_000, 1.0, 1.0), (3, 2.0, 2.0)],
)
def test_float16_mean_reduces_in_float32(n, value, expected):
    x = tg.Tensor(np.full(n, value, np.float16), requires_grad=True)
    m = x.mean()
    assert m.dtype == np.float16 and float(m.data) == expected
    m.backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad, np.float16(1 / n), rtol=1e-3)


@pytest.mark.parametrize("mse", [F.mse_loss, L.mse_loss], ids=["functional", "nn.loss"])
def test_float16_mse_loss_of_a_batch(mse):
    a = tg.Tensor(np.full((128, 784), 0.5, np.float16))
    assert float(mse(a, np.zeros((128, 784), np.float16)).data) == 0.25  # PyTorch: 0.25 (we had 0.0)


@pytest.mark.parametrize("ddof", [0, 1])
def test_float16_var_of_values_near_300(ddof):
    v = (300 + np.random.default_rng(0).standard_normal(1000)).astype(np.float16)
    got = F.var(tg.Tensor(v), ddof=ddof)
    assert got.dtype == np.float16 and np.isfinite(got.data)  # we had inf
    np.testing.assert_allclose(float(got.data), np.var(v.astype(np.float64), ddof=ddof), rtol=2e-3)
    torch = torch_or_none()
    if torch is not None:
        assert float(got.data) == torch.from_numpy(v).var(correction=ddof).item()


# ----------------------------------------------------------------------------------------------------
# Masked logits and softplus at infinity


@pytest.mark.parametrize("cross_entropy", [F.cross_entropy, L.cross_entropy], ids=["functional", "nn.loss"])
def test_cross_entropy_with_a_masked_logit(cross_entropy):
    x = tg.Tensor([[0.0, -INF, 1.0]], requires_grad=True)
    loss = cross_entropy(x, np.array([0]))
    loss.backward()
    # PyTorch 2.13: 1.31326162815094, gradient [[-0.7311, 0, 0.7311]]
    np.testing.assert_allclose(float(loss.data), 1.31326162815094, rtol=1e-6)
    np.testing.assert_allclose(x.grad, [[-0.7310586, 0.0, 0.7310586]], rtol=1e-6)


def test_nll_loss_with_class_weights_and_a_masked_logit():
    x = tg.Tensor([[0.0, -INF, 1.0]], requires_grad=True)
    loss = L.nll_loss(F.log_softmax(x, 1), np.array([0]), weight=np.array([1.0, 2.0, 3.0], np.float32))
    np.testing.assert_allclose(float(loss.data), 1.31326162815094, rtol=1e-6)  # PyTorch's figure


def test_softplus_at_infinity():
    x = tg.Tensor(np.array([INF, -INF, 0.0, 30.0, np.nan], np.float32), requires_grad=True)
    y = F.softplus(x)
    y.sum().backward()
    # PyTorch 2.13: [inf, 0, 0.6931, 30, nan], gradient [1, 0, 0.5, 1, nan]
    np.testing.assert_allclose(y.data, [INF, 0.0, 0.6931472, 30.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(x.grad, [1.0, 0.0, 0.5, 1.0, np.nan], rtol=1e-6)


def test_edge_cases_against_torch():
    torch = pytest.importorskip("torch")
    logits = np.array([[0.0, -INF, 1.0], [-INF, 2.0, 0.5], [3.0, 1.0, -INF]], np.float32)
    target = np.array([0, 2, 1])
    for cross_entropy in (F.cross_entropy, L.cross_entropy):
        x, tx = tg.Tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
        loss, tloss = cross_entropy(x, target), torch.nn.functional.cross_entropy(tx, torch.from_numpy(target))
        loss.backward()
        tloss.backward()
        np.testing.assert_allclose(float(loss.data), tloss.item(), rtol=1e-6)
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-7)
    values = np.array([INF, -INF, 0.0, 30.0, -30.0, np.nan], np.float32)
    x, tx = tg.Tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    F.softplus(x).sum().backward()
    torch.nn.functional.softplus(tx).sum().backward()
    # atol: softplus(-30) = 9.4e-14 is 0 here (log(1 + tiny) in float32; PyTorch uses log1p)
    np.testing.assert_allclose(
        F.softplus(tg.Tensor(values)).data, torch.nn.functional.softplus(tx).detach(), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------------------------------
# A selection's gradient is 0 where it sends nothing, even when the incoming gradient is inf or NaN
# (PyTorch's threshold_backward and max-pool's scatter; g * mask would make NaN of inf * 0)

SELECTIONS = {
    "relu": lambda x: F.relu(x),
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "max_pool2d_after_conv": lambda x: F.max_pool2d(x.permute(2, 3, 0, 1), 2),  # batch-inner memory
    "max(dim)": lambda x: x.max(1)[0],
    "min(dim)": lambda x: x.min(1)[0],
    "max_of_many": lambda x: x.reshape(x.shape[0], -1).max(1)[0],  # the argmax path (long rows)
}


def _selection_input(name: str, big: bool) -> np.ndarray:
    shape = (64, 16, 24, 24) if big else (2, 3, 4, 4)  # big: the kernels' slabs and threads
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[:, :, ::3, ::2] = 0.0  # ties and relu's kink
    if name == "max_pool2d_after_conv":
        x = np.ascontiguousarray(x.transpose(2, 3, 0, 1))
    return x


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
@pytest.mark.parametrize("create_graph", [False, True], ids=["plain", "recorded"])
@pytest.mark.parametrize("name", list(SELECTIONS))
def test_a_selection_sends_no_inf_or_nan_where_it_selects_nothing(name, create_graph, big):
    x = tg.Tensor(_selection_input(name, big), requires_grad=True)
    y = SELECTIONS[name](x)
    rng = np.random.default_rng(1)
    g = rng.standard_normal(y.shape).astype(np.float32)
    specials = np.array([INF, np.nan, -INF, INF, np.nan], np.float32)[: g.size]
    g.reshape(-1)[rng.choice(g.size, len(specials), replace=False)] = specials
    (dx,) = tg.autograd.grad(y, x, tg.Tensor(g), create_graph=create_graph)
    # where each output's gradient lands: the gradient of 1, 2, 3, ... (exact in float32), 0 for none
    x2 = tg.Tensor(x.detach().numpy(), requires_grad=True)
    labels = np.arange(1, g.size + 1, dtype=np.float32).reshape(g.shape)
    (landed,) = tg.autograd.grad(SELECTIONS[name](x2), x2, tg.Tensor(labels))
    source = landed.numpy().astype(np.int64)
    expected = np.where(source > 0, g.reshape(-1)[np.maximum(source, 1) - 1], np.float32(0))
    np.testing.assert_array_equal(dx.detach().numpy(), expected)
    torch = torch_or_none()
    if torch is not None and name != "max_pool2d_after_conv":
        tx = torch.tensor(x.detach().numpy(), requires_grad=True)
        tfn = {
            "relu": torch.relu,
            "max_pool2d": lambda t: torch.nn.functional.max_pool2d(t, 2),
            "max(dim)": lambda t: t.max(1)[0],
            "min(dim)": lambda t: t.min(1)[0],
            "max_of_many": lambda t: t.reshape(t.shape[0], -1).max(1)[0],
        }[name]
        (tdx,) = torch.autograd.grad(tfn(tx), tx, torch.from_numpy(g))
        np.testing.assert_array_equal(dx.detach().numpy(), tdx.numpy())


def test_relu_passes_the_gradient_where_its_input_is_nan():
    # PyTorch: relu's backward is ``y <= 0 ? 0 : g``, so a NaN input gets g
    for create_graph in (False, True):
        x = tg.Tensor(np.array([np.nan, -1.0, 0.0, 2.0], np.float32), requires_grad=True)
        (dx,) = tg.autograd.grad(F.relu(x), x, tg.Tensor(np.ones(4, np.float32)), create_graph=create_graph)
        np.testing.assert_array_equal(dx.detach().numpy(), [1.0, 0.0, 0.0, 1.0])


# ----------------------------------------------------------------------------------------------------
# No bare RuntimeWarnings from inside the library on Inf/NaN (PyTorch prints none either)

VALUES = np.array([[INF, -INF, 0.0, 1.0, -1.0, np.nan]], np.float32)
OPS = {
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "sqrt": lambda x: x.sqrt(),
    "pow": lambda x: x**0.5,
    "reciprocal": lambda x: 1 / x,
    "div": lambda x: x / x,
    "sub": lambda x: x - x,
    "mul": lambda x: x * x,
    "add": lambda x: x + x,
    "sum": lambda x: x.sum(),
    "mean": lambda x: x.mean(),
    "var": lambda x: F.var(x),
    "softplus": F.softplus,
    "sigmoid": F.sigmoid,
    "log_softmax": lambda x: F.log_softmax(x, 1),
    "logsumexp": lambda x: F.logsumexp(x, 1),
    "cross_entropy": lambda x: F.cross_entropy(x, [0]),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, np.ones_like(VALUES)),
    "bce": lambda x: F.binary_cross_entropy(F.sigmoid(x), np.ones_like(VALUES)),
    "linear": lambda x: F.linear(x, tg.Tensor(np.ones((2, 6), np.float32))),
    "where": lambda x: F.where(VALUES > 0, x, x * 2),
}


@pytest.mark.parametrize("name", list(OPS))
def test_no_runtime_warnings_from_the_library_on_inf_and_nan(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", append=True)  # shows everything the library does not silence
        x = tg.Tensor(VALUES.copy(), requires_grad=True)
        y = OPS[name](x)
        (y.sum() if y.numel() > 1 else y).backward()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


def test_runtime_warnings_of_user_code_are_left_alone():
    # also right after the library silenced them around each forward and a whole backward sweep
    (1 / tg.Tensor(VALUES.copy(), requires_grad=True)).sum().backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", append=True)
        np.log(np.zeros(1))
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_anomaly_error_is_a_runtime_error_as_in_pytorch():
    with pytest.raises(RuntimeError, match="Log"), tg.detect_anomaly():
        tg.Tensor([0.0], requires_grad=True).log()


def test_selection_by_bits_reads_any_nonzero_boolean_byte_as_true():
    # NumPy 1.24's comparisons of boolean arrays wrote 254 for True; read as int8 that was -2 (garbage values)
    from tinygrad_cnn import kernels

    cond = np.tile(np.array([0, 1, 254, 2], np.uint8), 2048).view(bool)
    a = np.arange(cond.size, dtype=np.float32) + 1
    got = kernels.where(cond, a, np.zeros((), np.float32))
    np.testing.assert_array_equal(got, np.where(cond, a, np.float32(0)))
