"""Process-wide tuning for bulk data work, applied by the CLI and the validating workers."""

from __future__ import annotations

import ctypes
import os
from functools import cache

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20


@cache
def tune_allocator() -> bool:
    """Keep freed heap memory for the next buffer instead of handing it back to the OS.

    The pipelines move buffers of a few MB by the hundred: API texts, validated JSONL,
    bus segments. With glibc's defaults such a buffer is often a fresh mapping, or the
    heap is trimmed and grown again, so its pages are faulted in anew each time. Here
    buffers up to 32 MB (glibc's own ceiling when it adapts) come from the heap, and up
    to 128 MB of freed heap is kept (the figures are in ``bench/RESULTS.md``). Returns
    whether it applied: glibc only, a no-op elsewhere.
    """
    if not _glibc():
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # a libc that calls itself glibc but does not export it
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def _glibc() -> bool:
    """Asked of the C library itself: ``platform.libc_ver()`` reads the interpreter's
    binary to find out, milliseconds at every start when that binary is a large static
    one."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # a libc without that name
        return False
