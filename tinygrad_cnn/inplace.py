"""In-place protection: arrays a live tape node keeps are read-only until the node is freed.

A backward rule reads the arrays its forward saved. If one of them were changed in place before
the backward pass (``t.array[...] = 0``, an optimizer step, ``np.copyto``), the gradient would be
silently wrong. So while a node is alive, every array it keeps is read-only: the arrays it saved
and those among its values (:meth:`~tinygrad_cnn.autograd.Context.kept_arrays`), the arrays they
are views of (their ``.base`` chain, up to the array that owns the memory), the ``.array`` of every
tensor of the graph they are views of, and the node's output when it is a view (reshape,
transpose, slicing: it shares memory with what other nodes save). NumPy then refuses any write
through those array objects ("assignment destination is read-only"). The flags are restored when
the node is freed (after backward, unless retain_graph) or garbage-collected. Arrays that were
read-only already are left alone. Cost: a few attribute checks per saved array, nothing when
nothing is recorded.

Not covered: an ndarray object viewing the same memory that was made outside the graph before
the forward pass and is not in the chain above (e.g. ``v = a[1:]`` made earlier, then ``Tensor(a)``
recorded: writing through ``v`` is not blocked; ``Tensor(a[1:])`` and ``Tensor(a[2:])`` are two
such leaves); writes that bypass NumPy's flag (ctypes, C code).

Entry points: :func:`protect` (by ``Primitive.apply`` and ``Function.apply``), :func:`release` (by ``Context.free``),
:func:`release_from_finalizer` (by ``Context.__del__``), :func:`check_writable` (by optimizers and
``load_state_dict``), :func:`bookkeeping` (for tests).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from ._tensor import Tensor

_lock_counts: dict[int, list[Any]] = {}  # id(array) -> [array, number of live nodes protecting it]
_deferred: dict[int, np.ndarray] = {}  # released, but its base was still protected: restore later

# Threads: a user's threads may record tapes over the same parameters (PyTorch allows it), so the
# bookkeeping is guarded by a lock. A finalizer (Context.__del__) may run at any allocation, even
# inside a guarded section of its own thread (one thread is enough): it never waits for the lock,
# and never edits the bookkeeping under the feet of the section it interrupted; it queues its
# release for whoever holds the lock to finish.
_guard = threading.Lock()
_pending: list[list[np.ndarray]] = []


class InPlaceError(ValueError):
    """An array saved for a backward pass is about to be modified in place."""


class Bookkeeping(NamedTuple):
    """How many arrays are protected now, released but waiting for their base, and queued by finalizers."""

    locked: int
    deferred: int
    pending: int


def bookkeeping() -> Bookkeeping:
    return Bookkeeping(len(_lock_counts), len(_deferred), len(_pending))


def protect(arrays: list[np.ndarray], inputs: Sequence[Any], output: Tensor) -> list[np.ndarray]:
    """Make read-only the ``arrays`` a node keeps, what they are views of, and its ``output``'s
    array if that is a view (see the module docstring). Returns the arrays this call locked: the
    node hands them to :func:`release` when it is freed."""
    out = output.array
    out_view = out.base is not None and out.flags.writeable
    locked: list[np.ndarray] = []
    if not arrays and not out_view:
        return locked
    with _guard:
        if arrays:
            _protect_arrays(arrays, inputs, out, locked)
        if out_view:
            _lock_one(out, locked)
        if _pending:
            _drain()
    if _pending:
        release_from_finalizer([])
    return locked


def release(locked: list[np.ndarray]) -> None:
    """Undo what :func:`protect` did for one node."""
    with _guard:
        _release_arrays(locked)
        if _pending:
            _drain()
    if _pending:
        release_from_finalizer([])


def release_from_finalizer(locked: list[np.ndarray]) -> None:
    """:func:`release`, from a finalizer: never waits for the lock (see ``_guard``)."""
    if locked:
        _pending.append(locked)  # list.append is atomic and allocates no tracked object
    while _pending and _guard.acquire(blocking=False):
        try:
            _drain()
        finally:
            _guard.release()


def check_writable(arr: np.ndarray, what: str) -> None:
    """Raise :class:`InPlaceError` naming ``what`` if ``arr`` cannot be written in place."""
    if arr.flags.writeable:
        return
    if id(arr) in _lock_counts or id(_root(arr)) in _lock_counts or id(arr) in _deferred:
        raise InPlaceError(
            f"{what} is saved for the backward pass of a graph that is still alive, so changing it in place "
            "would make that backward pass return a wrong gradient. Run backward() on that graph first "
            "(without retain_graph=True), or drop it (del loss, or compute it under tg.no_grad()) "
            "before changing the values."
        )
    raise InPlaceError(f"{what} is a read-only array (not made so by tinygrad_cnn); it cannot be changed in place")


# --------------------------------------------------------------------------- locking


def _lock_one(arr: np.ndarray, locked: list[np.ndarray]) -> None:
    """Make ``arr`` read-only (counted, so that the last node to release it restores it)."""
    key = id(arr)
    entry = _lock_counts.get(key)
    if entry is not None:
        entry[1] += 1
    elif arr.flags.writeable:
        arr.setflags(write=False)
        _lock_counts[key] = [arr, 1]
    elif key in _deferred:  # read-only only because we could not restore it yet
        _lock_counts[key] = [_deferred.pop(key), 1]
    else:  # read-only already (a broadcast view, the user's own choice): not ours to restore
        return
    locked.append(arr)


def _base_array(arr: np.ndarray) -> np.ndarray | None:
    """The array ``arr`` is a view of, or None if it owns its memory (or the owner is not an array)."""
    base = arr.base
    if base is None or type(base) is np.ndarray:
        return base
    base = getattr(base, "base", None)  # as_strided / sliding_window_view keep a DummyArray
    return base if isinstance(base, np.ndarray) else None


def _lock_chain(arr: np.ndarray, locked: list[np.ndarray]) -> np.ndarray:
    """Make ``arr`` and every array it is a view of read-only (counted); return the memory's owner."""
    while True:
        _lock_one(arr, locked)
        base = _base_array(arr)
        if base is None:
            return arr
        arr = base


