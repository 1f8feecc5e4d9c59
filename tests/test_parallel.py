"""map_batches and Module.predict equal one forward in eval mode, on several threads; tune_allocator
is harmless. (Data-parallel training: tests/test_distributed.py.)"""

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
