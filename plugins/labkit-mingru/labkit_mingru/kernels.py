"""A numpy kernel for ``ParallelScan``: the same recurrence as a sequential loop over time.

On one CPU core the doubling scan's ``log2 T`` passes over the whole ``(B, T, H)`` array cost more
than ``T`` passes over ``(B, H)`` slices: B=32, T=128, H=128 float32, forward 8.6 ms vs 1.1 ms
(``benchmarks/bench_scan.py``, shared 2-core machine); on a GPU the doubling scan's few launches
should win (not measured). The
kernel is off unless a run selects it (``backend.kernels: [mingru]``) or code does
(``with labkit.plugins.use_kernels(["mingru"]): ...``). It saves exactly what
``ParallelScan.forward`` saves, so the op's own backward (itself a ``ParallelScan``) runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["sequential_scan_forward"]


def sequential_scan_forward(fn: Any, a: np.ndarray, b: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """``ParallelScan.forward`` for numpy arrays: ``h_t = a_t * h_{t-1} + b_t`` one step at a time."""
    steps = a.shape[1]
    # time-major copies: each step then reads and writes contiguous (B, *F) blocks
    a_steps = np.ascontiguousarray(np.moveaxis(a, 1, 0))
    h_steps = np.ascontiguousarray(np.moveaxis(b, 1, 0))  # becomes h in place
    h = h0
    for t in range(steps - 1, -1, -1) if fn.reverse else range(steps):
        step = h_steps[t]
        step += a_steps[t] * h
        h = step
    out = np.ascontiguousarray(np.moveaxis(h_steps, 0, 1))  # (B, T, *F)
    fn.save_for_backward(a, h0, out)
    return out
