"""Host memory reuse: keep freed large numpy buffers in the process instead of the OS.

glibc's malloc serves large blocks (a batch of activations, an im2col buffer) with
mmap and returns them to the OS on free, so the next training step page-faults every
byte again. ``reuse_freed_memory()`` raises malloc's mmap and trim thresholds so those
blocks stay in the heap and are reused, which is what a caching allocator does. It is
a process-wide setting: the runner and the benchmarks call it once; a user's script
may too. It does nothing (and returns False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: the largest mmap threshold glibc accepts on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MAX_MMAP_THRESHOLD = 32 * 2**20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6")
        lib.mallopt  # noqa: B018 - probe: only glibc has it
    except (OSError, AttributeError):
        return None
    return lib


def reuse_freed_memory(mmap_threshold: int = MAX_MMAP_THRESHOLD, trim_threshold: int = 1 << 30) -> bool:
    """Keep freed blocks below ``mmap_threshold`` bytes for reuse; trim the heap only past ``trim_threshold``.

    Returns True when glibc accepted both settings.
    """
    if not 0 < mmap_threshold <= MAX_MMAP_THRESHOLD:
        raise ValueError(
            f"reuse_freed_memory: mmap_threshold must be in (0, {MAX_MMAP_THRESHOLD}], got {mmap_threshold}"
        )
    if trim_threshold <= 0:
        raise ValueError(f"reuse_freed_memory: trim_threshold must be positive, got {trim_threshold}")
    lib = _libc()
    if lib is None:
        return False
    ok_mmap = lib.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold))
    ok_trim = lib.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(trim_threshold, 2**31 - 1)))
    return bool(ok_mmap) and bool(ok_trim)
