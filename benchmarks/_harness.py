"""Shared benchmark helpers: thread limits, interleaved timing, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

THREADS = 2


def limit_threads(n: int = THREADS) -> None:
    """Use n BLAS/OpenMP threads in numpy and torch alike, and let malloc reuse freed
    blocks (labkit.backends.allocator) for every framework in the process alike."""
    from labkit.backends.allocator import reuse_freed_memory

    reuse_freed_memory()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    if "torch" in sys.modules:  # never import torch here: memory runs of labkit must not carry it
        sys.modules["torch"].set_num_threads(n)


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 3,
    inner: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each fn, timing them in turn so noise hits all alike.

    ``clock``: wall time by default; ``time.thread_time`` gives the CPU time of this thread.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(inner):
                fn()
            samples[name].append((clock() - t0) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        infos = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()]
        blas = "; ".join(infos)
    except ImportError:
        pass
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, BLAS: {blas or 'unknown'}, env: {env or 'none'}"


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_mib() -> float:
    """Resident set now."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """Peak resident set of this process image (VmHWM: unlike ru_maxrss, not inherited over fork+exec)."""
    return _status_mib("VmHWM")
