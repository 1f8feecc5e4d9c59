"""Seed A: conv 5x5 (5 filters, no bias) -> relu -> linear -> softmax, per-sample SGD on 3,500 images.

    python examples/seeds/a.py             # the write-up's regime: lr 0.01, 50 epochs (reported: 84.6% test)
    python examples/seeds/a.py --quick     # seconds, for tests

Inputs are x/255. The loss is softmax cross-entropy, computed from the logits (F.cross_entropy).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Regime, images, mnist, parse_args, report, train  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 5, 5, bias=False),
        nn.ReLU(),  # (N, 5, 24, 24)
        nn.Flatten(),
        nn.Linear(24 * 24 * 5, 10),  # logits; softmax is inside the loss
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=50, quick_epochs=2)
    (x_train, y_train), (x_test, y_test) = mnist()
    n_train, n_test = (500, 1000) if args.quick else (3500, len(x_test))
    data = (images(x_train[:n_train]), y_train[:n_train], images(x_test[:n_test]), y_test[:n_test])
    tg.manual_seed(args.seed)
    model = build_model()
    regime = Regime(lr=0.01, batch_size=1, stop_at=args.stop_at, reported=0.846)
    return report("A", train(model, F.cross_entropy, data, regime, args.epochs, args.seed, args.quiet))


if __name__ == "__main__":
    main()
