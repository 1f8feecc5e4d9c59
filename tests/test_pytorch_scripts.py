"""PyTorch scripts run on tinygrad_cnn with only their import lines renamed, as a PyTorch user would
port them, and (with PyTorch installed) run unchanged against PyTorch on the same data for comparison.

The scripts live in tests/scripts/; each says which public script it was checked against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg

SCRIPTS = Path(__file__).parent / "scripts"

# torch and torchvision import lines -> tinygrad_cnn's, nothing else
RENAMES = [
    (r"^import torch$", "import tinygrad_cnn as torch"),
    (r"^import torch\.([\w.]+) as (\w+)$", r"import tinygrad_cnn.\1 as \2"),
    (r"^from torch(\.[\w.]+)? import ", r"from tinygrad_cnn\1 import "),
    (r"^from torchvision import ", "from tinygrad_cnn import "),
    (r"^from torchvision\.transforms import ", "from tinygrad_cnn.transforms import "),
]

# A stand-in for torchvision (not installed with the oracle): MNIST from tinygrad_cnn's bundled files,
# as torch tensors, and the three transforms the scripts use.
TORCHVISION_STAND_IN = {
    "__init__.py": "from . import datasets, transforms\n",
    "datasets.py": """
        import torch
        from tinygrad_cnn.datasets import load_mnist


        class MNIST(torch.utils.data.Dataset):
            def __init__(self, root, train=True, download=False, transform=None, target_transform=None):
                (x_train, y_train), (x_test, y_test) = load_mnist()
                self.data, self.labels = (x_train, y_train) if train else (x_test, y_test)
                self.transform, self.target_transform = transform, target_transform

            def __len__(self):
                return len(self.labels)

            def __getitem__(self, i):
                image, target = self.data[i], int(self.labels[i])
                image = self.transform(image) if self.transform else image
                return image, self.target_transform(target) if self.target_transform else target
    """,
    "transforms.py": """
        import torch


        class Compose:
            def __init__(self, steps):
                self.steps = steps

            def __call__(self, x):
                for step in self.steps:
                    x = step(x)
                return x


        class ToTensor:
            def __call__(self, image):  # (H, W) uint8 -> (1, H, W) float32 in [0, 1]
                return torch.from_numpy(image.copy()).unsqueeze(0).float().div(255)


        class Lambda:
            def __init__(self, function):
                self.function = function

            def __call__(self, x):
                return self.function(x)


        class Normalize:
            def __init__(self, mean, std):
                self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)

            def __call__(self, x):
                return (x - self.mean) / self.std
    """,
}


def renamed_imports(source: str) -> str:
    """``source`` with its torch/torchvision import lines pointed at tinygrad_cnn; every other line kept."""
    lines = source.split("\n")
    out = []
    for line in lines:
        for pattern, replacement in RENAMES:
            line = re.sub(pattern, replacement, line)
        out.append(line)
    changed = [(a, b) for a, b in zip(lines, out) if a != b]
    assert changed and all(a.startswith(("import ", "from ")) for a, _ in changed)
    return "\n".join(out)


def run_script(path: Path, args: list[str], cwd: Path, pythonpath: Path | None = None) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    cwd.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(path), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1, done.stdout[-2000:]
    return json.loads(result[0][len("RESULT ") :])


MNIST_ARGS = ["--epochs", "1", "--limit-train", "1920", "--limit-test", "1000", "--log-interval", "10"]


def run_both(script: str, args: list[str], tmp: Path) -> dict:
    """``script`` (in tests/scripts) with renamed imports on tinygrad_cnn (in tmp/ours) and, when
    PyTorch is installed, as it is on PyTorch with the torchvision stand-in (in tmp/torch)."""
    ours_path = tmp / f"tinygrad_{script}"
    ours_path.write_text(renamed_imports((SCRIPTS / script).read_text()))
    runs = {"ours": run_script(ours_path, args, tmp / "ours")}
    try:
        import torch  # noqa: F401
    except ImportError:
        return runs
    stand_in = tmp / "site" / "torchvision"
    stand_in.mkdir(parents=True, exist_ok=True)
    for name, text in TORCHVISION_STAND_IN.items():
        (stand_in / name).write_text(textwrap.dedent(text))
    runs["torch"] = run_script(SCRIPTS / script, args, tmp / "torch", tmp / "site")
    return runs


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory):
    """The MNIST script on a subset (30 batches of 64, 1000 test images): ours with renamed imports,
    and PyTorch's on the same images when torch is installed."""
    tmp = tmp_path_factory.mktemp("mnist_script")
    return {**run_both("pytorch_style_mnist.py", [*MNIST_ARGS, "--save-model"], tmp), "dir": tmp}


