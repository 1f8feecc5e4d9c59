"""Train a small CNN on the real MNIST, bundled with the package: no network, no PyTorch.

    python examples/mnist_cnn.py                  # the defaults reach >= 99% test accuracy
    python -m tinygrad_cnn.examples.mnist         # the same script, installed with the package (any directory)
    python examples/mnist_cnn.py --limit-train 5000 --epochs 1    # a quick look
    python examples/mnist_cnn.py --checkpoint run.h5              # save after every epoch ...
    python examples/mnist_cnn.py --checkpoint run.h5 --resume     # ... and continue exactly there
    python examples/mnist_cnn.py --plots plots/   # learning curves, filters, confusion matrix (needs matplotlib)
    mpiexec -n 2 python examples/mnist_cnn.py     # each batch's halves on two cores, in two processes (MPI)

The model is ordinary composed layers; tinygrad_cnn's tape differentiates it. Read it top to
bottom: data, model, optimizer, the training loop, evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F
from tinygrad_cnn import nn, optim, plots
from tinygrad_cnn.datasets import DataLoader, DatasetError, load_mnist

MEAN, STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set


def build_model() -> nn.Module:
    """Two conv-relu-pool blocks and a small classifier: (N, 1, 28, 28) -> (N, 10) logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (N, 16, 12, 12)
        nn.Conv2d(16, 32, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (N, 32, 4, 4)
        nn.Flatten(),  # -> (N, 512)
        nn.Linear(512, 10),
    )


def normalize(images: np.ndarray) -> tg.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised."""
    x = images.astype(np.float32)[:, None] * np.float32(1 / 255)
    return tg.Tensor((x - np.float32(MEAN)) * np.float32(1 / STD))


def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, progress: Progress | None = None, chunk: int = 1000
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy loss and the predicted classes on a held-out set, ``chunk`` images at a time.

    ``model.predict`` runs in eval mode without a graph, in pieces of 128 images spread over the cores.
    """
    total_loss, preds = 0.0, []
    for done, start in enumerate(range(0, len(images), chunk), start=1):
        logits = model.predict(normalize(images[start : start + chunk]))
        part = labels[start : start + chunk]
        total_loss += F.cross_entropy(logits, part).item() * len(part)
        preds.append(logits.argmax(1).numpy())
        if progress is not None:
            progress.update(done, start + len(part), total_loss / (start + len(part)))
    return total_loss / len(images), np.concatenate(preds)


def write_plots(
    directory: str,
    model: nn.Module,
    history: list[dict],
    batch_losses: list[tuple[float, float]],
    images: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
) -> list[str]:
    """Learning curves, first-layer filters, confusion matrix and misclassified digits as PNGs."""
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return [
        str(path)
        for path in (
            plots.learning_curves(history, os.path.join(directory, "learning_curves.png"), batch_losses),
            plots.filter_grid(first_conv.weight, os.path.join(directory, "filters.png"), "First-layer filters"),
            plots.confusion_matrix(confusion_matrix(labels, preds), os.path.join(directory, "confusion_matrix.png")),
            plots.misclassified(images, labels, preds, os.path.join(directory, "misclassified.png")),
        )
    ]


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, classes: int = 10) -> np.ndarray:
    return np.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)


def format_confusion(cm: np.ndarray) -> str:
    head = "true\\pred " + " ".join(f"{c:>5}" for c in range(len(cm)))
    return "\n".join([head] + [f"{t:>9} " + " ".join(f"{v:>5}" for v in row) for t, row in enumerate(cm)])


