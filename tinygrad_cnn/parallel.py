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
import mmap
import multiprocessing
import os
import pickle
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from typing import Any, NoReturn

import numpy as np

from .autograd import grad, no_grad
from .random import default_generator, manual_seed
from .tensor import Tensor
from .validation import positive_int

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
        self.get: Callable[[], int] | None = None
        self.set: Callable[[int], None] | None = None
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
    if _blas.set is None or _blas.get is None:
        yield
        return
    previous = _blas.get()
    _blas.set(1)
    try:
        yield
    finally:
        _blas.set(previous)


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
    workers = positive_int("parallel.backward", "workers", default_workers() if workers is None else workers)
    shards = _split("parallel.backward", arrays, workers, shard_size)
    n = sum(len(shard[0]) for shard in shards)

    def run(shard: tuple[np.ndarray, ...]) -> tuple[_RunResult, list[np.ndarray]]:
        grads = [np.zeros_like(p.data) for p in params]
        return _run_shards("parallel.backward", fn, params, shard, [len(shard[0])], n, grads), grads

    if workers == 1 or len(shards) == 1:
        results = [run(shard) for shard in shards]
    else:
        with single_threaded_blas():
            results = list(_pool(min(workers, len(shards))).map(run, shards))
    return _add_to_grads(params, [r for r, _ in results], [g for _, g in results])


_ShardResult = tuple[float, Any, list[np.ndarray | None]]  # loss, extra, one gradient per parameter


