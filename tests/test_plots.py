"""Training plots: ``examples/mnist_cnn.py --plots DIR`` / ``--metrics FILE`` and tinygrad_cnn.plots.

The image tests are skipped when matplotlib (the optional ``plots`` extra) is not installed; the
JSON-lines metrics, the error message without matplotlib, and the lazy import are tested always.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import plots
from tinygrad_cnn.datasets import load_mnist

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist_cnn.py"
TINY = ["--limit-train", "256", "--batch-size", "64", "--epochs", "2", "--quiet"]
PNG = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")


@pytest.fixture(scope="module")
def example():
    """The example with a 500-image test set, so a run takes a second or two."""
    spec = importlib.util.spec_from_file_location("mnist_cnn_example_plots", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    module.load_mnist = lambda path=None: ((x_train, y_train), (x_test[:500], y_test[:500]))
    return module


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_matplotlib
def test_plots_option_writes_images_and_json_lines(example, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    metrics = example.main(TINY + ["--plots", str(out_dir)])
    assert f"plots: {out_dir / 'learning_curves.png'}" in capsys.readouterr().out
    for name in ("learning_curves", "filters", "confusion_matrix", "misclassified"):
        data = (out_dir / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and 5_000 < len(data) < 200_000, name
    records = read_jsonl(out_dir / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert records == json.loads(json.dumps(metrics["history"]))
    for r in records:
        assert {"loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"} <= set(r)
        assert 0 < r["test_loss"] < 10 and 0 <= r["test_accuracy"] <= 1


def test_metrics_option_needs_no_matplotlib(example, tmp_path, capsys):
    path = tmp_path / "run" / "metrics.jsonl"
    example.main(TINY + ["--epochs", "1", "--metrics", str(path)])
    capsys.readouterr()
    (record,) = read_jsonl(path)
    assert record["epoch"] == 1 and 0 <= record["train_accuracy"] <= 1


def test_metrics_file_is_rewritten_from_the_history_on_resume(example, tmp_path, capsys):
    path, ckpt = tmp_path / "metrics.jsonl", tmp_path / "run.h5"
    args = TINY + ["--epochs", "2", "--checkpoint", str(ckpt), "--metrics", str(path)]
    example.main(args)
    path.write_text("stale\n")
    example.main(args + ["--resume"])  # the run had finished: nothing to train, the file rewritten
    capsys.readouterr()
    assert [r["epoch"] for r in read_jsonl(path)] == [1, 2]


def test_plots_without_matplotlib_is_a_clear_error(example, monkeypatch, capsys):
    monkeypatch.setattr(example.plots, "available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        example.parse_args(["--plots", "out"])
    assert exc.value.code == 2
    assert "--plots needs matplotlib" in capsys.readouterr().err


def test_matplotlib_is_imported_lazily():
    code = (
        "import sys, tinygrad_cnn, tinygrad_cnn.plots, tinygrad_cnn.graph; "
        "assert 'matplotlib' not in sys.modules, 'imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_matplotlib
def test_plot_functions_directly(tmp_path):
    history = [
        {"epoch": 1, "loss": 0.5, "train_accuracy": 0.8, "test_accuracy": 0.85},  # no test_loss: fine
        {"epoch": 2, "loss": 0.2, "train_accuracy": 0.93, "test_loss": 0.25, "test_accuracy": 0.9},
    ]
    assert plots.learning_curves(history, tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    rng = np.random.default_rng(0)
    plots.filter_grid(rng.standard_normal((3, 2, 3, 3)), tmp_path / "f.png")
    with pytest.raises(ValueError, match="conv weight"):
        plots.filter_grid(np.ones((3, 3)), tmp_path / "bad.png")
    plots.confusion_matrix(np.array([[5, 1], [0, 7]]), tmp_path / "cm.png", labels=["cat", "dog"])
    labels = np.array([0, 1, 2, 3])
    plots.misclassified(rng.random((4, 1, 8, 8)), labels, labels, tmp_path / "none.png")  # nothing wrong: empty grid
    for name in ("f.png", "cm.png", "none.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    width = int.from_bytes((tmp_path / "cm.png").read_bytes()[16:20], "big")  # the PNG header's width
    assert width == 6.4 * 200  # 200 dpi by default: sharp on slides
