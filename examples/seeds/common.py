"""What the five seed scripts share: the command line, MNIST as float32 tensors, the SGD loop, evaluation.

Each seed script (a.py ... e.py) defines its model and loss and calls :func:`run`. Nothing here
writes a backward pass: the loop is forward, ``loss.backward()``, ``optimizer.step()``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.datasets import load_mnist

_MNIST: tuple | None = None


def mnist() -> tuple:
    """The bundled MNIST, loaded once per process: ((x_train, y_train), (x_test, y_test)) as uint8/int64."""
    global _MNIST
    if _MNIST is None:
        _MNIST = load_mnist()
    return _MNIST


def images(x: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) holding x/255 - shift."""
    return (x.astype(np.float32)[:, None] * np.float32(1 / 255) - np.float32(shift)).astype(np.float32)


def parse_args(
    argv: list[str] | None,
    doc: str,
    epochs: int,
    quick_epochs: int = 1,
    lr: float | None = None,
    quick_lr: float | None = None,
    flags: dict[str, str | dict] | None = None,
    seed: int = 0,
) -> argparse.Namespace:
    """--epochs, --seed, --quick, --quiet, --stop-at; --lr when ``lr`` is given; ``flags`` {name: help} are
    boolean, {name: {argparse keywords}} any other option; ``seed`` is --seed's default.

    Without --epochs, a run has ``epochs`` epochs (the write-up's regime), or ``quick_epochs`` with --quick;
    likewise without --lr, the learning rate is ``lr``, or ``quick_lr`` (when given) with --quick.
    """
    p = argparse.ArgumentParser(
        description=doc.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(doc.split("\n")[1:]),
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"default {epochs}, the write-up's regime ({quick_epochs} with --quick)",
    )
    if lr is not None:
        p.add_argument(
            "--lr",
            type=float,
            default=None,
            help=f"default {lr}" + (f" ({quick_lr} with --quick)" if quick_lr is not None else ""),
        )
    for name, spec in (flags or {}).items():
        p.add_argument(name, **(spec if isinstance(spec, dict) else {"action": "store_true", "help": spec}))
    p.add_argument("--seed", type=int, default=seed, help=f"default {seed}")
    p.add_argument("--quick", action="store_true", help="a few seconds on a small subset, for tests")
    p.add_argument("--quiet", action="store_true", help="only the final JSON line")
    p.add_argument(
        "--stop-at",
        type=float,
        default=None,
        metavar="ACC",
        help="end after the first epoch whose test accuracy reaches ACC (e.g. 0.978)",
    )
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = quick_epochs if args.quick else epochs
    if lr is not None and args.lr is None:
        args.lr = quick_lr if args.quick and quick_lr is not None else lr
    if args.epochs < 1:
        p.error("--epochs must be positive")
    return args


@dataclass
class Regime:
    """How a model is trained: plain SGD (no momentum) at ``lr`` on batches of ``batch_size``.

    ``batch_size=None`` is full-batch gradient descent. ``stop_at`` ends training after the first
    epoch whose test accuracy reaches it (None: run every epoch). ``reported`` is the write-up's test
    accuracy: the metrics then name the first epoch (and the training seconds) that reached it.
    """

    lr: float
    batch_size: int | None = 1
    shuffle: bool = True
    stop_at: float | None = None
    reported: float | None = None
    log_every: int = 0  # print the running loss every this many steps (0: a few times per epoch)
    history: list[dict] = field(default_factory=list)


@tg.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    return np.concatenate(
        [model(tg.Tensor(x[i : i + batch_size])).data.argmax(axis=1) for i in range(0, len(x), batch_size)]
    )


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x) == y).mean())


def train(
    model: nn.Module,
    loss_fn: Callable[[tg.Tensor, np.ndarray], tg.Tensor],
    data: tuple,
    regime: Regime,
    epochs: int,
    seed: int,
    quiet: bool = False,
) -> dict:
    """Train ``model`` with ``loss_fn(outputs, labels)`` and return the metrics of the run.

    The per-epoch record holds the running loss and train accuracy (of the outputs seen *during* the
    epoch, before each update, as the write-ups printed them), the test accuracy after the epoch, the
    seconds spent training in that epoch and the cumulative training seconds (evaluation excluded).
    """
    x_train, y_train, x_test, y_test = data
    n = len(x_train)
    bs = n if regime.batch_size is None else regime.batch_size
    optimizer = optim.SGD(model.parameters(), lr=regime.lr)
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-n // bs)
    log_every = regime.log_every or max(1, steps_per_epoch // 4)
    trained = 0.0
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n) if regime.shuffle and bs < n else np.arange(n)
        total_loss, correct, t0 = 0.0, 0, time.perf_counter()
        for step in range(steps_per_epoch):
            idx = order[step * bs : (step + 1) * bs]
            out = model(tg.Tensor(x_train[idx]))
            loss = loss_fn(out, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += int((out.data.argmax(axis=1) == y_train[idx]).sum())
            if (step + 1) % log_every == 0 and steps_per_epoch > 1:
                seen = (step + 1) * bs if step + 1 < steps_per_epoch else n
                say(
                    f"  epoch {epoch} [{min(seen, n):>6}/{n}] running loss {total_loss / min(seen, n):.4f} "
                    f"{time.perf_counter() - t0:6.1f}s"
                )
        seconds = time.perf_counter() - t0
        trained += seconds
        record = {
            "epoch": epoch,
            "loss": total_loss / n,
            "train_accuracy": correct / n,
            "test_accuracy": accuracy(model, x_test, y_test),
            "seconds": seconds,
            "train_seconds": trained,
        }
        regime.history.append(record)
        say(
            f"epoch {epoch}/{epochs}: loss {record['loss']:.4f}, train accuracy {record['train_accuracy']:.2%}, "
            f"test accuracy {record['test_accuracy']:.2%}, {seconds:.1f}s (total {trained:.1f}s)"
        )
        if regime.stop_at is not None and record["test_accuracy"] >= regime.stop_at:
            say(f"test accuracy {record['test_accuracy']:.2%} >= {regime.stop_at:.2%}: stopping")
            break
    metrics = {
        "test_accuracy": regime.history[-1]["test_accuracy"],
        "train_seconds": trained,
        "epochs": len(regime.history),
    }
    if regime.reported is not None:
        passed = [h for h in regime.history if h["test_accuracy"] >= regime.reported]
        metrics["epochs_to_reported"] = passed[0]["epoch"] if passed else None
        metrics["train_seconds_to_reported"] = passed[0]["train_seconds"] if passed else None
    return {**metrics, "history": regime.history}


def report(name: str, metrics: dict) -> dict:
    """Print the final JSON line (floats rounded, NaN as null) and return ``{"model": name, **metrics}``."""
    out = {"model": name, **metrics}

    def clean(v):
        if isinstance(v, float):
            return round(v, 6) if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(w) for k, w in v.items()}
        if isinstance(v, list):
            return [clean(w) for w in v]
        return v

    print(json.dumps(clean(out)), flush=True)
    return out
