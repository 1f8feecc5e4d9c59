"""Training plots with matplotlib, an optional dependency (``pip install "tinygrad_cnn[plots]"``).

matplotlib is imported inside each function, never when this module is imported, and only its
object-oriented ``Figure`` API is used: no pyplot state, no backend switch, so the functions are
safe to call from scripts, tests and notebooks alike. Every function writes one image file
(the format follows the suffix: .png, .svg, .pdf) and returns its path.

- :func:`learning_curves`: loss and accuracy per epoch, train and test.
- :func:`filter_grid`: the learned filters of a convolution as an image grid.
- :func:`confusion_matrix`: a labelled confusion matrix.
- :func:`misclassified`: a grid of misclassified images with predicted and true labels.
- :func:`write_jsonl`: metrics as JSON lines (needs no matplotlib).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install "tinygrad_cnn[plots]" (in a clone: pip install -e ".[plots]")'


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"tinygrad_cnn.plots needs matplotlib: {INSTALL_HINT}") from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | Path, append: bool = False) -> Path:
    """Write one JSON object per line (e.g. one per epoch), readable by pandas.read_json(lines=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        for r in records:
            f.write(json.dumps(dict(r)) + "\n")
    return path


def learning_curves(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    batch_losses: Sequence[tuple[float, float]] | None = None,
    dpi: int = 200,
) -> Path:
    """Loss (left) and accuracy (right) per epoch, train and test.

    ``history``: one dict per epoch with ``epoch`` and any of ``loss`` (mean training loss),
    ``test_loss``, ``train_accuracy`` and ``test_accuracy`` (fractions). ``batch_losses``:
    optional ``(fractional epoch, loss)`` pairs drawn faintly behind the per-epoch training loss.
    """
    fig = _figure(9, 3.4)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    if batch_losses:
        xs, ys = (np.asarray(v, dtype=np.float64) for v in zip(*batch_losses))
        window = max(1, len(ys) // 50)  # a running mean: single batches are too noisy to read
        if window > 1:
            ys = np.convolve(ys, np.ones(window) / window, mode="valid")
            xs = xs[window - 1 :]
        label = f"train (mean of {window} batches)" if window > 1 else "train (per batch)"
        ax_loss.plot(xs, ys, color="tab:blue", alpha=0.35, linewidth=1, label=label)
    for key, label, color in (("loss", "train (epoch mean)", "tab:blue"), ("test_loss", "test", "tab:orange")):
        points = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
        if points:
            ax_loss.plot(*zip(*points), marker="o", color=color, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="Loss", yscale="log")
    ax_loss.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    for key, label, color in (("train_accuracy", "train", "tab:blue"), ("test_accuracy", "test", "tab:orange")):
        points = [(e, 100 * h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
        if points:
            ax_acc.plot(*zip(*points), marker="o", color=color, label=label)
            e, v = points[-1]
            below = key == "train_accuracy"
            ax_acc.annotate(
                f"{v:.2f}%",
                (e, v),
                textcoords="offset points",
                xytext=(-6, -14 if below else 7),
                ha="right",
                fontsize=8,
                color=color,
            )
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_acc.margins(x=0.08, y=0.12)
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        if epochs:
            ax.set_xticks(range(1, int(max(epochs)) + 1))
    return _save(fig, path, dpi)


def filter_grid(weight: Any, path: str | Path, title: str = "Learned filters", dpi: int = 200) -> Path:
    """The filters of a convolution weight ``(C_out, C_in, kh, kw)`` as an image grid.

    One tile per output channel (input channels averaged when there are several), all on one
    symmetric colour scale shown beside the grid: red positive, blue negative, white zero.
    """
    w = np.asarray(getattr(weight, "data", weight), dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: expected a conv weight (C_out, C_in, kh, kw), got shape {w.shape}")
    tiles = w.mean(axis=1)
    n = len(tiles)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = _figure(1.0 * cols + 1.0, 1.0 * rows + 0.5)
    fig.suptitle(title, fontsize=10)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    m = float(np.abs(tiles).max()) or 1.0
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < n:
            image = ax.imshow(tiles[i], cmap="bwr", vmin=-m, vmax=m, interpolation="nearest")
            ax.set_title(str(i), fontsize=7, pad=2)
    fig.colorbar(image, ax=axes.tolist(), label="weight", shrink=0.8)
    return _save(fig, path, dpi)


def confusion_matrix(
    cm: Any, path: str | Path, labels: Sequence[str] | None = None, title: str = "Confusion matrix", dpi: int = 200
) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with every count written in.

    Colours follow the fraction of each true class, on a log scale, so a few mistakes stand out
    next to thousands of correct predictions.
    """
    from matplotlib.colors import LogNorm

    cm = np.asarray(cm)
    k = len(cm)
    labels = [str(i) for i in range(k)] if labels is None else list(labels)
    fractions = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = _figure(6.4, 5.6)
    ax = fig.subplots()
    image = ax.imshow(np.maximum(fractions, 1e-4), cmap="Blues", norm=LogNorm(vmin=1e-4, vmax=1))
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.85)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=9 if i == j else 8,
                    fontweight="bold" if i == j else "normal",
                    color="white" if fractions[i, j] > 0.3 else "black",
                )
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    total = int(cm.sum())
    if total:
        ax.set_title(f"{title}: {int(np.trace(cm)):,}/{total:,} correct", fontsize=10)
    return _save(fig, path, dpi)


def misclassified(
    images: Any, labels: Any, preds: Any, path: str | Path, max_images: int = 32, cols: int = 8, dpi: int = 200
) -> Path:
    """A grid of the first ``max_images`` misclassified images, titled "pred P (true T)".

    ``images``: (N, H, W) or (N, 1, H, W); ``labels`` and ``preds``: (N,) class indices.
    """
    images, labels, preds = np.asarray(images), np.asarray(labels), np.asarray(preds)
    if images.ndim == 4:
        images = images[:, 0]
    wrong = np.flatnonzero(labels != preds)
    shown = wrong[:max_images]
    n = max(len(shown), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = _figure(1.1 * cols, 1.25 * rows + 0.4)
    fig.suptitle(
        f"{len(wrong):,} misclassified of {len(labels):,}"
        + (f" (first {len(shown)})" if len(wrong) > len(shown) else ""),
        fontsize=10,
    )
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, i in zip(axes, list(shown) + [None] * (len(axes) - len(shown))):
        ax.set_axis_off()
        if i is not None:
            ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
            ax.set_title(f"pred {preds[i]} (true {labels[i]})", fontsize=7, color="tab:red", pad=2)
    return _save(fig, path, dpi)
