"""Allocator tuning for training loops (glibc only; on by default, applied at import).

A training step allocates and frees the same large temporaries (im2col matrices, window
gradients, a batch norm's centred input) every time. glibc's malloc serves allocations above a
threshold with fresh mmap()s and returns freed memory at the top of its heap to the OS, so each
step page-faults its buffers back in: the kernel zeroes tens of megabytes per step, a third of a
LeNet-ish step's CPU time. :func:`tune_allocator` raises those thresholds so freed buffers stay in
the process and are reused. The price is that the process keeps its peak heap instead of
shrinking between steps, as PyTorch's caching allocators do on accelerators.

``import tinygrad_cnn`` calls it once, unless the environment says otherwise:

- ``TINYGRAD_CNN_TUNE_ALLOCATOR=0`` leaves the allocator as it is;
- glibc's own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_TOP_PAD_`` (or
  ``GLIBC_TUNABLES``), set by a user who tunes malloc themselves, are left to rule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MIB = 1024 * 1024

ENVIRONMENT_VARIABLE = "TINYGRAD_CNN_TUNE_ALLOCATOR"
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_tuned = [False]


def tune_allocator(mmap_threshold_mib: int = 32, top_pad_mib: int = 64) -> bool:
    """Keep freed buffers for reuse instead of returning them to the OS (process-wide).

    Sets glibc's ``M_MMAP_THRESHOLD`` (allocations below it come from the reusable heap),
    ``M_TRIM_THRESHOLD`` (never trim the heap) and ``M_TOP_PAD`` (grow the heap in larger steps).
    Returns True when applied, False where the C library is not glibc (nothing changes then).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mib * _MIB)
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    ok &= mallopt(_M_TOP_PAD, top_pad_mib * _MIB)
    _tuned[0] = _tuned[0] or bool(ok)
    return bool(ok)


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` has been applied in this process (at import or since)."""
    return _tuned[0]


def tune_by_default() -> bool:
    """What ``import tinygrad_cnn`` does: :func:`tune_allocator` unless the environment opts out
    (see the module's docstring). Returns whether the allocator was tuned."""
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip() == "0" or any(v in os.environ for v in GLIBC_VARIABLES):
        return False
    return tune_allocator()
