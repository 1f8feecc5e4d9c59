"""How many threads tinygrad_cnn runs each op on: :func:`set_num_threads`, :func:`get_num_threads`
(PyTorch's names and meaning) and the default, which follows the load on the machine.

The kernels cut an op's work into tasks and run them on this many threads
(:mod:`tinygrad_cnn.intraop`), each thread calling NumPy's BLAS on one thread: while tinygrad_cnn
controls the count, BLAS itself is kept on one thread (with ``threadpoolctl``). Splitting the op
ourselves parallelises the copies, pooling and elementwise work around the GEMMs too, not only
the GEMMs, and a waiting thread sleeps rather than spins.

Why a default that adapts: threads help on idle cores and are a disaster on busy ones. A
task split between threads waits for whichever thread the kernel has descheduled; OpenBLAS's own
threads, worse, spin on their cores after each GEMM and take them from everyone: training ran
8-11x slower on 2 BLAS threads than on 1 beside a single competing busy process
(docs/performance.md). So by default the count is re-chosen every half second from the
processor time the *other* processes used on this process's cores over the last interval
(``/proc/stat`` against this process's own CPU time): as many threads as there are idle cores,
at least one, never more than the cores this process may use (a cgroup CPU quota (``cpu.max``)
counts as fewer cores). The check runs when a module is called and when a backward sweep starts;
between checks it costs one clock read.

The count is fixed instead:

- by :func:`set_num_threads` (as ``torch.set_num_threads``);
- by an environment variable, read once (``OMP_NUM_THREADS``, as PyTorch reads it, or
  ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``GOTO_NUM_THREADS``): ``OPENBLAS_NUM_THREADS=1``
  runs everything on one thread.

While something else has set BLAS's own count (for example ``threadpoolctl.threadpool_limits``
around a block of the user's code), the kernels run on one thread and BLAS on that count, until
it is back at one. Where threadpoolctl finds no BLAS it can control, BLAS keeps its own threads
and the default stays at one thread. The setting is process-wide; :func:`capped` bounds it inside
a block (each MPI rank's share of the cores, :func:`tinygrad_cnn.parallel.map_batches`'s threads).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from threadpoolctl import ThreadpoolController

__all__ = ["capped", "exactly", "get_num_threads", "set_num_threads"]

INTERVAL = 0.5  # seconds between two looks at the machine's load
ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS")


def _environment_count() -> int | None:
    """The thread count the first of ENVIRONMENT_VARIABLES that is set asks for (None: none is set,
    or it is not a positive int)."""
    for name in ENVIRONMENT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return int(value) if value.isdigit() and int(value) > 0 else None
    return None


class _State:
    """What the thread control knows; one per process, guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.controller: ThreadpoolController | None = None
        self.width = 1  # the threads an op runs on now (read without the lock: one int)
        self.fixed: int | None = _environment_count()  # set_num_threads' or the environment's count
        self.caps: list[int] = []  # capped() blocks, innermost last
        self.blas_set: int | None = None  # the count we last gave BLAS (1), None before we did
        self.next_look = 0.0  # monotonic time of the next look at the load
        self.sample: tuple[float, float, float] | None = None  # (wall, all processes' busy CPU s, ours)
        self.adaptive = self.fixed is None


_state = _State()


def _blas() -> ThreadpoolController:
    if _state.controller is None:
        import numpy  # noqa: F401  (BLAS is loaded with NumPy: threadpoolctl finds only loaded libraries)

        _state.controller = ThreadpoolController().select(user_api="blas")
    return _state.controller


def _blas_threads(controller: ThreadpoolController) -> int | None:
    counts = [lib.get_num_threads() for lib in controller.lib_controllers]
    counts = [n for n in counts if n is not None]
    return max(counts) if counts else None


def current() -> int:
    """The threads an op runs on now (what :mod:`tinygrad_cnn.intraop` reads; no lock, no look at the load)."""
    return _state.width


