"""Generate every image the docs show, into docs/images/.

    .venv/bin/python docs/make_images.py            # all of them: tape graphs + a full default training run
    .venv/bin/python docs/make_images.py --quick    # training plots from a 1-epoch, 5,000-image run
    .venv/bin/python docs/make_images.py --tapes-only

Tape graphs need Graphviz' ``dot`` (apt-get install graphviz); the training plots need matplotlib
(pip install -e ".[plots]"). The training plots come from ``examples/mnist_cnn.py --plots``, the
same code a user runs, so the pictures in the docs are what the example produces.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"

TAPE_IMAGES = ["tape_small.png", "tape_second_order.png", "tape_mnist_cnn.png"]
TRAINING_IMAGES = ["learning_curves.png", "filters.png", "confusion_matrix.png", "misclassified.png"]
IMAGES = TAPE_IMAGES + TRAINING_IMAGES


def load_example():
    spec = importlib.util.spec_from_file_location("mnist_cnn", ROOT / "examples" / "mnist_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tapes(out: Path) -> list[Path]:
    # The small example of docs/autograd.md: one linear layer, relu, mean squared error.
    x = tg.Tensor(np.array([[1.0, -2.0, 0.5]], dtype=np.float32))
    w = tg.Tensor(np.array([[0.5, 0.1, -0.3], [0.2, 0.4, 0.1]], dtype=np.float32), requires_grad=True)
    b = tg.Tensor(np.array([0.1, -0.1], dtype=np.float32), requires_grad=True)
    loss = F.mse_loss(F.linear(x, w, b).relu(), np.array([[1.0, 0.0]], dtype=np.float32))
    small = loss.tape(names={"x": x, "w": w, "b": b})
    loss.backward()
    paths = [small.render(out / "tape_small.png", dpi=80, title="loss = mse(relu(x @ w.T + b), target)")]

    # Second order: the graph of a gradient computed with create_graph=True.
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (g,) = tg.grad(x.tanh().sum(), x, create_graph=True)
    second = tg.graph.tape(g, names={"x": x})
    (g * g).sum().backward()
    paths.append(second.render(out / "tape_second_order.png", dpi=80, title="g = d/dx sum(tanh(x)) = 1 - tanh(x)^2"))

    # The whole MNIST CNN of examples/mnist_cnn.py, on a batch of 8 images.
    example = load_example()
    tg.manual_seed(0)
    model = example.build_model()
    (x_train, y_train), _ = tg.datasets.load_mnist()
    logits = model(example.normalize(x_train[:8]))
    loss = F.cross_entropy(logits, y_train[:8])
    cnn = loss.tape(names=model.named_parameters())
    loss.backward()
    paths.append(
        cnn.render(
            out / "tape_mnist_cnn.png", dpi=90, constants=False, title="examples/mnist_cnn.py: the loss of a batch of 8"
        )
    )
    return paths


def make_training_plots(out: Path, quick: bool) -> list[Path]:
    example = load_example()
    argv = ["--quiet"] + (["--epochs", "1", "--limit-train", "5000"] if quick else [])
    with tempfile.TemporaryDirectory() as tmp:
        example.main(argv + ["--plots", tmp])
        paths = []
        for name in TRAINING_IMAGES:
            shutil.copyfile(Path(tmp) / name, out / name)
            paths.append(out / name)
    return paths


def shrink(path: Path) -> None:
    """Re-save a PNG with a 128-colour palette (a third of the size, no visible change), if Pillow is there."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a short training run instead of the full default one")
    p.add_argument("--tapes-only", action="store_true", help="only the tape graphs (no training)")
    p.add_argument("--out", type=Path, default=OUT, help="output directory (default: docs/images)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if shutil.which("dot"):
        paths += make_tapes(args.out)
    else:
        print("Graphviz' dot not found: skipping the tape graphs", file=sys.stderr)
    if not args.tapes_only:
        paths += make_training_plots(args.out, args.quick)
    for path in paths:
        shrink(path)
        size = path.stat().st_size
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {size / 1024:.0f} KiB"
            + ("  (over 200 KiB!)" if size > 200 * 1024 else "")
        )


if __name__ == "__main__":
    main()
