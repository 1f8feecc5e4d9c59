"""Training survives faults: kills (also in the middle of a checkpoint write), foreign or damaged
checkpoints, and missing or corrupt data, with examples/mnist_cnn.py and the checkpoint API.

The subprocess tests train the example on a 512-image subset (an .npz made from the bundled MNIST), so
a whole run takes a few seconds. A run is deterministic, so "nothing lost" is checked exactly: a run
killed and resumed ends with the same history and test accuracy as one that was never interrupted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import datasets
from tinygrad_cnn.datasets import load_mnist

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist_cnn.py"
RUN = ["--batch-size", "128", "--epochs", "3", "--quiet", "--json"]

# Runs the example; with KILL_AT_SAVE=N it writes half of the N-th checkpoint's bytes to the temporary
# file, announces it and stalls there (the parent kills it).
DRIVER = """
import os, runpy, sys, time
from tinygrad_cnn import serialization
kill_at = int(os.environ.get("KILL_AT_SAVE", "0"))
saves = [0]
real_save, real_write_all = serialization.save, serialization._write_all

def save(obj, path):
    saves[0] += 1
    return real_save(obj, path)

def write_all(fd, data):
    if saves[0] == kill_at:
        real_write_all(fd, data[: len(data) // 2])
        print("KILL ME: in the middle of checkpoint write", saves[0], flush=True)
        time.sleep(600)
    return real_write_all(fd, data)

serialization.save, serialization._write_all = save, write_all
import tinygrad_cnn
tinygrad_cnn.save = save
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    (x, y), (xt, yt) = load_mnist()
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x_train=x[:512], y_train=y[:512], x_test=xt[:500], y_test=yt[:500])
    return path


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    path = tmp_path_factory.mktemp("driver") / "driver.py"
    path.write_text(DRIVER)
    return path


def _start(driver, args, kill_at_save=0):
    # One BLAS thread in every run: the default follows the machine's load, and with older OpenBLAS
    # builds (numpy 1.24's) a GEMM on 1 or 2 threads rounds differently, so a resumed run compared
    # bit for bit with the uninterrupted one must not get another thread count from the load.
    env = dict(os.environ, KILL_AT_SAVE=str(kill_at_save), PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(driver), str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return out, json.loads(lines[-1])


def _wait_for(proc, marker, timeout=300):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"never saw {marker!r}; output:\n{''.join(seen)}\n{proc.stderr.read()[-3000:]}")


def _curve(metrics):
    return [(h["epoch"], h["loss"], h["train_accuracy"], h["test_accuracy"]) for h in metrics["history"]]


@pytest.fixture(scope="module")
def reference(driver, small_data):
    """The uninterrupted run that every interrupted one must reproduce."""
    _, metrics = _finish(_start(driver, [*RUN, "--data", str(small_data)]))
    return metrics


def test_kill_during_a_checkpoint_write_resumes_from_the_last_complete_checkpoint(
    driver, small_data, reference, tmp_path
):
    ckpt = tmp_path / "run.h5"
    args = [*RUN, "--data", str(small_data), "--checkpoint", str(ckpt), "--resume"]
    proc = _start(driver, args, kill_at_save=2)  # stalls while writing the checkpoint of epoch 2
    _wait_for(proc, "KILL ME")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # The checkpoint at the path is the last complete one (epoch 1); the half-written one is a temp file.
    assert tg.load(ckpt)["epoch"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run.h5"]
    assert len(leftovers) == 1 and leftovers[0].startswith("run.h5.") and leftovers[0].endswith(".tmp")
    with pytest.raises(tg.CheckpointError):  # the half-written file is not mistaken for a checkpoint
        tg.load(tmp_path / leftovers[0])

    out, resumed = _finish(_start(driver, args))
    assert f"resumed from {ckpt} after epoch 1" in out
    assert _curve(resumed) == _curve(reference)  # nothing lost: exactly the uninterrupted run
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert tg.load(ckpt)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]  # the killed write's temporary file was deleted


def test_kill_at_a_random_moment_resumes_with_nothing_lost(driver, small_data, reference, tmp_path):
    ckpt = tmp_path / "run.h5"
    args = [*RUN, "--data", str(small_data), "--checkpoint", str(ckpt), "--resume"]
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    proc = _start(driver, args)
    _wait_for(proc, "epoch 1/3:")  # during epoch 1's checkpoint write, or some time after it
    time.sleep(rng.uniform(0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    # 0: killed before the first checkpoint was complete (a slow or loaded machine): start afresh
    epoch = tg.load(ckpt)["epoch"] if ckpt.exists() else 0
    assert epoch in (0, 1, 2, 3), f"kill-time seed {seed}"
    out, resumed = _finish(_start(driver, args))
    if 0 < epoch < 3:
        assert f"resumed from {ckpt} after epoch {epoch}" in out, f"kill-time seed {seed}"
    assert _curve(resumed) == _curve(reference)
    assert resumed["test_accuracy"] == reference["test_accuracy"]


SAVER = """
import sys, numpy as np, tinygrad_cnn as tg
path = sys.argv[1]
a = {"w": np.zeros((200, 200)), "tag": "A"}
b = {"w": np.ones((200, 200)), "tag": "B"}
print("started", flush=True)
while True:
    tg.save(a, path)
    tg.save(b, path)
"""


def test_checkpoint_api_killed_mid_save_keeps_a_complete_file(tmp_path):
    path = tmp_path / "ckpt.h5"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if path.exists():
            obj = tg.load(path)
            assert obj["tag"] in ("A", "B")
            np.testing.assert_array_equal(obj["w"], np.zeros((200, 200)) if obj["tag"] == "A" else 1.0)


# ----------------------------------------------------------------------------------------------------
# Clear errors before training starts (in-process, through the example's main)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_cnn_faults", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exit_message(example, argv, capsys):
    with pytest.raises(SystemExit) as info:
        example.main(argv)
    out = capsys.readouterr().out
    assert "epoch 1/" not in out  # it stopped before training
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: "), message
    return message


def _checkpoint_of(example, small_data, tmp_path, capsys, extra=()):
    ckpt = tmp_path / "run.h5"
    example.main(
        [
            "--data",
            str(small_data),
            "--batch-size",
            "256",
            "--epochs",
            "1",
            "--quiet",
            "--checkpoint",
            str(ckpt),
            *extra,
        ]
    )
    capsys.readouterr()
    return ckpt


def test_resume_from_a_checkpoint_of_a_different_model(example, small_data, tmp_path, capsys):
    from tinygrad_cnn import nn

    ckpt = _checkpoint_of(example, small_data, tmp_path, capsys)
    state = tg.load(ckpt)
    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    state["model"] = other.state_dict()
    tg.save(state, ckpt)
    message = _exit_message(
        example,
        ["--data", str(small_data), "--batch-size", "256", "--epochs", "1", "--checkpoint", str(ckpt), "--resume"],
        capsys,
    )
    assert f"cannot resume from {ckpt}" in message and "load_state_dict" in message
    assert "different model" in message


def test_resume_with_other_options_is_refused(example, small_data, tmp_path, capsys):
    ckpt = _checkpoint_of(example, small_data, tmp_path, capsys)
    message = _exit_message(
        example,
        ["--data", str(small_data), "--batch-size", "128", "--epochs", "2", "--checkpoint", str(ckpt), "--resume"],
        capsys,
    )
    assert "other options" in message and "--batch-size 256 (now 128)" in message
    assert "--epochs 1 (now 2)" in message  # the schedule spans all epochs: another count is another run


@pytest.mark.parametrize("damage", ["truncated", "flipped", "text", "other optimizer"])
def test_resume_from_a_damaged_or_foreign_checkpoint(example, small_data, tmp_path, capsys, damage):
    ckpt = _checkpoint_of(example, small_data, tmp_path, capsys)
    data = bytearray(ckpt.read_bytes())
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        data[len(data) * 2 // 3] ^= 0x10
        ckpt.write_bytes(bytes(data))
    elif damage == "text":
        ckpt.write_text("not a checkpoint\n")
    else:
        state = tg.load(ckpt)
        state["config"]["optimizer"] = "sgd"  # the options match an SGD run, but the state is Adam's
        tg.save(state, ckpt)
    argv = ["--data", str(small_data), "--batch-size", "256", "--epochs", "1", "--checkpoint", str(ckpt), "--resume"]
    if damage == "other optimizer":
        argv += ["--optimizer", "sgd", "--lr", "0.003"]
        state = tg.load(ckpt)
        state["config"]["lr"] = 0.003
        tg.save(state, ckpt)
    message = _exit_message(example, argv, capsys)
    assert f"cannot resume from {ckpt}" in message
    expected = {
        "truncated": "truncated",
        "flipped": "corrupt checkpoint",
        "text": "not a valid HDF5 file",
        "other optimizer": "different optimizer",
    }[damage]
    assert expected in message


def test_missing_bundled_data_stops_before_training(example, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "_BUNDLED_DIR", tmp_path / "nowhere")
    message = _exit_message(example, ["--epochs", "1", "--quiet"], capsys)
    assert "bundled MNIST file is missing; reinstall tinygrad_cnn" in message


def test_damaged_bundled_data_stops_before_training(example, tmp_path, monkeypatch, capsys):
    bundled = Path(datasets.__file__).parent / "data" / "mnist"
    for f in bundled.glob("*.gz"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    damaged = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(datasets.gzip.decompress(damaged.read_bytes()))
    raw[100] ^= 1  # a valid gzip stream of wrong content: only the MD5 check can tell
    damaged.write_bytes(datasets.gzip.compress(bytes(raw)))
    monkeypatch.setattr(datasets, "_BUNDLED_DIR", tmp_path)
    message = _exit_message(example, ["--epochs", "1", "--quiet"], capsys)
    assert "MD5 mismatch" in message and "reinstall" in message


@pytest.mark.parametrize("damage", ["truncated idx", "truncated npz", "labels out of range"])
def test_corrupt_user_data_stops_before_training(example, small_data, tmp_path, capsys, damage):
    if damage == "truncated idx":
        path = tmp_path / "idx"
        path.mkdir()
        arrays = np.load(small_data)
        for name, key, magic in [
            ("train-images-idx3-ubyte", "x_train", 0x803),
            ("train-labels-idx1-ubyte", "y_train", 0x801),
            ("t10k-images-idx3-ubyte", "x_test", 0x803),
            ("t10k-labels-idx1-ubyte", "y_test", 0x801),
        ]:
            a = arrays[key].astype(np.uint8)
            header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in a.shape)
            (path / name).write_bytes(header + a.tobytes())
        images = path / "train-images-idx3-ubyte"
        images.write_bytes(images.read_bytes()[:-100])
        where = images
    elif damage == "truncated npz":
        path = where = tmp_path / "cut.npz"
        data = small_data.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        arrays = dict(np.load(small_data))
        arrays["y_train"] = arrays["y_train"] + 5
        path = where = tmp_path / "labels.npz"
        np.savez(path, **arrays)
    message = _exit_message(example, ["--data", str(path), "--epochs", "1", "--quiet"], capsys)
    assert str(where) in message