class Progress:
    """One line per batch on a terminal; ``piped_lines`` lines when output goes to a file (0: none)."""

    def __init__(self, total: int, label: str, enabled: bool, piped_lines: int = 4) -> None:
        self.total, self.label = total, label
        self.tty = sys.stdout.isatty()
        self.enabled = enabled and (self.tty or piped_lines > 0)
        self.start = time.perf_counter()
        self.every = 1 if self.tty else max(1, total // max(piped_lines, 1))

    def update(self, done: int, images: int, mean_loss: float) -> None:
        if not self.enabled or (done % self.every and done != self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = images / elapsed if elapsed else 0.0
        eta = elapsed / done * (self.total - done)
        line = f"{self.label} [{done:>4}/{self.total}] mean loss {mean_loss:.4f} {rate:,.0f} img/s ETA {eta:4.0f}s"
        print(("\r" + line) if self.tty else line, end="" if self.tty and done != self.total else "\n", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="\n".join(__doc__.split("\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3 for adam/adamw, 0.1 sgd)")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam", help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="model init and shuffling (default %(default)s)")
    p.add_argument("--data", default=None, help="your own MNIST: a directory of IDX files, a .h5 or an .npz")
    p.add_argument("--checkpoint", default=None, help="save model and training state here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--limit-train", type=int, default=None, metavar="N", help="train on the first N images only")
    p.add_argument("--json", action="store_true", help="print a final JSON line of metrics")
    p.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="write learning curves, filters, confusion matrix, misclassified digits (PNG; needs "
        "matplotlib) and metrics.jsonl to DIR",
    )
    p.add_argument("--metrics", default=None, metavar="FILE", help="write the metrics of every epoch as JSON lines")
    p.add_argument("--quiet", action="store_true", help="no per-batch progress")
    args = p.parse_args(argv)
    if args.resume and not args.checkpoint:
        p.error("--resume needs --checkpoint PATH")
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be positive")
    if args.limit_train is not None and args.limit_train < 1:
        p.error("--limit-train must be positive")
    if args.lr is None:
        args.lr = 0.1 if args.optimizer == "sgd" else 3e-3
    if args.plots and not plots.available():
        p.error(f"--plots needs matplotlib, which is not installed: {plots.INSTALL_HINT}")
    if args.plots and not args.metrics:
        args.metrics = os.path.join(args.plots, "metrics.jsonl")
    return args


def join_mpi_job() -> tuple[int, int]:
    """(rank, number of ranks): under ``mpiexec`` (MPICH, Open MPI), join the job; else (0, 1)."""
    if not any(k in os.environ for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")):
        return 0, 1
    from tinygrad_cnn import distributed as dist  # needs the mpi extra

    dist.init_process_group(backend="mpi")
    return dist.get_rank(), dist.get_world_size()


def sum_over_ranks(*values: float) -> list:
    """Each value summed over the ranks of the MPI job (ints stay ints)."""
    from tinygrad_cnn import distributed as dist

    totals = np.array(values, np.float64)
    dist.all_reduce(totals)
    return [type(v)(t) for v, t in zip(values, totals)]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # Under mpiexec -n N, each rank computes the gradient of 1/N of every batch and the ranks
    # average them (DistributedDataParallel), so the run is the single-process one with the same
    # batches; rank 0 alone prints, evaluates and writes files (docs/training.md).
    rank, world = join_mpi_job()
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the rest of this process)
    try:
        (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    if args.limit_train:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    smallest_batch = min(args.batch_size, len(x_train) % args.batch_size or args.batch_size)
    if smallest_batch < world:
        sys.exit(f"error: a batch of {smallest_batch} images cannot be split over {world} ranks; change --batch-size")
    print(
        f"MNIST: {len(x_train):,} training and {len(x_test):,} test images"
        f" ({'bundled' if args.data is None else args.data})"
    )

    tg.manual_seed(args.seed)
    model = build_model()
    loader = DataLoader(x_train, y_train, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    make: dict[str, Callable[..., optim.Optimizer]] = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "sgd": lambda p, lr: optim.SGD(p, lr, momentum=0.9),
    }
    optimizer = make[args.optimizer](model.parameters(), lr=args.lr)

    def one_cycle(last_epoch: int = -1) -> optim.OneCycleLR:
        """This run's schedule; ``last_epoch`` resumes it after that many steps (PyTorch's convention).
        The learning rate only: Adam's beta1 stays 0.9 (PyTorch's default cycle_momentum=True would cycle it)."""
        total = args.epochs * len(loader)
        return optim.OneCycleLR(optimizer, args.lr, total, cycle_momentum=False, last_epoch=last_epoch)

    schedule = one_cycle()
    history: list[dict] = []
    start_epoch, trained_seconds = 0, 0.0

    # What a resumed run must share with the run that wrote the checkpoint to continue it exactly,
    # by option (--epochs too: the learning-rate schedule spans all epochs).
    config = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "seed": args.seed,
        "train_images": len(x_train),
        "data": args.data,
    }
    option = {"train_images": "--limit-train"}  # the other keys are their options' names
    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        try:
            state = tg.load(args.checkpoint)
            saved = state.get("config", config)
            changed = [
                f"{option.get(k, '--' + k.replace('_', '-'))} {saved[k]} (now {v})"
                for k, v in config.items()
                if k in saved and saved[k] != v  # a key it lacks: written before that option was checked
            ]
            if changed:
                raise ValueError(
                    "it was written with other options: "
                    + ", ".join(changed)
                    + "; resume with the same options, or start a new --checkpoint"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state["schedule"].get("total_steps") == schedule.total_steps:
                schedule.load_state_dict(state["schedule"])
            else:  # --epochs changed: this run's schedule, continued from the checkpoint's step
                schedule = one_cycle(last_epoch=int(state["schedule"]["last_epoch"]) - 1)
            loader.load_state_dict(state["loader"])
            tg.set_rng_state(state["rng"])
            start_epoch, trained_seconds, history = state["epoch"], state["seconds"], state["history"]
        except KeyError as e:  # an entry missing from the file
            detail = str(e.args[0]) if e.args else ""
            sys.exit(
                f"error: cannot resume from {args.checkpoint}: "
                + (detail if " " in detail else f"it has no {detail!r} entry (not this example's checkpoint?)")
            )
        except (tg.CheckpointError, ValueError, TypeError, AttributeError, RuntimeError) as e:
            # RuntimeError: load_state_dict's missing, unexpected or mismatched keys, as in PyTorch
            sys.exit(f"error: cannot resume from {args.checkpoint}: {e}")
        print(f"resumed from {args.checkpoint} after epoch {start_epoch}")
    if start_epoch == 0:
        print(model.summary((1, 1, 28, 28)))
    if args.metrics:  # one JSON object per epoch, rewritten from the history on resume
        plots.write_jsonl(history, args.metrics)
    batch_losses: list[tuple[float, float]] = []  # (fractional epoch, loss) for the learning-curve plot

    if world > 1:
        from tinygrad_cnn.nn.parallel import DistributedDataParallel

        net: nn.Module = DistributedDataParallel(model)  # averages the ranks' gradients in backward
    else:
        net = model

    def test_progress() -> Progress:  # on a terminal only: the epoch line that follows has the figures
        return Progress(-(-len(x_test) // 1000), "test", enabled=not args.quiet, piped_lines=0)

    for epoch in range(start_epoch, args.epochs):
        t0 = time.perf_counter()
        progress = Progress(len(loader), f"epoch {epoch + 1}/{args.epochs}", enabled=not args.quiet)
        total_loss, correct, seen = 0.0, 0, 0
        for step, (images, labels) in enumerate(loader, start=1):
            if world > 1:  # this rank's part of the batch
                lo, hi = len(labels) * rank // world, len(labels) * (rank + 1) // world
                images, labels = images[lo:hi], labels[lo:hi]
            optimizer.zero_grad()
            logits = net(normalize(images))
            loss_tensor = F.cross_entropy(logits, labels)
            loss_tensor.backward()
            loss, logits = loss_tensor.item(), logits.detach().numpy()
            optimizer.step()
            schedule.step()
            total_loss += loss * len(labels)
            correct += int((logits.argmax(axis=1) == labels).sum())
            seen += len(labels)
            progress.update(step, seen * world, total_loss / seen)
            batch_losses.append((epoch + step / len(loader), loss))
        seconds = time.perf_counter() - t0
        trained_seconds += seconds
        if world > 1:
            total_loss, correct, seen = sum_over_ranks(total_loss, correct, seen)
            if rank != 0:
                continue  # rank 0 evaluates and saves; the others wait for it at the next step
        test_loss, test_preds = evaluate(model, x_test, y_test, test_progress())
        test_acc = float((test_preds == y_test).mean())
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "seconds": seconds,
            "images_per_second": seen / seconds,
        }
        history.append(record)
        if args.metrics:
            plots.write_jsonl([record], args.metrics, append=True)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {record['loss']:.4f}, train accuracy {correct / seen:.2%}, "
            f"test accuracy {test_acc:.2%}, {seconds:.1f}s ({seen / seconds:,.0f} img/s)",
            flush=True,
        )
        if args.checkpoint:
            tg.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "loader": loader.state_dict(),
                    "rng": tg.get_rng_state(),
                    "epoch": epoch + 1,
                    "seconds": trained_seconds,
                    "history": history,
                    "config": config,
                },
                args.checkpoint,
            )

    if rank != 0:
        return {}
    if start_epoch >= args.epochs:  # a resumed run that had already finished: evaluate it once
        test_preds = evaluate(model, x_test, y_test, test_progress())[1]
    preds = test_preds
    test_acc = float((preds == y_test).mean())
    print(
        f"\ntest accuracy {test_acc:.2%} ({int((preds == y_test).sum()):,}/{len(y_test):,}), "
        f"training time {trained_seconds:.1f}s"
    )
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(format_confusion(confusion_matrix(y_test, preds)))
    metrics = {
        "test_accuracy": test_acc,
        "train_seconds": trained_seconds,
        "epochs": args.epochs,
        "train_images_per_second": sum(h["images_per_second"] for h in history) / max(len(history), 1),
        "history": history,
    }
    if args.plots:
        written = write_plots(args.plots, model, history, batch_losses, x_test, y_test, preds)
        print(f"plots: {', '.join(written)}; metrics: {args.metrics}")
    if args.json:
        print(
            json.dumps(
                {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
            )
        )
    return metrics


if __name__ == "__main__":
    main()
