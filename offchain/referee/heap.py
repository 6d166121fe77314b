"""The process heap settings the exact executor runs best with (glibc's malloc, on Linux).

An exact forward allocates and frees hundreds of megabytes of temporaries per batch (float64
accumulators of every score matrix, the int16 halves of every GEMM input, the slots). By
default glibc serves every block above a moving threshold (at most 32 MiB) with a fresh
``mmap`` and gives it back on ``free``, and trims the top of the heap as soon as 128 KiB are
free there, so each forward faults and zeroes the same pages in again. Measured on the real
MiniLM at batch 32 x 128 (docs/benchmarks.md): 579-897 ms an exact forward from one process
run to the next, against 500-517 ms with the settings below (the fp32 forward: 440-478 ms).

``tune`` sets ``M_MMAP_THRESHOLD`` to its largest value (32 MiB; blocks above it are still
mapped, so no allocation can fail for want of one) and ``M_TRIM_THRESHOLD`` to 1 GiB: freed
memory stays in the process for the next batch instead of going back to the kernel. The cost
is a resident size that does not shrink after a large batch. ``REFEREE_MALLOC_TUNING=0``
leaves malloc as it is; elsewhere than glibc nothing is done.
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit hosts
TRIM_THRESHOLD = 1 << 30

_state: bool | None = None  # None: not tried yet


def tune() -> bool:
    """Apply the settings once per process; True if they are in force."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> bool:
    if os.environ.get("REFEREE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc (musl has none: AttributeError)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 for a value it refuses
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
