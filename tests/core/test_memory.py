"""Graph references are released: repeated training steps do not grow memory."""

from __future__ import annotations

import gc

import numpy as np
import psutil

import labkit
import labkit.functional as F


def test_resident_memory_is_flat_over_1000_steps() -> None:
    g = labkit.Generator(0)
    w1 = labkit.randn(64, 128, generator=g, requires_grad=True)
    w2 = labkit.randn(10, 128, generator=g, requires_grad=True)
    x = labkit.randn(32, 64, generator=g)
    y = labkit.tensor(np.arange(32) % 10)

    def step() -> None:
        h = F.relu(F.matmul(x, w1))
        loss = F.cross_entropy(F.linear(h, w2), y)
        loss.backward()
        with labkit.no_grad():
            w1.data -= 1e-4 * w1.grad.data
            w2.data -= 1e-4 * w2.grad.data
        w1.grad = None
        w2.grad = None

    proc = psutil.Process()
    for _ in range(100):  # warm up allocator pools
        step()
    gc.collect()
    before = proc.memory_info().rss
    gc.disable()  # graphs must be freed by reference counting alone, not by the cycle collector
    try:
        for _ in range(1000):
            step()
        grown = proc.memory_info().rss - before
        cycles = gc.collect()
    finally:
        gc.enable()
    # one step's graph is ~100 KB; leaking it 1000 times would be ~100 MB
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 1000 steps"
    assert cycles == 0, f"{cycles} objects were left in reference cycles"