def test_mnist_script_runs_with_renamed_imports(mnist_runs):
    ours = mnist_runs["ours"]
    assert ours["test_size"] == 1000
    assert ours["lr"] == pytest.approx(0.7)  # StepLR(step_size=1, gamma=0.7) stepped once
    assert ours["correct"] >= 850, ours  # 30 Adadelta steps from PyTorch's initialisation
    assert np.isfinite(ours["test_loss"]) and ours["test_loss"] < 0.6


def test_mnist_script_saves_a_state_dict_of_tensors(mnist_runs):
    state = tg.load(mnist_runs["dir"] / "ours" / "mnist_cnn.pt", weights_only=True)
    shapes = {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "fc1.weight": (128, 9216),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert {k: v.shape for k, v in state.items()} == shapes
    assert all(type(v) is tg.Tensor and v.dtype == np.float32 and not v.requires_grad for v in state.values())


def test_mnist_script_accuracy_is_pytorchs(mnist_runs):
    """The same subset, the same hyper-parameters, each framework's own random initialisation and
    dropout: test accuracies within 4 points (1000 images). The full-epoch figure is in docs/pytorch.md."""
    if "torch" not in mnist_runs:
        pytest.skip("PyTorch is not installed")
    ours, theirs = mnist_runs["ours"], mnist_runs["torch"]
    assert theirs["test_size"] == ours["test_size"] and theirs["lr"] == pytest.approx(ours["lr"])
    assert abs(ours["correct"] - theirs["correct"]) <= 40, (ours, theirs)
    assert abs(ours["test_loss"] - theirs["test_loss"]) < 0.15, (ours, theirs)


def assert_close(got, want, where="result"):
    """Equal structure and values; floats to float32 rounding over a few training steps."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), where
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory):
    return run_both("pytorch_style_training.py", [], tmp_path_factory.mktemp("training_script"))


def test_training_script_runs_with_renamed_imports(training_runs):
    ours = training_runs["ours"]
    assert ours["resumed_equal"] is True  # the checkpoint resumed to the same model and optimizer state
    assert ours["checkpoint"][0] == 3 and ours["checkpoint"][2] == ["param_groups", "state"]
    assert ours["batchnorm"][0] == 18  # num_batches_tracked: 3 epochs of 6 batches
    assert ours["epoch2"]["train_loss"] < ours["epoch0"]["train_loss"]
    assert ours["mnist_sample"][0] == [1, 28, 28] and sum(ours["mnist_sample"][2]) == 1.0
    assert ours["mnist_batch"] == [[32, 1, 28, 28], [32, 10], 4]
    assert ours["split"] == [7, 3, True]


def test_training_script_gives_pytorchs_numbers(training_runs):
    """Deterministic weights, no shuffling: every loss, accuracy, gradient norm, learning rate,
    momentum and running statistic PyTorch prints, we print, to float32 rounding."""
    if "torch" not in training_runs:
        pytest.skip("PyTorch is not installed")
    assert_close(training_runs["ours"], training_runs["torch"])


@pytest.fixture(scope="module")
def dcgan_runs(tmp_path_factory):
    return run_both("pytorch_style_dcgan.py", [], tmp_path_factory.mktemp("dcgan_script"))


def test_dcgan_script_runs_with_renamed_imports(dcgan_runs):
    ours = dcgan_runs["ours"]
    assert ours["finite"] and len(ours["history"]) == 4
    assert ours["fake_shape"] == [16, 1, 28, 28]
    assert ours["state"]["project.0.weight"] == [8, 32, 7, 7] and ours["state"]["up.weight"] == [32, 16, 3, 3]
    d_x = [row[2] for row in ours["history"]]
    assert d_x == sorted(d_x)  # the discriminator learns to call the real digits real


def test_dcgan_script_gives_pytorchs_numbers(dcgan_runs):
    """Deterministic weights and noise: every loss and D(x), D(G(z)) of the four steps, to float32 rounding."""
    if "torch" not in dcgan_runs:
        pytest.skip("PyTorch is not installed")
    assert_close(dcgan_runs["ours"], dcgan_runs["torch"])


if __name__ == "__main__":  # python tests/test_pytorch_scripts.py SCRIPT [ARGS...]: both runs' results
    import tempfile

    print(json.dumps(run_both(sys.argv[1], sys.argv[2:], Path(tempfile.mkdtemp())), indent=1))
