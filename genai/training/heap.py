"""CPU training's heap: large tensors straight from the OS and back, not kept in glibc's heap.

A training step allocates and frees gigabytes of activation-sized tensors (1-16 MB each). glibc serves
blocks above its mmap threshold with their own mapping, but it raises that threshold to the largest
block freed so far (up to 32 MB), so after the first step every activation comes from the heap, whose
freed middle is never returned: the process peaked ~800 MB above its live tensors on the medium bench.
A fixed threshold (`mallopt(M_MMAP_THRESHOLD)`, which also stops the raising) maps each large tensor
and unmaps it when freed; measured no slower there (bench/RESULTS.md). glibc only; a MALLOC_MMAP_THRESHOLD_
in the environment is the user's own choice and wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
THRESHOLD = 4 << 20  # bytes: tensors this large or larger are mapped on their own


def map_large_blocks(threshold: int = THRESHOLD) -> str | None:
    """Fix glibc's mmap threshold for this process; what was set (for the manifest), or None where
    nothing was (not Linux/glibc, or the environment already sets it)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return None
    if mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(threshold)) != 1:
        return None
    return f"blocks >= {threshold >> 20} MiB mapped"
