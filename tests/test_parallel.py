"""parallel.backward equals one backward over the whole batch; tune_allocator is harmless."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F
from tinygrad_cnn import nn, parallel
from tinygrad_cnn.memory import tune_allocator


def model_and_batch(n: int, dtype=np.float64):
    tg.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3 * 3 * 3, 4, dtype=dtype))
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((n, 1, 8, 8)).astype(dtype), rng.integers(0, 4, n)


@pytest.mark.parametrize("n,workers", [(8, 2), (7, 2), (5, 3), (6, 1), (2, 4)])
def test_sharded_gradients_equal_full_batch(n, workers):
    model, x, y = model_and_batch(n)
    loss = F.cross_entropy(model(tg.Tensor(x)), y)
    loss.backward()
    expected = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()

    def fn(xs, ys):
        logits = model(tg.Tensor(xs))
        return F.cross_entropy(logits, ys), logits.data

    value, extras = parallel.backward(fn, model.parameters(), x, y, workers=workers)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    for p, g in zip(model.parameters(), expected):
        assert p.grad.dtype == p.dtype
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(extras), model(tg.Tensor(x)).data)  # shards in batch order


def test_gradients_accumulate_like_backward():
    model, x, y = model_and_batch(4)
    fn = lambda xs, ys: F.cross_entropy(model(tg.Tensor(xs)), ys)  # noqa: E731
    parallel.backward(fn, model.parameters(), x, y, workers=2)
    once = [p.grad.copy() for p in model.parameters()]
    parallel.backward(fn, model.parameters(), x, y, workers=2)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g)


def test_float32_training_step_stays_float32():
    model, x, y = model_and_batch(6, np.float32)
    parallel.backward(lambda xs, ys: F.cross_entropy(model(tg.Tensor(xs)), ys), model.parameters(), x, y)
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_bad_arguments():
    model, x, y = model_and_batch(4)
    fn = lambda xs, ys: F.cross_entropy(model(tg.Tensor(xs)), ys)  # noqa: E731
    with pytest.raises(ValueError, match="different lengths"):
        parallel.backward(fn, model.parameters(), x, y[:3])
    with pytest.raises(ValueError, match="workers"):
        parallel.backward(fn, model.parameters(), x, y, workers=0)
    with pytest.raises(ValueError, match="scalar loss"):
        parallel.backward(lambda xs, ys: model(tg.Tensor(xs)), model.parameters(), x, y, workers=2)


def test_tune_allocator_keeps_results_identical():
    model, x, y = model_and_batch(4)
    before = F.cross_entropy(model(tg.Tensor(x)), y).item()
    assert isinstance(tune_allocator(), bool)
    assert F.cross_entropy(model(tg.Tensor(x)), y).item() == before
