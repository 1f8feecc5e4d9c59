"""End-to-end tests of examples/mnist_cnn.py, run in-process through its ``main(argv)``.

One run trains on the real bundled MNIST and is evaluated on the full test set; the others (seed
determinism, exact resume) use the bundled data loaded once, with the test set cut to its first
1000 images to keep the file fast.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn.datasets import load_mnist

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.py"
FAST = ["--limit-train", "1000", "--batch-size", "128", "--quiet"]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_cnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture
def fast_example(example, mnist, monkeypatch):
    """The example with the bundled data loaded once and a 1000-image test set (for --data: unchanged)."""
    (x_train, y_train), (x_test, y_test) = mnist
    real = example.load_mnist

    def cached(path=None):
        if path is not None:
            return real(path)
        return (x_train, y_train), (x_test[:1000], y_test[:1000])

    monkeypatch.setattr(example, "load_mnist", cached)
    return example


def curve(metrics):
    """Everything in the history that does not depend on timing."""
    return [(h["epoch"], h["loss"], h["train_accuracy"], h["test_accuracy"]) for h in metrics["history"]]


def json_line(out):
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out
    return json.loads(lines[0])


# ----------------------------------------------------------------------------------------------------
# Training on the real data


def test_trains_well_above_chance_and_prints_json(example, capsys):
    metrics = example.main(["--limit-train", "2000", "--epochs", "1", "--quiet", "--json"])
    out = capsys.readouterr().out
    assert metrics["test_accuracy"] > 0.8
    assert metrics["epochs"] == 1 and len(metrics["history"]) == 1
    record = metrics["history"][0]
    assert record["epoch"] == 1 and record["loss"] < math.log(10) and 0.3 < record["train_accuracy"] <= 1
    assert record["test_accuracy"] == metrics["test_accuracy"]

    assert "MNIST: 2,000 training and 10,000 test images (bundled)" in out
    assert "total parameters" in out and "18,378" in out  # the model summary
    assert "[" not in out.split("total parameters")[1].split("epoch 1/1:")[0]  # --quiet: no progress lines
    assert "confusion matrix" in out
    printed = json_line(out)
    assert set(printed) == {"test_accuracy", "train_seconds", "epochs", "train_images_per_second", "history"}
    assert printed["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert printed["epochs"] == 1
    assert set(printed["history"][0]) == {
        "epoch",
        "loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
        "images_per_second",
    }
    assert printed["history"][0]["loss"] == pytest.approx(record["loss"])
    assert printed["train_seconds"] > 0 and printed["train_images_per_second"] > 0


# ----------------------------------------------------------------------------------------------------
# Determinism and exact resume


def test_same_seed_same_run_different_seed_different_run(fast_example, capsys):
    args = FAST + ["--epochs", "1"]
    a = fast_example.main(args + ["--seed", "3"])
    b = fast_example.main(args + ["--seed", "3"])
    c = fast_example.main(args + ["--seed", "4"])
    capsys.readouterr()
    assert curve(a) == curve(b)
    assert a["test_accuracy"] == b["test_accuracy"]
    assert curve(a)[0][1] != curve(c)[0][1]  # different initialisation and shuffling


def test_two_mpi_ranks_train_as_one_process_and_their_checkpoint_resumes_anywhere(fast_example, tmp_path, capsys):
    """mpiexec -n 2: the same batches, each rank's half averaged, so the same run up to float
    rounding; rank 0 alone prints and writes the checkpoint, which a single process resumes."""
    pytest.importorskip("mpi4py", reason="needs the mpi extra: pip install -e '.[mpi]'")
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install mpich)")
    args = FAST + ["--epochs", "1", "--json", "--checkpoint", str(tmp_path / "run.h5")]
    job = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
    )
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("MNIST: 1,000 training") == 1  # rank 0's output only
    two = json.loads(job.stdout.strip().splitlines()[-1])
    one = fast_example.main(FAST + ["--epochs", "1"])  # tested on the first 1000 test images
    for a, b in zip(curve(one), curve(two), strict=True):
        assert a[0] == b[0] and a[1] == pytest.approx(b[1], rel=1e-3) and a[2] == pytest.approx(b[2], abs=0.01)
    assert two["test_accuracy"] > 0.5  # on all 10,000, after 8 steps
    resumed = fast_example.main(args[:-3] + ["--checkpoint", str(tmp_path / "run.h5"), "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert resumed["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=0.01)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_interrupted_run_resumes_exactly(fast_example, tmp_path, monkeypatch, capsys, optimizer):
    args = FAST + ["--epochs", "2", "--optimizer", optimizer]
    reference_ckpt = tmp_path / "reference.h5"
    reference = fast_example.main(args + ["--checkpoint", str(reference_ckpt)])

    # The same two-epoch command (so the OneCycleLR schedule is the same), killed right after the
    # first checkpoint is written, then run again with --resume.
    ckpt = tmp_path / "run.h5"
    command = args + ["--checkpoint", str(ckpt), "--resume"]  # no checkpoint yet: starts from scratch
    real_save = tg.save

    def save_then_interrupt(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(tg, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fast_example.main(command)
    monkeypatch.setattr(tg, "save", real_save)
    assert "resumed from" not in capsys.readouterr().out
    assert tg.load(ckpt)["epoch"] == 1

    resumed = fast_example.main(command)
    out = capsys.readouterr().out
    assert f"resumed from {ckpt} after epoch 1" in out
    assert "epoch 1/2:" not in out and "epoch 2/2:" in out

    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert curve(resumed) == curve(reference)
    assert len(curve(resumed)) == 2
    # The final checkpoints agree too: model, optimizer, schedule and loader state.
    want, got = tg.load(reference_ckpt), tg.load(ckpt)
    for k, v in want["model"].items():
        np.testing.assert_array_equal(got["model"][k], v, err_msg=k)
    assert want["optimizer"]["state"].keys() == got["optimizer"]["state"].keys()
    for i, s_want in want["optimizer"]["state"].items():
        assert s_want.keys() == got["optimizer"]["state"][i].keys()
        for k in s_want:
            np.testing.assert_array_equal(got["optimizer"]["state"][i][k], s_want[k])
    assert got["schedule"] == want["schedule"] and got["loader"] == want["loader"]
    assert got["epoch"] == want["epoch"] == 2


@pytest.mark.parametrize(
    "changed, named",
    [
        (["--epochs", "2"], "--epochs 1 (now 2)"),
        (["--batch-size", "64"], "--batch-size 128 (now 64)"),
        (["--seed", "1"], "--seed 0 (now 1)"),
        (["--optimizer", "sgd", "--lr", "0.003"], "--optimizer adam (now sgd)"),
        (["--limit-train", "300"], "--limit-train 200 (now 300)"),
    ],
)
def test_resume_with_a_changed_option_is_refused(fast_example, tmp_path, capsys, changed, named):
    ckpt = str(tmp_path / "run.h5")
    args = ["--limit-train", "200", "--batch-size", "128", "--epochs", "1", "--quiet", "--checkpoint", ckpt]
    fast_example.main(args)
    changed_args = args + changed  # argparse: the last occurrence of an option wins
    with pytest.raises(SystemExit) as info:
        fast_example.main(changed_args + ["--resume"])
    message = info.value.code
    assert isinstance(message, str) and message.startswith(f"error: cannot resume from {ckpt}: "), message
    assert named in message and "start a new --checkpoint" in message
    assert tg.load(ckpt)["epoch"] == 1  # untouched


def test_resuming_a_finished_run_evaluates_it_once(fast_example, tmp_path, capsys):
    args = FAST + ["--epochs", "1", "--checkpoint", str(tmp_path / "run.h5")]
    first = fast_example.main(args)
    again = fast_example.main(args + ["--resume"])
    out = capsys.readouterr().out
    assert "after epoch 1" in out and again["test_accuracy"] == first["test_accuracy"]
    assert curve(again) == curve(first)


def test_progress_shows_the_running_mean_and_the_test_set_is_evaluated_once_per_epoch(fast_example, capsys):
    calls = []
    real = fast_example.evaluate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    fast_example.evaluate = counted
    try:
        fast_example.main(["--limit-train", "512", "--batch-size", "64", "--epochs", "2"])
    finally:
        fast_example.evaluate = real
    out = capsys.readouterr().out
    assert len(calls) == 2  # after each epoch; the final report reuses the last one
    for epoch in (1, 2):
        progress = [line for line in out.splitlines() if line.startswith(f"epoch {epoch}/2 [")]
        assert progress and "[   8/8] mean loss" in progress[-1], out
        mean = float(progress[-1].split("mean loss ")[1].split()[0])
        summary = next(line for line in out.splitlines() if line.startswith(f"epoch {epoch}/2: loss "))
        assert mean == float(summary.split("loss ")[1].split(",")[0])  # the running mean ends at the epoch's loss


def test_help_shows_the_defaults(example, capsys):
    with pytest.raises(SystemExit) as info:
        example.main(["--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for shown in ("passes over the training set (default 3)", "images per step (default 64)", "(default adam)"):
        assert shown in help_text
    assert "shuffling (default 0)" in help_text and "python -m tinygrad_cnn.examples.mnist" in help_text


# ----------------------------------------------------------------------------------------------------
# Command-line handling


def test_user_npz_data(example, mnist, tmp_path, capsys):
    (x_train, y_train), (x_test, y_test) = mnist
    path = tmp_path / "mini.npz"
    # Float images in [0, 1], flattened to (N, 784), and (N, 1) labels: converted by load_mnist.
    np.savez(
        path,
        x_train=x_train[:300].reshape(300, 784).astype(np.float32) / 255,
        y_train=y_train[:300, None],
        x_test=x_test[:200],
        y_test=y_test[:200],
    )
    metrics = example.main(["--data", str(path), "--epochs", "1", "--batch-size", "64", "--quiet", "--json"])
    out = capsys.readouterr().out
    assert f"MNIST: 300 training and 200 test images ({path})" in out
    assert 0 <= metrics["test_accuracy"] <= 1 and len(metrics["history"]) == 1
    assert json_line(out)["epochs"] == 1


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("corrupt.npz", b"this is not a zip archive", "not a valid .npz archive"),
        ("corrupt.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 20, "not a valid HDF5 file"),
        ("data.txt", b"1 2 3", "unsupported MNIST source"),
        ("missing.npz", None, "no such file"),
    ],
)
def test_bad_data_exits_with_a_clear_message(example, tmp_path, capsys, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        example.main(["--data", str(path), "--epochs", "1", "--quiet"])
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: "), message
    assert str(path) in message and match in message


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--resume"], "--resume needs --checkpoint"),
        (["--epochs", "0"], "must be positive"),
        (["--batch-size", "0"], "must be positive"),
        (["--optimizer", "rmsprop"], "invalid choice"),
    ],
)
def test_argument_errors(example, capsys, argv, match):
    with pytest.raises(SystemExit) as info:
        example.main(argv)
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_the_package_runs_this_script_from_any_directory(tmp_path):
    """``python -m tinygrad_cnn.examples.mnist`` is this file (a link in the source tree, a copy in the wheel)."""
    packaged = EXAMPLE.parents[1] / "tinygrad_cnn" / "examples" / "mnist.py"
    assert packaged.resolve() == EXAMPLE.resolve()
    done = subprocess.run(
        [sys.executable, "-m", "tinygrad_cnn.examples.mnist", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--epochs" in done.stdout and "--limit-train" in done.stdout


def test_training_on_a_single_image_ends_cleanly(fast_example, capsys):
    """All of training is one batch (--epochs 1 --limit-train 1): a one-step schedule, no traceback."""
    metrics = fast_example.main(["--epochs", "1", "--limit-train", "1", "--quiet"])
    capsys.readouterr()
    assert len(metrics["history"]) == 1 and math.isfinite(metrics["history"][0]["loss"])
