"""Use several CPU cores: split a batch, one shard per thread, for a training step or for inference.

NumPy releases the GIL inside its copies, ufuncs and BLAS calls, so the forward and backward
passes of two half-batches really run side by side on two cores. Each thread records its own tape
(grad mode is per thread) and computes its gradients with :func:`tinygrad_cnn.grad`, which leaves
``.grad`` alone; the caller's thread then adds the size-weighted sum into ``.grad``, so the result
equals one ``loss.backward()`` over the whole batch for a mean-reduced loss (up to float rounding).

    loss, _ = parallel.backward(lambda x, y: F.cross_entropy(model(tg.Tensor(x)), y),
                                model.parameters(), images, labels, workers=2)
    optimizer.step()

While the shards run, NumPy's OpenBLAS is limited to one thread (each worker has a core already).
The model itself is unchanged: ordinary composed ops. Random ops inside ``fn`` (dropout) draw
from the shared generator in whatever order the threads reach it, so runs that use them are
reproducible only with ``workers=1``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .autograd import grad, no_grad
from .tensor import Tensor

_pools: dict[int, ThreadPoolExecutor] = {}


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _OpenBLAS:
    """NumPy's bundled OpenBLAS, found among the loaded libraries, to set its thread count.

    Each worker already has a core: a GEMM that also spreads over every core would oversubscribe
    them (measured: slower than one thread). Does nothing where the BLAS is not OpenBLAS.
    """

    _prefixes = ("scipy_openblas", "openblas")  # NumPy >= 2 wheels, then plain OpenBLAS builds
    _suffixes = ("64_", "")

    def __init__(self) -> None:
        self.get = self.set = None
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        except OSError:
            return
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in self._prefixes:
                for suffix in self._suffixes:
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None:
                        self.get, self.set = get, set_
                        return


_blas: _OpenBLAS | None = None
_blas_lock = threading.Lock()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with NumPy's OpenBLAS on one thread (restored afterwards)."""
    global _blas
    with _blas_lock:
        if _blas is None:
            _blas = _OpenBLAS()
    if _blas.set is None:
        yield
        return
    previous = _blas.get()
    _blas.set(1)
    try:
        yield
    finally:
        _blas.set(previous)


def _positive_int(op: str, name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tinygrad_cnn")
    return _pools[workers]


def backward(
    fn: Callable[..., Tensor | tuple[Tensor, Any]],
    params: Sequence[Tensor],
    *arrays: np.ndarray,
    workers: int | None = None,
    shard_size: int | None = None,
) -> tuple[float, list[Any]]:
    """Accumulate into ``p.grad`` the gradient of ``fn`` over the whole batch, computed in shards.

    ``fn(*shards)`` gets the same slice (along axis 0) of every array and returns a mean-reduced
    scalar loss Tensor, or ``(loss, extra)``. The shards are computed in ``workers`` threads
    (default: one per core). There is one shard per worker, or, with ``shard_size``, as many
    equal shards of at most that many samples as it takes (more shards than workers: each
    thread runs several in turn, and a smaller shard's activations stay in the cache). Returns
    the batch's loss (the size-weighted mean of the shards') and the list of ``extra`` values,
    one per shard in batch order (e.g. logits, to count correct predictions).
    """
    if not arrays:
        raise ValueError("parallel.backward: needs at least one array to split")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"parallel.backward: arrays of different lengths {[len(a) for a in arrays]}")
    workers = _positive_int("parallel.backward", "workers", default_workers() if workers is None else workers)
    if shard_size is not None:
        _positive_int("parallel.backward", "shard_size", shard_size)
    count = workers if shard_size is None else max(workers, -(-n // shard_size))
    bounds = np.linspace(0, n, min(count, n) + 1).astype(int)
    shards = [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def run(shard: tuple[np.ndarray, ...]) -> tuple[float, Any, tuple[Tensor, ...]]:
        out = fn(*shard)
        loss, extra = out if isinstance(out, tuple) else (out, None)
        if not isinstance(loss, Tensor) or loss.size != 1:
            raise ValueError("parallel.backward: fn must return a scalar loss Tensor (or (loss, extra))")
        return loss.item(), extra, grad(loss, params, allow_unused=True)

    if workers == 1 or len(shards) == 1:
        results = [run(shard) for shard in shards]
    else:
        with single_threaded_blas():
            results = list(_pool(min(workers, len(shards))).map(run, shards))
    weights = [len(s[0]) / n for s in shards]
    for i, p in enumerate(params):
        total = sum(w * r[2][i].data for w, r in zip(weights, results))
        total = np.asarray(total, dtype=p.dtype)
        p.grad = total if p.grad is None else p.grad + total
    loss = sum(w * r[0] for w, r in zip(weights, results))
    return float(loss), [r[1] for r in results]


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
    _positive_int("map_batches", "batch_size", batch_size)
    workers = _positive_int("map_batches", "workers", default_workers() if workers is None else workers)
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim == 0:
        raise ValueError("map_batches: x must have a batch axis, got a 0-d array")
    starts = list(range(0, len(data), batch_size)) or [0]

    def run(start: int) -> np.ndarray:
        piece = data[start:start + batch_size]
        with no_grad():
            out = fn(Tensor(piece))
        out = out.data if isinstance(out, Tensor) else np.asarray(out)
        if out.ndim == 0 or len(out) != len(piece):
            raise ValueError(f"map_batches: fn returned shape {out.shape} for a batch of {len(piece)}; "
                             "it must return one output per sample along axis 0")
        return out

    if workers == 1 or len(starts) == 1:
        outputs = [run(start) for start in starts]
    else:
        with single_threaded_blas():
            outputs = list(_pool(min(workers, len(starts))).map(run, starts))
    return Tensor(np.concatenate(outputs))
