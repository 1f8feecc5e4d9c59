"""Seed B: conv 3x3 (8 filters) -> relu -> maxpool 2x2 -> linear -> softmax, full-batch GD on 100 images.

    python examples/seeds/b.py             # the write-up's regime: lr 0.1, 5 epochs (reported: train 17% -> 83%)
    python examples/seeds/b.py --quick     # 20 full-batch steps instead of 5, a 1,000-image test set

Inputs are x/255 - 0.5. The loss is softmax cross-entropy of the logits (F.cross_entropy). The
write-up's hand-written max-pool backward was wrong; here F.max_pool2d's gradient comes from its
composition, and tests/test_ops_grad.py checks it against finite differences.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Regime, accuracy, images, mnist, parse_args, report, train  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),  # (N, 8, 13, 13)
        nn.Flatten(),
        nn.Linear(13 * 13 * 8, 10),  # logits
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=5, quick_epochs=20)
    (x_train, y_train), (x_test, y_test) = mnist()
    n_test = 1000 if args.quick else len(x_test)
    data = (images(x_train[:100], 0.5), y_train[:100], images(x_test[:n_test], 0.5), y_test[:n_test])
    tg.manual_seed(args.seed)
    model = build_model()
    regime = Regime(lr=0.1, batch_size=None, stop_at=args.stop_at)
    metrics = train(model, F.cross_entropy, data, regime, args.epochs, args.seed, args.quiet)
    metrics["train_accuracy_first_epoch"] = metrics["history"][0]["train_accuracy"]
    metrics["train_accuracy_last_epoch"] = metrics["history"][-1]["train_accuracy"]
    metrics["train_accuracy"] = accuracy(model, data[0], data[1])  # after the last update
    return report("B", metrics)


if __name__ == "__main__":
    main()
