"""The five seed models of examples/seeds/ (docs/seeds.md), each run in-process with --quick.

Every script must learn (accuracy well above chance) and end with its JSON line; C's loss as the
write-up wrote it must show, under detect_anomaly(), where its NaN comes from.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F

SEEDS = Path(__file__).resolve().parents[1] / "examples" / "seeds"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"seed_{name}", SEEDS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, capsys: pytest.CaptureFixture, *flags: str) -> dict:
    metrics = load(name).main(["--quick", *flags])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["model"] == metrics["model"]
    assert last["epochs"] == metrics["epochs"] == len(metrics["history"])
    assert math.isclose(last["test_accuracy"], metrics["test_accuracy"], abs_tol=1e-6)
    assert last["train_seconds"] >= 0
    return metrics


# (script, minimum test accuracy after --quick): 10 classes (chance 10%), C is binary (chance 50%).
@pytest.mark.parametrize("name, minimum", [("a", 0.6), ("c", 0.95), ("d", 0.5), ("e", 0.6)])
def test_seed_learns(name: str, minimum: float, capsys: pytest.CaptureFixture) -> None:
    metrics = run(name, capsys)
    assert metrics["test_accuracy"] > minimum
    assert all(math.isfinite(h["loss"]) for h in metrics["history"])


def test_seed_b_reproduces_the_write_up(capsys: pytest.CaptureFixture) -> None:
    """The write-up's init and regime: train accuracy 17, 41, 59, 74, 80% before the 5 steps, 83% after."""
    metrics = run("b", capsys)
    assert metrics["epochs"] == 5
    np.testing.assert_allclose(metrics["train_accuracy_before_each_step"], [0.17, 0.41, 0.59, 0.74, 0.80], atol=0.021)
    assert metrics["train_accuracy"] >= 0.83
    assert math.isclose(metrics["history"][0]["loss"], 2.302, abs_tol=2e-3)
    assert math.isclose(metrics["train_loss"], 1.548, abs_tol=5e-3)


def test_seed_b_init_is_the_write_ups_layout() -> None:
    """The write-up's forward, written in its own channels-last layout, gives the same logits as b.py's model."""
    b = load("b")
    model = b.build_model()
    b.write_up_init(model, 1)
    x = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32) - 0.5
    rng = np.random.RandomState(1)
    conv_w, logits_w = rng.randn(3, 3, 8) / 3, rng.randn(1352, 10) / 135
    image = x[:, 0].astype(np.float64)
    conv = sum(
        image[:, i : i + 26, j : j + 26, None] * conv_w[i, j] for i in range(3) for j in range(3)
    )  # (N, 26, 26, 8)
    pooled = np.maximum(conv, 0).reshape(3, 13, 2, 13, 2, 8).max(axis=(2, 4))  # (N, 13, 13, 8)
    expected = pooled.reshape(3, -1) @ logits_w  # rows in (h, w, c) order
    np.testing.assert_allclose(model(tg.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("to, expected", [("ties", [[1, 1], [0, 1]]), ("window", [[1, 1], [1, 1]])])
def test_seed_b_wrong_pool_gradients(to: str, expected: list) -> None:
    pool = load("b").MaxPoolWrongGradient(to)
    x = tg.Tensor(np.array([[[[2.0, 2.0], [1.0, 2.0]]]]), requires_grad=True)
    out = pool(x)
    assert out.numpy().tolist() == [[[[2.0]]]]
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[expected]])


def test_seed_b_default_init_learns(capsys: pytest.CaptureFixture) -> None:
    """PyTorch's default init under the same regime: learns, more slowly (docs/seeds.md)."""
    metrics = run("b", capsys, "--default-init", "--seed", "0", "--epochs", "20")
    assert metrics["train_accuracy"] > 0.6
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]


def test_seed_c_as_written_runs_under_detect_anomaly(capsys: pytest.CaptureFixture) -> None:
    metrics = run("c", capsys, "--as-written")
    assert metrics["model"] == "C (as written)"
    assert metrics["anomaly"] is None  # with these inputs no probability underflows in a short run
    assert metrics["test_accuracy"] > 0.95


def test_seed_c_nan_comes_from_log_of_an_underflowed_probability() -> None:
    c = load("c")
    logits = tg.Tensor([[60.0, -60.0]], requires_grad=True)  # confidently a 0; the label says 1
    assert F.softmax(logits, axis=1).data[0, 1] == 0  # exp(-120) underflows in float32
    with pytest.raises(tg.AnomalyError, match=r"Log: Inf in its forward output") as info:
        with tg.detect_anomaly():
            c.log_loss_as_written(logits, np.array([1]))
    assert "c.py" in str(info.value) and "p_true.log()" in str(info.value)
    loss = F.cross_entropy(logits, np.array([1]))  # the fix: log-softmax of the logits
    loss.backward()
    assert math.isclose(loss.item(), 120.0, rel_tol=1e-6)
    np.testing.assert_allclose(logits.grad, [[1.0, -1.0]], atol=1e-6)


def test_seed_cli_flags(capsys: pytest.CaptureFixture) -> None:
    metrics = run("b", capsys, "--epochs", "2", "--seed", "3")
    assert metrics["epochs"] == 2
    again = run("b", capsys, "--epochs", "2", "--seed", "3")
    assert again["history"][-1]["loss"] == metrics["history"][-1]["loss"]  # the seed fixes the run
    with pytest.raises(SystemExit):
        load("a").main(["--epochs", "0"])
