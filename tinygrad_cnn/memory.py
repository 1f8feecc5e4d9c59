"""Allocator tuning for training loops (glibc only, opt-in).

A training step allocates and frees the same large temporaries (im2col matrices, window
gradients) every time. glibc's malloc serves allocations above a threshold with fresh mmap()s and
returns freed memory to the OS, so each step page-faults its buffers back in: the kernel zeroes
tens of megabytes per step. :func:`tune_allocator` raises those thresholds so freed buffers stay in
the process and are reused. The price is that the process keeps its peak memory instead of
shrinking between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MIB = 1024 * 1024


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
    return bool(ok)
