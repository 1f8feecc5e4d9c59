"""Seed C: conv 3x3 (5 filters, one bias per output position) -> relu -> maxpool 2x2 stride 1 -> linear ->
tanh -> linear -> softmax, on the binary 0-vs-1 task, per-sample SGD at lr 0.01 for 5 epochs.

    python examples/seeds/c.py --as-written   # softmax, then log of the true class's probability, run
                                              # under tg.detect_anomaly() (the write-up hit NaN in epoch 2)
    python examples/seeds/c.py                # fixed: F.cross_entropy on the logits (log-softmax inside)
    python examples/seeds/c.py --quick        # seconds, for tests

Data: the first 5,000 zeros and the first 5,000 ones of the training set (10,000 images); test: every
0 and 1 of the test set (2,115 images). Inputs are x/255.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import Regime, accuracy, images, mnist, parse_args, report, train  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402
from tinygrad_cnn.random import default_generator  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        self.conv = nn.Conv2d(1, 5, 3, bias=False)  # (N, 5, 26, 26)
        self.bias = nn.Parameter(default_generator().uniform(-1 / 3, 1 / 3, (5, 26, 26)).astype(np.float32))
        self.fc1 = nn.Linear(5 * 25 * 25, 100)
        self.fc2 = nn.Linear(100, 2)

    def forward(self, x):
        x = (self.conv(x) + self.bias).relu()  # one bias per output position
        x = F.max_pool2d(x, 2, stride=1)  # (N, 5, 25, 25)
        return self.fc2(self.fc1(x.flatten(1)).tanh())  # logits; the softmax is in the loss


def log_loss_as_written(logits: tg.Tensor, y: np.ndarray) -> tg.Tensor:
    """The write-up's loss: softmax, then log of the probability of the true class."""
    p = F.softmax(logits, axis=1)
    p_true = (p * np.eye(2, dtype=np.float32)[y]).sum(axis=1)
    return -p_true.log().mean()


def zeros_and_ones(x: np.ndarray, y: np.ndarray, per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    idx = np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in (0, 1)]))
    return images(x[idx]), y[idx]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=5, flags={"--as-written": "softmax then log, under detect_anomaly()"})
    (x_train, y_train), (x_test, y_test) = mnist()
    x_tr, y_tr = zeros_and_ones(x_train, y_train, 300 if args.quick else 5000)
    x_te, y_te = zeros_and_ones(x_test, y_test, 300 if args.quick else None)
    tg.manual_seed(args.seed)
    model = Net()
    regime = Regime(lr=0.01, batch_size=1, stop_at=args.stop_at)
    data = (x_tr, y_tr, x_te, y_te)
    if not args.as_written:
        return report("C", train(model, F.cross_entropy, data, regime, args.epochs, args.seed, args.quiet))
    try:
        with tg.detect_anomaly():
            metrics = train(model, log_loss_as_written, data, regime, args.epochs, args.seed, args.quiet)
        metrics["anomaly"] = None
    except tg.AnomalyError as e:
        print(f"\nAnomalyError after {len(regime.history)} full epochs:\n{e}\n", flush=True)
        metrics = {
            "test_accuracy": accuracy(model, x_te, y_te),
            "epochs": len(regime.history),
            "train_seconds": regime.history[-1]["train_seconds"] if regime.history else 0.0,
            "history": regime.history,
            "anomaly": str(e).splitlines()[0],
        }
    return report("C (as written)", metrics)


if __name__ == "__main__":
    main()
