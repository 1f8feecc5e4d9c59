"""Seed D: conv 3x3 (5 filters) -> sigmoid -> maxpool 2x2 -> linear -> sigmoid -> linear -> sigmoid,
squared error against one-hot labels, per-sample gradient descent on the first 1,000 images, 37 epochs.

    python examples/seeds/d.py             # reported: 91 of the first 100 test images right
    python examples/seeds/d.py --quick     # seconds, for tests (at lr 0.5: lr 2.0 sits ~7 epochs on a plateau)

Inputs are x/255. The loss of one sample is 1/2 * sum over the 10 outputs of (output - one-hot)^2, the
classic backpropagation error. The write-up gives no learning rate: --lr defaults to 2.0, the best of
0.25, 0.5, 1 and 2 on 5,000 held-out training images (10,000-14,999), never on the test set.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import Regime, images, mnist, parse_args, predict, report, train  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 5, 3),
        nn.Sigmoid(),
        nn.MaxPool2d(2),  # (N, 5, 13, 13)
        nn.Flatten(),
        nn.Linear(845, 25),
        nn.Sigmoid(),
        nn.Linear(25, 10),
        nn.Sigmoid(),  # outputs in (0, 1), one per digit
    )


def squared_error(outputs: tg.Tensor, y: np.ndarray) -> tg.Tensor:
    """1/2 ||outputs - onehot(y)||^2 per sample, averaged over the batch (a batch of 1 here)."""
    onehot = np.eye(10, dtype=np.float32)[y]
    return F.mse_loss(outputs, onehot, reduction="sum") * (0.5 / len(y))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=37, quick_epochs=5, lr=2.0, quick_lr=0.5)
    (x_train, y_train), (x_test, y_test) = mnist()
    n_train, n_test = (1000, 1000) if args.quick else (1000, len(x_test))
    data = (images(x_train[:n_train]), y_train[:n_train], images(x_test[:n_test]), y_test[:n_test])
    tg.manual_seed(args.seed)
    model = build_model()
    regime = Regime(lr=args.lr, batch_size=1, stop_at=args.stop_at)
    metrics = train(model, squared_error, data, regime, args.epochs, args.seed, args.quiet)
    metrics["first_100_test_correct"] = int((predict(model, data[2][:100]) == y_test[:100]).sum())
    return report("D", metrics)


if __name__ == "__main__":
    main()
