"""Collective communication between processes with MPI, shaped like ``torch.distributed``.

Launch one process per core (or per machine) with ``mpiexec``; each runs the same script::

    mpiexec -n 2 python train.py                       # two processes on this machine
    mpiexec -f hostfile -n 8 python train.py           # eight, spread over the hosts listed in hostfile

and, in the script::

    from tinygrad_cnn import distributed as dist
    dist.init_process_group(backend="mpi")             # the world comes from mpiexec
    rank, world = dist.get_rank(), dist.get_world_size()
    dist.all_reduce(t, op=dist.ReduceOp.AVG)           # in place, the same result on every rank

Every collective waits at most ``timeout`` (given to :func:`init_process_group`, 30 minutes by
default) for the other ranks, then raises :class:`DistributedTimeoutError` instead of hanging
(a rank that was stopped or is stuck). Once the group is initialised, an exception that reaches
the top of any rank prints that rank's traceback and aborts the whole job (``MPI_Abort``), so no
rank is left waiting for one that died; ``mpiexec`` itself ends the job when a rank is killed.
Each rank's threads are limited to its share of the machine's cores (:func:`tinygrad_cnn.threads.capped`).

Needs the ``mpi`` extra: ``pip install "tinygrad_cnn[mpi]"`` (mpi4py and the MPICH wheels).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

try:
    from mpi4py import MPI
except ImportError as error:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "tinygrad_cnn.distributed needs mpi4py and an MPI library; install them with "
        "pip install 'tinygrad_cnn[mpi]' (or: pip install mpi4py mpich)"
    ) from error

from . import threads
from ._tensor import Tensor

__all__ = [
    "DistributedTimeoutError",
    "ReduceOp",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default for its CPU backends


class DistributedTimeoutError(TimeoutError):
    """A collective waited longer than the process group's timeout for the other ranks."""


