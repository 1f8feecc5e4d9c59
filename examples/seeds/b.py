"""Seed B: conv 3x3 (8 filters) -> relu -> maxpool 2x2 -> linear -> softmax, full-batch GD on 100 images.

    python examples/seeds/b.py                 # the write-up's regime and init: train accuracy 17% -> 83%
    python examples/seeds/b.py --default-init  # PyTorch's default init instead (does not reach 83% in 5 steps)
    python examples/seeds/b.py --pool-gradient ties  # the wrong max-pool backward of hand-written layers
    python examples/seeds/b.py --quick         # a 1,000-image test set (the 5 steps take well under a second)

Inputs are x/255 - 0.5. The loss is softmax cross-entropy of the logits (F.cross_entropy), averaged
over the 100 images; plain gradient descent at lr 0.1, 5 epochs of one full-batch step each. The
write-up's initialisation is the default: np.random.seed(1), then convW = randn(3, 3, 8) / 3 (kh, kw,
out channel), zero conv biases, logitsW = randn(1352, 10) / 135 with its rows in (h, w, c) order of
the pooled 13x13x8 map, zero logit biases; --seed S draws the same way from np.random.seed(S).
The write-up's hand-written max-pool backward was wrong; here F.max_pool2d's gradient comes from
its composition, and tests/test_ops_grad.py checks it against finite differences.
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

FILTERS, POOLED = 8, 13  # the pooled map is (N, 8, 13, 13)


class MaxPoolWrongGradient(nn.Module):
    """Max-pool 2x2 whose gradient goes, undivided, to every tied maximum ("ties") or every element ("window").

    Its forward is the max of each window; no backward is written: the output is the (constant) max
    plus ``sum(mask * (x - x.detach()))`` over the window, which is 0 but has gradient ``mask``.
    F.max_pool2d sends it to the first maximum only, as PyTorch does.
    """

    def __init__(self, to: str) -> None:
        self.to = to

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        n, c, h, w = x.shape
        windows = x.reshape(n, c, h // 2, 2, w // 2, 2)
        values = windows.numpy()
        top = values.max(axis=(3, 5), keepdims=True)
        mask = (values == top) if self.to == "ties" else np.ones_like(values, dtype=bool)
        return tg.Tensor(top[:, :, :, 0, :, 0]) + ((windows - windows.detach()) * mask.astype(values.dtype)).sum((3, 5))


def build_model(pool_gradient: str = "first") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, FILTERS, 3),
        nn.ReLU(),
        nn.MaxPool2d(2, 2) if pool_gradient == "first" else MaxPoolWrongGradient(pool_gradient),  # (N, 8, 13, 13)
        nn.Flatten(),  # features in (c, h, w) order
        nn.Linear(POOLED * POOLED * FILTERS, 10),  # logits
    )


def write_up_init(model: nn.Sequential, seed: int) -> None:
    """The write-up's weights, drawn in its order and layout, then laid out as Conv2d and Linear expect.

    The write-up's filters are (kh, kw, out); Conv2d's weight is (out, in, kh, kw). Its logit weights
    are (1352, 10) with one row per pooled feature in channels-last (h, w, c) order; Flatten gives the
    features in (c, h, w) order and Linear's weight is (out, in), so the rows are reordered, then transposed.
    """
    rng = np.random.RandomState(seed)  # the same stream as np.random.seed(seed); np.random.randn(...)
    conv_w = rng.randn(3, 3, FILTERS) / 3
    logits_w = rng.randn(POOLED * POOLED * FILTERS, 10) / 135
    chw_rows = logits_w.reshape(POOLED, POOLED, FILTERS, 10).transpose(2, 0, 1, 3).reshape(-1, 10)
    model.load_state_dict(
        {
            "0.weight": conv_w.transpose(2, 0, 1)[:, None],  # (8, 1, 3, 3)
            "0.bias": np.zeros(FILTERS),
            "4.weight": chw_rows.T,  # (10, 1352)
            "4.bias": np.zeros(10),
        }
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(
        argv,
        __doc__,
        epochs=5,
        quick_epochs=5,
        seed=1,
        flags={
            "--default-init": "PyTorch's default initialisation (seeded by --seed) instead of the write-up's",
            "--pool-gradient": {
                "choices": ["first", "ties", "window"],
                "default": "first",
                "help": "where max-pool sends its gradient: the first maximum (default, as PyTorch), or, "
                "as wrong hand-written backwards do, every tied maximum or every element of the window",
            },
        },
    )
    (x_train, y_train), (x_test, y_test) = mnist()
    n_test = 1000 if args.quick else len(x_test)
    data = (images(x_train[:100], 0.5), y_train[:100], images(x_test[:n_test], 0.5), y_test[:n_test])
    tg.manual_seed(args.seed)
    model = build_model(args.pool_gradient)
    if not args.default_init:
        write_up_init(model, args.seed)
    regime = Regime(lr=0.1, batch_size=None, stop_at=args.stop_at)
    metrics = train(model, F.cross_entropy, data, regime, args.epochs, args.seed, args.quiet)
    # The write-up's figures: the accuracy before each update (one full-batch step per epoch), then after the last.
    before = [h["train_accuracy"] for h in metrics["history"]]
    with tg.no_grad():
        metrics["train_loss"] = F.cross_entropy(model(tg.Tensor(data[0])), data[1]).item()  # after the last step
    metrics["train_accuracy"] = accuracy(model, data[0], data[1])
    metrics["train_accuracy_before_each_step"] = before
    if not args.quiet:
        print(
            "train accuracy before each step, then after the last: "
            + ", ".join(f"{a:.0%}" for a in before)
            + f" -> {metrics['train_accuracy']:.0%} (loss {metrics['train_loss']:.4f})"
        )
    return report("B", metrics)


if __name__ == "__main__":
    main()
