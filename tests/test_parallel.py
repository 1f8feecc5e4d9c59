"""parallel.backward equals one backward over the whole batch; map_batches and Module.predict equal one
forward in eval mode; tune_allocator is harmless."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F
from tinygrad_cnn import nn, parallel
from tinygrad_cnn.memory import tune_allocator


def model_and_batch(n: int, dtype=np.float64):
    tg.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4, dtype=dtype)
    )
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((n, 1, 8, 8)).astype(dtype), rng.integers(0, 4, n)


@pytest.mark.parametrize(
    "n,workers,shard_size",
    [
        (8, 2, None),
        (7, 2, None),
        (5, 3, None),
        (6, 1, None),
        (2, 4, None),
        (8, 2, 3),
        (9, 1, 2),
        (7, 3, 1),
        (4, 2, 100),
    ],
)
def test_sharded_gradients_equal_full_batch(n, workers, shard_size):
    model, x, y = model_and_batch(n)
    loss = F.cross_entropy(model(tg.Tensor(x)), y)
    loss.backward()
    expected = [p.grad.array.copy() for p in model.parameters()]
    model.zero_grad()

    def fn(xs, ys):
        logits = model(tg.Tensor(xs))
        return F.cross_entropy(logits, ys), logits.data

    value, extras = parallel.backward(fn, model.parameters(), x, y, workers=workers, shard_size=shard_size)
    if shard_size is not None:
        assert len(extras) == min(n, max(workers, -(-n // shard_size)))  # shards of at most shard_size
    assert value == pytest.approx(loss.item(), rel=1e-12)
    for p, g in zip(model.parameters(), expected):
        assert p.grad.dtype == p.dtype
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(extras), model(tg.Tensor(x)).data)  # shards in batch order


def test_gradients_accumulate_like_backward():
    model, x, y = model_and_batch(4)
    fn = lambda xs, ys: F.cross_entropy(model(tg.Tensor(xs)), ys)  # noqa: E731
    parallel.backward(fn, model.parameters(), x, y, workers=2)
    once = [p.grad.array.copy() for p in model.parameters()]
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
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="shard_size"):
            parallel.backward(fn, model.parameters(), x, y, shard_size=bad)
    with pytest.raises(ValueError, match="scalar loss"):
        parallel.backward(lambda xs, ys: model(tg.Tensor(xs)), model.parameters(), x, y, workers=2)


def test_tune_allocator_keeps_results_identical():
    model, x, y = model_and_batch(4)
    before = F.cross_entropy(model(tg.Tensor(x)), y).item()
    assert isinstance(tune_allocator(), bool)
    assert F.cross_entropy(model(tg.Tensor(x)), y).item() == before


@pytest.mark.parametrize("n,batch_size,workers", [(10, 3, 2), (10, 10, 2), (7, 2, 1), (5, 100, 3), (9, 1, 4)])
def test_predict_equals_one_forward_in_eval_mode(n, batch_size, workers):
    tg.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, dtype=np.float64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(27, 4, dtype=np.float64),
    )
    x = np.random.default_rng(1).standard_normal((n, 1, 8, 8))
    model.eval()
    with tg.no_grad():
        expected = model(tg.Tensor(x)).data
    model.train()
    got = model.predict(x, batch_size=batch_size, workers=workers)
    assert isinstance(got, tg.Tensor) and not got.requires_grad and got.is_leaf
    np.testing.assert_allclose(got.data, expected, rtol=1e-12, atol=1e-12)  # dropout off: eval mode
    assert model.training  # the mode is restored
    np.testing.assert_allclose(model.predict(tg.Tensor(x), batch_size, workers).data, expected, rtol=1e-12, atol=1e-12)


def test_predict_restores_the_mode_when_the_model_fails():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="linear"):
        model.predict(np.zeros((3, 5), np.float32), workers=2)
    assert model.training
    model.eval()
    model.predict(np.zeros((3, 4), np.float32))
    assert not model.training
    model.train()
    model[1].eval()  # a mixed mode comes back as it was
    model.predict(np.zeros((3, 4), np.float32))
    assert model.training and model[0].training and not model[1].training


def test_map_batches_checks_its_arguments_and_outputs():
    double = lambda t: t * 2.0  # noqa: E731
    np.testing.assert_array_equal(parallel.map_batches(double, np.arange(5.0), batch_size=2).data, np.arange(5.0) * 2)
    assert parallel.map_batches(double, np.zeros((0, 3))).shape == (0, 3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            parallel.map_batches(double, np.zeros(4), batch_size=bad)
        with pytest.raises(ValueError, match="workers"):
            parallel.map_batches(double, np.zeros(4), workers=bad)
    with pytest.raises(ValueError, match="0-d"):
        parallel.map_batches(double, np.float64(1.0))
    with pytest.raises(ValueError, match=r"one output per sample"):
        parallel.map_batches(lambda t: t.sum(), np.zeros((4, 2)), batch_size=2)


@pytest.mark.parametrize("n,workers,shard_size", [(8, 2, None), (7, 2, None), (9, 2, 2), (5, 1, None), (3, 4, None)])
def test_worker_pool_gradients_equal_full_batch(n, workers, shard_size):
    model, x, y = model_and_batch(n)

    def fn(xs, ys):
        logits = model(tg.Tensor(xs))
        return F.cross_entropy(logits, ys), logits.data

    with parallel.WorkerPool(fn, model.parameters(), workers=workers) as pool:
        for _ in range(2):  # the second call sees the parameters as the first step left them
            loss = F.cross_entropy(model(tg.Tensor(x)), y)
            model.zero_grad()
            loss.backward()
            expected = [p.grad.array.copy() for p in model.parameters()]
            model.zero_grad()
            value, extras = pool.backward(x, y, shard_size=shard_size)
            assert value == pytest.approx(loss.item(), rel=1e-12)
            for p, g in zip(model.parameters(), expected):
                assert p.grad.dtype == p.dtype
                np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.concatenate(extras), model(tg.Tensor(x)).data)  # shards in batch order
            for p in model.parameters():
                p.data -= 0.1 * p.grad  # an optimizer step in this process


def test_worker_pool_grows_its_buffers_and_reports_errors():
    model, x, y = model_and_batch(6)

    def fn(xs, ys):
        if len(xs) == 1:
            raise ValueError("a shard of one")
        return F.cross_entropy(model(tg.Tensor(xs)), ys)

    pool = parallel.WorkerPool(fn, model.parameters(), workers=2)
    pool.backward(x[:4], y[:4])
    model.zero_grad()
    big_x, big_y = np.concatenate([x, x]), np.concatenate([y, y])
    pool.backward(big_x, big_y)  # a larger batch than the first: new shared buffers
    got = [p.grad.array.copy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(tg.Tensor(big_x)), big_y).backward()
    for p, g in zip(model.parameters(), got):
        np.testing.assert_allclose(g, p.grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="a shard of one"):
        pool.backward(x[:2], y[:2])
    pool.backward(x, y)  # the workers survive an error in fn
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.backward(x, y)
    with pytest.raises(ValueError, match="workers"):
        parallel.WorkerPool(fn, model.parameters(), workers=0)


def test_worker_pool_leaves_the_random_stream_alone_and_seeds_each_worker():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 2, dtype=np.float64))
    state = tg.get_rng_state()
    x, y = np.ones((8, 16)), np.zeros(8, np.int64)

    def fn(xs, ys):
        logits = model(tg.Tensor(xs))
        return F.cross_entropy(logits, ys), logits.data

    with parallel.WorkerPool(fn, model.parameters(), workers=2) as pool:
        assert tg.get_rng_state() == state  # starting a pool draws nothing from the caller's stream
        _, extras = pool.backward(x, y)
    first, second = extras  # identical inputs: only the workers' dropout masks differ
    assert not np.allclose(first, second)


def test_worker_pool_reports_a_dead_worker_and_bad_arrays():
    model, x, y = model_and_batch(4)
    pool = parallel.WorkerPool(lambda xs, ys: F.cross_entropy(model(tg.Tensor(xs)), ys), model.parameters(), workers=2)
    with pytest.raises(TypeError, match="numbers"):
        pool.backward(x, np.array([object()] * 4))
    pool._processes[0].kill()  # workers=2: this process and one worker process
    pool._processes[0].join()
    with pytest.raises(RuntimeError, match="worker 0 died"):
        pool.backward(x, y)
    with pytest.raises(RuntimeError, match="closed"):
        pool.backward(x, y)