def _check_count(caller: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{caller}: the number of threads must be a positive int, got {n!r}")


def set_num_threads(n: int) -> None:
    """Run each op on ``n`` threads from now on, whatever the load (``torch.set_num_threads``).

    Turns the adaptive default off for the rest of the process. ``n`` may exceed the number of cores.
    """
    _check_count("set_num_threads", n)
    with _state.lock:
        _state.fixed = n
        _apply(n)


def get_num_threads() -> int:
    """The number of threads an op runs on now (``torch.get_num_threads``)."""
    return _state.width


@contextlib.contextmanager
def capped(n: int) -> Iterator[None]:
    """Run the block on at most ``n`` threads; the count before it is restored afterwards."""
    _check_count("capped", n)
    with _state.lock:
        before = _state.width
        _state.caps.append(n)
        _apply(before)
    try:
        yield
    finally:
        with _state.lock:
            _state.caps.remove(n)
            _apply(_state.fixed or before)


@contextlib.contextmanager
def exactly(n: int) -> Iterator[None]:
    """Run the block on ``n`` threads whatever the load (:func:`set_num_threads` for a block); the
    setting before it, adaptive or fixed, is restored afterwards."""
    _check_count("exactly", n)
    with _state.lock:
        before = _state.fixed, _state.width
        _state.fixed = n
        _apply(n)
    try:
        yield
    finally:
        with _state.lock:
            _state.fixed = before[0]
            _apply(before[0] or before[1])


def _apply(n: int) -> None:
    """Run ops on ``n`` threads, or fewer if a :func:`capped` block is active, with BLAS on one
    thread each (the caller holds the lock)."""
    controller = _blas()
    if _state.blas_set is None and controller.lib_controllers:
        for lib in controller.lib_controllers:
            lib.set_num_threads(1)
        _state.blas_set = 1
    _state.width = min([n, *_state.caps])


def adapt() -> None:
    """Look at the load if the last look is ``INTERVAL`` old, and re-choose the thread count.

    Called by the library when a module is called and when a backward sweep starts.
    """
    if time.monotonic() < _state.next_look:
        return
    if not _state.lock.acquire(blocking=False):
        return  # another thread is looking
    try:
        _look(time.monotonic())
    finally:
        _state.lock.release()


def _look(now: float) -> None:
    _state.next_look = now + INTERVAL
    controller = _blas()
    if not controller.lib_controllers:
        _state.adaptive = False  # BLAS threads itself: ops stay on one thread
        return
    if _state.blas_set is not None and _blas_threads(controller) != _state.blas_set:
        _state.sample = None  # someone else set BLAS's count: hands off while it differs
        _state.width = 1
        return
    if _state.fixed is not None or not _state.adaptive:
        _apply(_state.fixed or 1)
        return
    cores = usable_cores()
    seconds = _cpu_seconds(cores.cpus)
    if seconds is None:
        _state.adaptive = False  # no load figures here: one thread
        _apply(1)
        return
    sample = (now, *seconds)
    previous, _state.sample = _state.sample, sample
    if previous is None:
        _apply(1)  # until the first interval is measured: safe under load
        return
    wall = sample[0] - previous[0]
    busy_others = max(0.0, (sample[1] - previous[1]) - (sample[2] - previous[2])) / wall
    idle = cores.cores - busy_others
    _apply(max(1, min(int(cores.cores), math.floor(idle + 0.5))))


class CoreShare(NamedTuple):
    cpus: frozenset[int]  # the CPUs this process may run on
    cores: float  # how many cores' worth of time it may use


_cores: CoreShare | None = None


def usable_cores() -> CoreShare:
    """The CPUs this process may run on, and how many cores' worth of time it may use (a cgroup v2
    ``cpu.max`` quota lowers that)."""
    global _cores
    if _cores is None:
        try:
            cpus = set(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = set(range(os.cpu_count() or 1))
        count = float(len(cpus))
        try:
            with open("/sys/fs/cgroup/cpu.max") as f:
                quota, period = f.read().split()[:2]
            if quota != "max":
                count = min(count, max(1.0, int(quota) / int(period)))
        except (OSError, ValueError):
            pass
        _cores = CoreShare(frozenset(cpus), count)
    return _cores


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(cpus: frozenset[int]) -> tuple[float, float] | None:
    """(seconds of CPU time every process has used on ``cpus`` since boot, this process's CPU
    seconds), or None where ``/proc/stat`` cannot be read."""
    busy = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                name, *fields = line.split()
                if name == "cpu" or int(name[3:]) not in cpus:
                    continue
                # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy
                ticks = [int(v) for v in fields[:8]]
                busy += sum(ticks) - ticks[3] - ticks[4]
    except (OSError, ValueError, IndexError):
        return None
    return busy / _TICK, time.process_time()
