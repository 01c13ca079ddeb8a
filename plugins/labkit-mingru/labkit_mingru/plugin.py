"""The entry point labkit's plugin discovery calls (``labkit.plugins`` group, name ``mingru``).

Light on purpose: every object is named by a ``"module:attr"`` string and imported only when
first used, so discovering the plugin imports nothing but this file.
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register minGRU's ops, Function, layers and model (stored as ``mingru.<name>``)."""
    registry.op("parallel_scan", "labkit_mingru.ops:parallel_scan", specs="labkit_mingru.checks:scan_specs")
    registry.op("min_gru_scan", "labkit_mingru.ops:min_gru_scan", specs="labkit_mingru.checks:min_gru_specs")
    registry.function("parallel_scan", "labkit_mingru.ops:ParallelScan")
    # the sequential loop, faster on one CPU core; active only when selected (backend.kernels: [mingru])
    registry.kernel(
        "mingru.parallel_scan",
        "numpy",
        "labkit_mingru.kernels:sequential_scan_forward",
        specs="labkit_mingru.checks:scan_specs",
    )
    registry.module("MinGRU", "labkit_mingru.layers:MinGRU", example="labkit_mingru.checks:mingru_example")
    registry.module("MinGRUBlock", "labkit_mingru.layers:MinGRUBlock", example="labkit_mingru.checks:block_example")
    registry.module("MinGRULM", "labkit_mingru.models:MinGRULM", example="labkit_mingru.checks:lm_example")