def _root(arr: np.ndarray) -> np.ndarray:
    """The array that owns ``arr``'s memory (``arr`` itself if it is not a view)."""
    while (base := _base_array(arr)) is not None:
        arr = base
    return arr


def _protect_arrays(arrays: list[np.ndarray], inputs: Sequence[Any], out: np.ndarray, locked: list[np.ndarray]) -> None:
    out_root: np.ndarray | None = out if out.base is None else _root(out)
    for arr in arrays:
        root = _lock_chain(arr, locked)
        if root is out_root and out is not arr:  # the output is (a view of) what was saved
            _lock_chain(out, locked)
            out_root = None
        # The tensor of the graph holding this array, and the tensors it is a view of.
        t = None
        for u in inputs:
            if getattr(u, "array", None) is arr:
                t = u
                break
        while t is not None:
            if t.array is not arr:
                _lock_chain(t.array, locked)
            parent = t.grad_fn
            t = None
            if parent is not None:
                for u in parent.inputs:
                    data = getattr(u, "array", None)
                    if type(data) is np.ndarray and data.base is not None and _root(data) is root:
                        t = u  # the parent op made a view of u
                        break


# --------------------------------------------------------------------------- releasing


def _drain() -> None:
    while _pending:
        _release_arrays(_pending.pop())


def _release_arrays(locked: list[np.ndarray]) -> None:
    restored = False
    for arr in reversed(locked):  # bases were locked after their views: restore them first
        key = id(arr)
        entry = _lock_counts[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _lock_counts[key]
            try:
                arr.setflags(write=True)
                restored = True
            except ValueError:  # a base is still protected by another node
                _deferred[key] = arr
    while restored and _deferred:
        restored = False
        for key, arr in list(_deferred.items()):
            try:
                arr.setflags(write=True)
            except ValueError:
                continue
            del _deferred[key]
            restored = True
