"""Use several CPU cores for one training step: split the batch, one shard per thread.

NumPy releases the GIL inside its copies, ufuncs and BLAS calls, so the forward and backward
passes of two half-batches really run side by side on two cores. Each thread records its own tape
(grad mode is per thread) and computes its gradients with :func:`tinygrad_cnn.grad`, which leaves
``.grad`` alone; the caller's thread then adds the size-weighted sum into ``.grad``, so the result
equals one ``loss.backward()`` over the whole batch for a mean-reduced loss (up to float rounding).

    loss, _ = parallel.backward(lambda x, y: F.cross_entropy(model(tg.Tensor(x)), y),
                                model.parameters(), images, labels, workers=2)
    optimizer.step()

The model itself is unchanged: ordinary composed ops. Random ops inside ``fn`` (dropout) draw
from the shared generator in whatever order the threads reach it, so runs that use them are
reproducible only with ``workers=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .autograd import grad
from .tensor import Tensor

_pools: dict[int, ThreadPoolExecutor] = {}


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tinygrad_cnn")
    return _pools[workers]


def backward(
    fn: Callable[..., Tensor | tuple[Tensor, Any]],
    params: Sequence[Tensor],
    *arrays: np.ndarray,
    workers: int | None = None,
) -> tuple[float, list[Any]]:
    """Accumulate into ``p.grad`` the gradient of ``fn`` over the whole batch, computed in shards.

    ``fn(*shards)`` gets the same slice (along axis 0) of every array and returns a mean-reduced
    scalar loss Tensor, or ``(loss, extra)``. The shards are computed in ``workers`` threads
    (default: one per core). Returns the batch's loss (the size-weighted mean of the shards')
    and the list of ``extra`` values, one per shard in batch order (e.g. logits, to count correct
    predictions).
    """
    if not arrays:
        raise ValueError("parallel.backward: needs at least one array to split")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"parallel.backward: arrays of different lengths {[len(a) for a in arrays]}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"parallel.backward: workers must be >= 1, got {workers}")
    bounds = np.linspace(0, n, min(workers, n) + 1).astype(int)
    shards = [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def run(shard: tuple[np.ndarray, ...]) -> tuple[float, Any, tuple[Tensor, ...]]:
        out = fn(*shard)
        loss, extra = out if isinstance(out, tuple) else (out, None)
        if not isinstance(loss, Tensor) or loss.size != 1:
            raise ValueError("parallel.backward: fn must return a scalar loss Tensor (or (loss, extra))")
        return loss.item(), extra, grad(loss, params, allow_unused=True)

    if len(shards) == 1:
        results = [run(shards[0])]
    else:
        results = list(_pool(len(shards)).map(run, shards))
    weights = [len(s[0]) / n for s in shards]
    for i, p in enumerate(params):
        total = sum(w * r[2][i].data for w, r in zip(weights, results))
        total = np.asarray(total, dtype=p.dtype)
        p.grad = total if p.grad is None else p.grad + total
    loss = sum(w * r[0] for w, r in zip(weights, results))
    return float(loss), [r[1] for r in results]