class ReduceOp(enum.Enum):
    """How :func:`all_reduce` combines the ranks' values (``AVG`` is the sum divided by the world size)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


_MPI_OPS = {
    ReduceOp.SUM: MPI.SUM,
    ReduceOp.AVG: MPI.SUM,
    ReduceOp.PRODUCT: MPI.PROD,
    ReduceOp.MIN: MPI.MIN,
    ReduceOp.MAX: MPI.MAX,
}


class _Group:
    """The state of the default process group (one per process)."""

    def __init__(self, timeout: datetime.timedelta) -> None:
        self.comm = MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.timeout = timeout.total_seconds()
        self.local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.previous_hook: Callable[..., Any] = sys.excepthook
        self.blas_cap = contextlib.ExitStack()
        self.blas_cap.enter_context(threads.capped(blas_threads(self.local.Get_size())))


_group: _Group | None = None


def blas_threads(local_ranks: int) -> int:
    """Threads (tinygrad_cnn's, each calling BLAS on one) for each of ``local_ranks`` processes
    sharing this machine: its share of the cores (a lower count already set, e.g. by
    ``OPENBLAS_NUM_THREADS``, is kept)."""
    return max(1, int(threads.usable_cores().cores) // max(1, local_ranks))


def init_process_group(
    backend: str = "mpi",
    init_method: str | None = None,
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
    world_size: int = -1,
    rank: int = -1,
) -> None:
    """Join the job started by ``mpiexec``: every rank must call this before any collective.

    ``backend`` must be ``"mpi"``; the world size and this process's rank come from ``mpiexec``
    (``world_size``/``rank``, when given, must agree with them). ``init_method`` is accepted for
    PyTorch compatibility and must be ``None`` or ``"env://"``. Run as a single process (no
    ``mpiexec``), the world is that one process.
    """
    global _group
    if backend != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not supported; tinygrad_cnn has 'mpi'")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method {init_method!r}: the world comes from mpiexec; pass None")
    if not isinstance(timeout, datetime.timedelta) or timeout.total_seconds() <= 0:
        raise ValueError(f"init_process_group: timeout must be a positive datetime.timedelta, got {timeout!r}")
    if _group is not None:
        raise RuntimeError("init_process_group: the default process group is already initialized")
    group = _Group(timeout)
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given != -1 and given != actual:
            group.blas_cap.close()
            raise ValueError(f"init_process_group: {name}={given}, but mpiexec started this process with {actual}")
    _group = group
    sys.excepthook = _abort_on_exception
    barrier()  # every rank of this machine has mapped MPI's shared memory: its name can go now
    if group.local.Get_rank() == 0:
        _unlink_mpi_shared_memory()


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and not undone)."""
    return _group is not None


def _current(op: str) -> _Group:
    if _group is None:
        raise RuntimeError(
            f"{op}: the default process group has not been initialized; call "
            "tinygrad_cnn.distributed.init_process_group(backend='mpi') first"
        )
    return _group


def get_rank() -> int:
    """This process's rank, ``0 <= rank < get_world_size()``."""
    return _current("get_rank").rank


def get_world_size() -> int:
    """The number of processes in the job."""
    return _current("get_world_size").size


def destroy_process_group() -> None:
    """Leave the group: undo :func:`init_process_group`'s exception hook and thread limit."""
    global _group
    group = _current("destroy_process_group")
    group.blas_cap.close()
    if sys.excepthook is _abort_on_exception:
        sys.excepthook = group.previous_hook
    group.local.Free()
    _group = None


def _buffer(op: str, tensor: Tensor | np.ndarray) -> np.ndarray:
    """The C-contiguous array behind ``tensor``, which a collective overwrites in place."""
    array = tensor.array if isinstance(tensor, Tensor) else tensor
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{op}: expected a Tensor or numpy.ndarray, got {type(tensor).__name__}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{op}: the tensor must be a writable, C-contiguous array (got shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{op}: cannot communicate dtype {array.dtype}")
    return array


def _wait(op: str, group: _Group, request: MPI.Request) -> None:
    """Drive ``request`` to completion, or raise after the group's timeout."""
    deadline = time.monotonic() + group.timeout
    spins = 0
    while not request.Test():
        spins += 1
        if spins > 1000:  # the other ranks are late: stop spinning on a core another process may want
            time.sleep(1e-4)
            if time.monotonic() > deadline:
                raise DistributedTimeoutError(
                    f"{op}: rank {group.rank} waited {group.timeout:g} s for the other ranks of {group.size}; "
                    "one is stopped, stuck or on a different collective"
                )


def all_reduce(tensor: Tensor | np.ndarray, op: ReduceOp = ReduceOp.SUM) -> None:
    """Combine ``tensor`` across all ranks with ``op``, in place: afterwards every rank holds the result."""
    group = _current("all_reduce")
    array = _buffer("all_reduce", tensor)
    if not isinstance(op, ReduceOp):
        raise ValueError(f"all_reduce: op must be a ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and array.dtype.kind != "f":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {array.dtype}")
    if group.size > 1:
        _wait("all_reduce", group, group.comm.Iallreduce(MPI.IN_PLACE, array, _MPI_OPS[op]))
    if op is ReduceOp.AVG:
        array *= array.dtype.type(1 / group.size)


def broadcast(tensor: Tensor | np.ndarray, src: int = 0) -> None:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values (same shape and dtype on all ranks)."""
    group = _current("broadcast")
    array = _buffer("broadcast", tensor)
    if not 0 <= src < group.size:
        raise ValueError(f"broadcast: src {src} is not a rank of a world of {group.size}")
    if group.size > 1:
        _wait("broadcast", group, group.comm.Ibcast(array, root=src))


def barrier() -> None:
    """Wait until every rank has reached this call."""
    group = _current("barrier")
    if group.size > 1:
        _wait("barrier", group, group.comm.Ibarrier())


def _abort_on_exception(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """An uncaught exception on one rank ends the whole job (the others would wait for it forever)."""
    group = _group
    if group is None or group.size == 1:
        sys.__excepthook__(kind, value, tb)
        return
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"tinygrad_cnn.distributed: rank {group.rank} of {group.size} failed; aborting the job\n{text}")
    sys.stderr.flush()
    # mpiexec forwards a rank's output asynchronously and MPI_Abort ends the job at once: without a
    # moment for the forwarding, the traceback was sometimes lost (an empty stderr, 1 run in ~30).
    time.sleep(0.5)
    group.comm.Abort(1)


def _unlink_mpi_shared_memory() -> None:
    """Remove the names of the /dev/shm blocks MPI has mapped (every local rank has them mapped
    already): the memory stays in use and is freed by the kernel when the last rank exits, even a
    killed one, so a job that dies leaves nothing behind in /dev/shm."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "/dev/shm/mpich_shm_" in line}
    except OSError:  # not Linux: nothing to do
        return
    for path in paths:
        if path.startswith("/dev/shm/mpich_shm_") and not path.endswith("(deleted)"):
            try:
                os.unlink(path)
            except OSError:
                pass
