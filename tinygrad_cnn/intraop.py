"""Intra-op parallelism: how a kernel spreads one op's work over this process's threads.

A kernel cuts its work into independent tasks (blocks of the im2col matrix, groups of images,
row or column ranges of a GEMM, slabs of an elementwise op) and hands them to :func:`run`, which runs
them on :func:`width` threads: the calling thread and ``width() - 1`` threads of a pool that
lives as long as the process. NumPy releases the GIL in its copies, ufuncs and BLAS calls, so
the tasks really run side by side; each thread calls BLAS on one thread of its own
(:mod:`tinygrad_cnn.threads` decides the width and keeps BLAS on one thread while it is above 1).

Results never depend on the number of threads. A kernel cuts its tasks by the size of the work
(:func:`pieces`), never by the thread count, and whatever it adds up across tasks it adds in task
order after they have run; the thread count decides only who runs which task. (A GEMM split at
other rows rounds differently, so this is a rule, not a nicety.)

A task never runs :func:`run` on more than one thread itself: inside a task :func:`width` is 1 and
the tasks it hands out run inline.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from . import threads

__all__ = ["pieces", "run", "scratch", "width"]

T = TypeVar("T")
_local = threading.local()  # .inside: this thread is running tasks; .scratch: its working memory
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def width() -> int:
    """How many threads :func:`run` uses from the calling thread now (1 inside a task)."""
    return 1 if getattr(_local, "inside", False) else threads.current()


def pieces(n: int, minimum: int, most: int = 16) -> list[range]:
    """range(n) cut into consecutive pieces of at least ``minimum`` items (one piece if n is
    smaller), at most ``most`` pieces, sizes differing by at most one. Depends on the sizes only."""
    count = max(1, min(most, n // max(1, minimum)))
    step, extra = divmod(n, count)
    bounds = [i * step + min(i, extra) for i in range(count + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def run(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Each task's result, in task order; the tasks run on up to :func:`width` threads.

    The calling thread takes tasks too, so one task costs nothing extra; the others run under the
    caller's ``np.errstate``. If tasks raise, every task still finishes (they may write into shared
    arrays) and the first one's error is raised.
    """
    n = min(width(), len(tasks))
    if n <= 1:
        return [task() for task in tasks]
    results: list[Any] = [None] * len(tasks)
    errors: list[tuple[int, BaseException]] = []
    next_task = itertools.count()  # next() on a count is atomic under the GIL
    numpy_errors = np.geterr()  # the caller's np.errstate, which NumPy keeps per thread

    def work() -> None:
        outer, _local.inside = getattr(_local, "inside", False), True
        try:
            for i in iter(next_task.__next__, None):
                if i >= len(tasks):
                    return
                try:
                    results[i] = tasks[i]()
                except BaseException as error:  # noqa: BLE001 (re-raised below, in task order)
                    errors.append((i, error))
        finally:
            _local.inside = outer

    def help_out() -> None:
        with np.errstate(**numpy_errors):
            work()

    helpers: list[Future[None]] = [_executor(n - 1).submit(help_out) for _ in range(n - 1)]
    work()
    for helper in helpers:
        helper.result()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


def scratch(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array of ``shape`` in the calling thread's scratch memory, reused by the
    thread's next call: for a task's working buffer, never for anything it returns. Fresh memory
    from the OS (a large ``np.empty``) costs a page fault per 4 KiB on first touch."""
    dtype = np.dtype(dtype)
    nbytes = (shape if isinstance(shape, int) else math.prod(shape)) * dtype.itemsize
    memory = getattr(_local, "scratch", None)
    if memory is None or memory.nbytes < nbytes:
        memory = _local.scratch = np.empty(nbytes, dtype=np.uint8)
    return memory[:nbytes].view(dtype).reshape(shape)


def _executor(helpers: int) -> ThreadPoolExecutor:
    """The pool, with at least ``helpers`` threads: made anew, larger, when more are asked for (the
    old one is not shut down, since another thread may still be handing it tasks; its idle threads
    end when it is garbage-collected)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < helpers:
            _pool, _pool_size = ThreadPoolExecutor(helpers, thread_name_prefix="tinygrad_cnn-op"), helpers
        return _pool


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts a pool of its own when it needs one."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)
