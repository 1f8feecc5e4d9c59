"""Seed E: conv 7x7 (32 filters, padding 1) -> relu -> linear -> softmax, minibatch SGD on all 60,000.

    python examples/seeds/e.py                   # the write-up's regime: batch 64, lr 0.01, 50 epochs
    python examples/seeds/e.py --stop-at 0.978   # ... ended at the first epoch at or past 97.8% test
    python examples/seeds/e.py --quick           # seconds, for tests

Inputs are x/255. The loss is softmax cross-entropy of the logits (F.cross_entropy, mean over the batch).
The write-up reported 97.71% test accuracy after 25 of its 50 planned epochs, then gave up: too long.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Regime, images, mnist, parse_args, report, train  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402

REPORTED = 0.9771  # the write-up's test accuracy, after 25 epochs


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 7, padding=1),
        nn.ReLU(),  # (N, 32, 24, 24)
        nn.Flatten(),
        nn.Linear(32 * 24 * 24, 10),  # logits
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=50)
    (x_train, y_train), (x_test, y_test) = mnist()
    n_train, n_test = (3000, 1000) if args.quick else (len(x_train), len(x_test))
    data = (images(x_train[:n_train]), y_train[:n_train], images(x_test[:n_test]), y_test[:n_test])
    tg.manual_seed(args.seed)
    model = build_model()
    regime = Regime(lr=0.01, batch_size=64, stop_at=args.stop_at, reported=REPORTED)
    return report("E", train(model, F.cross_entropy, data, regime, args.epochs, args.seed, args.quiet))


if __name__ == "__main__":
    main()
