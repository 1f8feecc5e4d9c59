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


def test_seed_b_learns_its_training_set(capsys: pytest.CaptureFixture) -> None:
    """B reports train accuracy (100 images, full-batch gradient descent)."""
    metrics = run("b", capsys)
    assert metrics["train_accuracy"] > 0.6
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert metrics["test_accuracy"] > 0.3


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
