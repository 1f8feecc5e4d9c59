"""Inference on several cores: :func:`map_batches` (what ``Module.predict`` uses).

A batch is cut into pieces of ``batch_size`` samples, spread over one thread per core. NumPy
releases the GIL inside its copies, ufuncs and BLAS calls, and nothing is recorded (no graph),
so the pieces really run side by side. While they do, each op runs on its worker's thread alone
(each worker has a core already; :func:`tinygrad_cnn.threads.capped` sets it), BLAS included.

Training on several cores (or machines) is data-parallel across processes with MPI: see
:mod:`tinygrad_cnn.distributed` and :class:`tinygrad_cnn.nn.parallel.DistributedDataParallel`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._tensor import Tensor
from .autograd import no_grad
from .threads import capped, usable_cores
from .validation import positive_int

_pools: dict[int, ThreadPoolExecutor] = {}


def default_workers() -> int:
    """The number of cores this process may use (its CPUs, fewer under a cgroup CPU quota)."""
    return max(1, int(usable_cores().cores))


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tinygrad_cnn")
    return _pools[workers]


def map_batches(
    fn: Callable[[Tensor], Tensor | np.ndarray],
    x: Tensor | np.ndarray,
    batch_size: int = 128,
    workers: int | None = None,
) -> Tensor:
    """``fn`` applied to consecutive slices of ``batch_size`` samples of ``x`` (axis 0), the outputs
    concatenated: inference in cache-sized pieces, spread over ``workers`` threads (default: one per core).

    Runs without recording a graph. ``fn`` must treat samples independently (every layer of
    :mod:`tinygrad_cnn.nn` does in eval mode) and return one output per sample along axis 0.
    Why pieces: on a CPU, a whole large batch's activations do not fit in the cache, and every op
    then streams them from memory; LeNet-ish on 1,000 MNIST digits ran 1.7x faster in pieces of
    128 than in one piece, on one core (docs/performance.md).
    """
    positive_int("map_batches", "batch_size", batch_size)
    workers = positive_int("map_batches", "workers", default_workers() if workers is None else workers)
    data = x.array if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim == 0:
        raise ValueError("map_batches: x must have a batch axis, got a 0-d array")
    starts = list(range(0, len(data), batch_size)) or [0]

    def run(start: int) -> np.ndarray:
        piece = data[start : start + batch_size]
        with no_grad():
            out = fn(Tensor.wrap(piece))
        out = out.array if isinstance(out, Tensor) else np.asarray(out)
        if out.ndim == 0 or len(out) != len(piece):
            raise ValueError(
                f"map_batches: fn returned shape {out.shape} for a batch of {len(piece)}; "
                "it must return one output per sample along axis 0"
            )
        return out

    if workers == 1 or len(starts) == 1:
        outputs = [run(start) for start in starts]
    else:
        with capped(1):
            outputs = list(_pool(min(workers, len(starts))).map(run, starts))
    return Tensor.wrap(np.concatenate(outputs))
