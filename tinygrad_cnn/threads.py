"""How many threads NumPy's BLAS runs the GEMMs on: :func:`set_num_threads`, :func:`get_num_threads`
(PyTorch's names and meaning) and the default, which follows the load on the machine.

Why a default that adapts: OpenBLAS splits every large GEMM between its threads and waits for
all of them; its idle threads then spin on a core for a while. On an idle machine two threads make
a training step 20-40% faster than one. When other processes keep the cores busy, a GEMM waits for
whichever of its threads the kernel has descheduled and the spinning threads take cores from
everyone: training ran 8-11x slower on 2 threads than on 1 with a single competing busy process
(docs/performance.md). So by default the count is re-chosen every half second from the
processor time the *other* processes used on this process's cores over the last interval
(``/proc/stat`` against this process's own CPU time): as many threads as there are idle cores,
at least one, never more than BLAS had when tinygrad_cnn first looked (its own default: the
cores, or ``OPENBLAS_NUM_THREADS`` and the like). A cgroup CPU quota (``cpu.max``) counts as fewer
cores. The check runs when a module is called and when a backward sweep starts; between checks it
costs one clock read.

The setting is process-wide: NumPy's BLAS is one library, so a user's own NumPy code in the same
process runs on the same count. Nothing is changed while:

- :func:`set_num_threads` fixed the count (as ``torch.set_num_threads`` does);
- an environment variable fixed it (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ``GOTO_NUM_THREADS``);
- something else changed it since we last set it (for example ``threadpoolctl.threadpool_limits``
  around a block of the user's code): it is left alone until it is back at our value;
- the machine gives no load figures (no ``/proc/stat``: not Linux), or threadpoolctl finds no BLAS
  it can control (then BLAS keeps its own default).

:func:`capped` bounds the count inside a block (one BLAS thread per worker thread of
:func:`tinygrad_cnn.parallel.map_batches`, each MPI rank's share of the cores).
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

__all__ = ["capped", "get_num_threads", "set_num_threads"]

INTERVAL = 0.5  # seconds between two looks at the machine's load
ENVIRONMENT_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS")


class _State:
    """What the adaptive default knows; one per process, guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.controller: ThreadpoolController | None = None
        self.fixed: int | None = None  # set_num_threads' count
        self.caps: list[int] = []  # capped() blocks, innermost last
        self.ceiling = 1  # BLAS's count when first looked at
        self.last_set: int | None = None  # the count we last gave BLAS
        self.next_look = 0.0  # monotonic time of the next look at the load
        self.sample: tuple[float, float, float] | None = None  # (wall, all processes' busy CPU s, ours)
        self.adaptive = not any(os.environ.get(name) for name in ENVIRONMENT_VARIABLES)


_state = _State()


def _blas() -> ThreadpoolController:
    if _state.controller is None:
        import numpy  # noqa: F401  (BLAS is loaded with NumPy: threadpoolctl finds only loaded libraries)

        _state.controller = ThreadpoolController().select(user_api="blas")
        _state.ceiling = _blas_threads(_state.controller) or 1
    return _state.controller


def _blas_threads(controller: ThreadpoolController) -> int | None:
    counts = [lib.get_num_threads() for lib in controller.lib_controllers]
    counts = [n for n in counts if n is not None]
    return max(counts) if counts else None


def set_num_threads(n: int) -> None:
    """Run BLAS on ``n`` threads from now on, whatever the load (``torch.set_num_threads``).

    Turns the adaptive default off for the rest of the process. ``n`` may exceed the number of cores.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: the number of threads must be a positive int, got {n!r}")
    with _state.lock:
        _state.fixed = n
        _apply(n)


def get_num_threads() -> int:
    """The number of threads BLAS runs on now (``torch.get_num_threads``); 1 where threadpoolctl
    finds no BLAS it can control."""
    with _state.lock:
        return _blas_threads(_blas()) or 1


@contextlib.contextmanager
def capped(n: int) -> Iterator[None]:
    """Run the block with BLAS on at most ``n`` threads; the count before it is restored afterwards."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"capped: the number of threads must be a positive int, got {n!r}")
    with _state.lock:
        before = _blas_threads(_blas())
        _state.caps.append(n)
        if before is not None:
            _apply(before)
    try:
        yield
    finally:
        with _state.lock:
            _state.caps.remove(n)
            if before is not None:
                _apply(before)


def _apply(n: int) -> None:
    """Give BLAS ``n`` threads, or fewer if a :func:`capped` block is active (the caller holds the lock)."""
    n = min([n, *_state.caps])
    for lib in _blas().lib_controllers:
        lib.set_num_threads(n)
    _state.last_set = n


def adapt() -> None:
    """Look at the load if the last look is ``INTERVAL`` old, and re-choose the thread count.

    Called by the library when a module is called and when a backward sweep starts.
    """
    if not _state.adaptive or _state.fixed is not None or time.monotonic() < _state.next_look:
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
        _state.adaptive = False
        return
    current = _blas_threads(controller)
    if _state.last_set is not None and current != _state.last_set:
        _state.sample = None  # someone else set it: hands off while it differs
        return
    cores = usable_cores()
    seconds = _cpu_seconds(cores.cpus)
    if seconds is None:
        _state.adaptive = False  # no load figures here: BLAS keeps its own default
        return
    sample = (now, *seconds)
    previous, _state.sample = _state.sample, sample
    if previous is None:
        if _state.last_set is None:
            _apply(1)  # until the first interval is measured: safe under load
        return
    wall = sample[0] - previous[0]
    busy_others = max(0.0, (sample[1] - previous[1]) - (sample[2] - previous[2])) / wall
    idle = cores.cores - busy_others
    wanted = max(1, min(_state.ceiling, math.floor(idle + 0.5)))
    if wanted != _state.last_set:
        _apply(wanted)


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
