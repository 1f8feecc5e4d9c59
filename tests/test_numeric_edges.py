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