def _split(op: str, arrays: Sequence[np.ndarray], workers: int, shard_size: int | None) -> list[tuple[np.ndarray, ...]]:
    """The batch cut along axis 0 into one shard per worker, or into shards of at most ``shard_size``."""
    if not arrays:
        raise ValueError(f"{op}: needs at least one array to split")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"{op}: arrays of different lengths {[len(a) for a in arrays]}")
    count = workers if shard_size is None else max(workers, -(-n // positive_int(op, "shard_size", shard_size)))
    bounds = np.linspace(0, n, min(count, n) + 1).astype(int)
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _shard_gradients(
    op: str, fn: Callable[..., Any], params: Sequence[Tensor], shard: tuple[np.ndarray, ...]
) -> _ShardResult:
    out = fn(*shard)
    loss, extra = out if isinstance(out, tuple) else (out, None)
    if not isinstance(loss, Tensor) or loss.size != 1:
        raise ValueError(f"{op}: fn must return a scalar loss Tensor (or (loss, extra))")
    grads = grad(loss, params, allow_unused=True)
    return loss.item(), extra, [None if g is None else g.data for g in grads]


def _add_to_grads(
    params: Sequence[Tensor], results: list[_RunResult], grads: list[list[np.ndarray]]
) -> tuple[float, list[Any]]:
    """Add each run's weighted gradient sum (``grads``, one list per run) into ``.grad``;
    return the batch's loss and the extras of every shard, in batch order."""
    loss, extras = 0.0, []
    for (run_loss, run_extras, has_grad), run_grads in zip(results, grads):
        loss += run_loss
        extras += run_extras
        for p, got, g in zip(params, has_grad, run_grads):
            if got:
                g = g.astype(p.dtype, copy=True)  # a worker's shared buffer is overwritten next call
                p.grad = g if p.grad is None else p.grad + g
    return loss, extras


class WorkerPool:
    """:func:`backward` in worker processes instead of threads: the shards run without sharing a GIL.

    Threads share Python's GIL, which the bookkeeping of every recorded op holds, so two threads
    keep only about 1.6 of 2 cores busy; processes do not share it. ``workers`` shards run at once
    (default: one per core): one in this process, the others in ``workers - 1`` worker processes.
    ``fn`` and the model it uses are copied into each worker when the pool starts (the workers are
    forked: this needs the ``fork`` start method, i.e. Linux). Parameters, gradients and the batch travel through shared
    memory: at every :meth:`backward` the current values of ``params`` are what the workers use,
    so optimizer steps in this process are seen; anything else ``fn`` depends on stays as it was
    when the pool started. Random ops in ``fn`` (dropout) draw from one generator per worker
    process, seeded from the library generator's state at the start (which is left as it was),
    and, in the shard this process computes, from the library generator itself.

        with parallel.WorkerPool(loss_fn, model.parameters(), workers=2) as pool:
            for images, labels in loader:
                optimizer.zero_grad()
                loss, extras = pool.backward(images, labels)
                optimizer.step()
    """

    def __init__(
        self, fn: Callable[..., Tensor | tuple[Tensor, Any]], params: Sequence[Tensor], workers: int | None = None
    ) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise RuntimeError(
                "WorkerPool: needs the 'fork' start method (Linux); use parallel.backward, "
                "which uses threads, on this system"
            )
        self.fn = fn
        self.params = list(params)
        self.workers = positive_int("WorkerPool", "workers", default_workers() if workers is None else workers)
        self._closed = False
        # Shared before the fork, so the workers see the same memory: the parameter values they
        # compute with, and one gradient buffer per worker.
        self._values = [_shared_like(p.data) for p in self.params]
        helpers = self.workers - 1  # worker processes; this process computes one shard too
        self._grads = [[_shared_like(p.data) for p in self.params] for _ in range(helpers)]
        self._inputs: list[list[shared_memory.SharedMemory]] = [[] for _ in range(helpers)]
        # Per-worker seeds derived from the library generator's state without drawing from it, so
        # that starting a pool leaves the caller's random stream (shuffling, a resumed run) as it was.
        state = default_generator().bit_generator.state["state"]["state"]
        seeds = [
            int(np.random.SeedSequence(state, spawn_key=(k,)).generate_state(2, np.uint64)[0]) >> 1
            for k in range(helpers)
        ]
        resource_tracker.ensure_running()  # before the fork: the workers share it, and it frees no block of ours
        context = multiprocessing.get_context("fork")
        self._connections: list[Any] = []
        self._processes: list[Any] = []
        for k in range(helpers):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                name=f"tinygrad_cnn-worker-{k}",
                daemon=True,
                args=(theirs, fn, self.params, self._values, self._grads[k], int(seeds[k])),
            )
            process.start()
            theirs.close()
            self._connections.append(mine)
            self._processes.append(process)

    def backward(self, *arrays: np.ndarray, shard_size: int | None = None) -> tuple[float, list[Any]]:
        """As :func:`backward`: accumulate the batch's gradient into ``.grad``; return (loss, extras)."""
        if self._closed:
            raise RuntimeError("WorkerPool.backward: the pool is closed")
        arrays = tuple(np.asarray(a) for a in arrays)
        for a in arrays:
            if a.dtype.hasobject:
                raise TypeError(f"WorkerPool.backward: arrays must hold numbers, got dtype {a.dtype}")
        shards = _split("WorkerPool.backward", arrays, self.workers, shard_size)
        n = sum(len(s[0]) for s in shards)
        for value, p in zip(self._values, self.params):
            value[...] = p.data
        # Each takes a contiguous run of shards, handed over as one slice of each array: the first
        # run is this process's, run k + 1 goes to worker process k.
        runs = [
            [len(shards[i][0]) for i in run]
            for run in np.array_split(np.arange(len(shards)), min(self.workers, len(shards)))
        ]
        bounds = np.cumsum([0] + [sum(sizes) for sizes in runs])
        for k, sizes in enumerate(runs[1:]):
            lo, hi = bounds[k + 1], bounds[k + 2]
            specs = [self._stage(k, j, a[lo:hi]) for j, a in enumerate(arrays)]
            try:
                self._connections[k].send((specs, sizes, n))
            except OSError:  # its end of the pipe is gone
                self._died(k)
        own_grads = [np.zeros_like(p.data) for p in self.params]
        own: _RunResult | BaseException
        with single_threaded_blas():  # the other cores are the workers'
            try:
                own = _run_shards(
                    "WorkerPool.backward", self.fn, self.params, [a[: bounds[1]] for a in arrays], runs[0], n, own_grads
                )
            except BaseException as error:  # noqa: BLE001  (collect the workers' replies first)
                own = error
        replies = [own] + [self._receive(k) for k in range(len(runs) - 1)]  # every reply: none left in a pipe
        results = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
            results.append(reply)
        return _add_to_grads(self.params, results, [own_grads] + self._grads)

    def _stage(self, k: int, j: int, a: np.ndarray) -> tuple[str, tuple[int, ...], str]:
        """Copy array ``a`` into worker k's shared input buffer j (grown when too small)."""
        buffers = self._inputs[k]
        if j == len(buffers) or buffers[j].size < a.nbytes:
            block = shared_memory.SharedMemory(create=True, size=max(a.nbytes, 1))
            if j == len(buffers):
                buffers.append(block)
            else:
                _unlink(buffers[j])
                buffers[j] = block
        np.ndarray(a.shape, a.dtype, buffers[j].buf)[...] = a
        return buffers[j].name, a.shape, a.dtype.str

    def _receive(self, k: int) -> _RunResult | BaseException:
        """Worker k's reply: (loss, extras, which parameters got a gradient), or the error it raised."""
        try:
            status, *payload = self._connections[k].recv()
        except (EOFError, OSError):
            self._died(k)
        if status == "error":
            error, trace = payload
            error.__cause__ = RuntimeError(f"in WorkerPool worker {k}:\n{trace}")
            return error
        return payload[0]

    def _died(self, k: int) -> NoReturn:
        self._processes[k].join(timeout=1)
        code = self._processes[k].exitcode
        self.close()
        raise RuntimeError(f"WorkerPool: worker {k} died (exit code {code}); start a new pool")

    def close(self) -> None:
        """Stop the workers and free the shared memory (also at the end of a ``with`` block)."""
        for connection in self._connections:
            try:
                connection.send(None)
            except (OSError, ValueError):
                pass
            connection.close()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        for buffers in self._inputs:
            for block in buffers:
                _unlink(block)
        self._connections, self._processes, self._inputs = [], [], []
        self._closed = True

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: S110  (interpreter shutdown)
            pass


_RunResult = tuple[float, list[Any], list[bool]]  # weighted loss, extras, which parameters got a gradient


def _run_shards(
    op: str,
    fn: Callable[..., Any],
    params: Sequence[Tensor],
    arrays: Sequence[np.ndarray],
    sizes: list[int],
    n: int,
    grads: list[np.ndarray],
) -> _RunResult:
    """Consecutive shards of ``sizes`` samples of ``arrays``: their losses and gradients, each
    weighted by its share of the batch of ``n``, summed (gradients into ``grads``, zeroed first);
    their extras; which parameters got a gradient."""
    for g in grads:
        g[...] = 0
    has_grad = [False] * len(params)
    loss, extras, start = 0.0, [], 0
    for size in sizes:
        shard = tuple(a[start : start + size] for a in arrays)
        shard_loss, extra, shard_grads = _shard_gradients(op, fn, params, shard)
        weight = size / n
        loss += weight * shard_loss
        extras.append(extra)
        for i, shard_grad in enumerate(shard_grads):
            if shard_grad is not None:
                grads[i] += weight * shard_grad
                has_grad[i] = True
        start += size
    return loss, extras, has_grad


def _shared_like(a: np.ndarray) -> np.ndarray:
    """A zeroed array shaped like ``a`` in anonymous shared memory (inherited by forked workers)."""
    return np.frombuffer(mmap.mmap(-1, max(a.nbytes, 1)), dtype=a.dtype, count=a.size).reshape(a.shape)


def _unlink(block: shared_memory.SharedMemory) -> None:
    block.close()
    with contextlib.suppress(FileNotFoundError):
        block.unlink()


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open the pool's shared block ``name``; the pool's process frees it."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # Python >= 3.13
    except TypeError:  # older: registered again with the tracker shared with the pool, which has it already
        return shared_memory.SharedMemory(name=name)


def _serve(
    connection: Any,
    fn: Callable[..., Any],
    params: list[Tensor],
    values: list[np.ndarray],
    grads: list[np.ndarray],
    seed: int,
) -> None:
    """A worker's loop: for each batch slice, the shards' losses and extras, gradients into ``grads``."""
    manual_seed(seed)
    blas = _OpenBLAS()
    if blas.set is not None:
        blas.set(1)  # one process per core already
    for p, value in zip(params, values):
        p.data = value  # this worker's model computes with the shared parameter values
    attached: dict[str, shared_memory.SharedMemory] = {}
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        specs, sizes, n = message
        try:
            arrays = []
            for name, shape, dtype in specs:
                if name not in attached:
                    attached[name] = _attach(name)
                arrays.append(np.ndarray(shape, np.dtype(dtype), attached[name].buf))
            connection.send(("ok", _run_shards("WorkerPool.backward", fn, params, arrays, sizes, n, grads)))
        except BaseException as error:  # noqa: BLE001  (any failure goes back to the caller)
            try:
                pickle.dumps(error)
            except Exception:  # noqa: BLE001
                error = RuntimeError(repr(error))
            connection.send(("error", error, traceback.format_exc()))


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
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim == 0:
        raise ValueError("map_batches: x must have a batch axis, got a 0-d array")
    starts = list(range(0, len(data), batch_size)) or [0]

    def run(start: int) -> np.ndarray:
        piece = data[start : start + batch_size]
        with no_grad():
            out = fn(Tensor(piece))
        out = out.data if isinstance(out, Tensor) else np.asarray(out)
        if out.ndim == 0 or len(out) != len(piece):
            raise ValueError(
                f"map_batches: fn returned shape {out.shape} for a batch of {len(piece)}; "
                "it must return one output per sample along axis 0"
            )
        return out

    if workers == 1 or len(starts) == 1:
        outputs = [run(start) for start in starts]
    else:
        with single_threaded_blas():
            outputs = list(_pool(min(workers, len(starts))).map(run, starts))
    return Tensor(np.concatenate(outputs))
