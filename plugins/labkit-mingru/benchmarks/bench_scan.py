"""Time the scan (doubling vs the numpy kernel) and the MLP activations on this machine.

    OPENBLAS_NUM_THREADS=1 python plugins/labkit-mingru/benchmarks/bench_scan.py

Prints medians of forward and backward times (ms), float32, B=32, T=128.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import labkit
import labkit.functional as F
from labkit.plugins import load_plugins, use_kernels


def _median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def bench_scan(hidden: int, kernels: list[str], repeats: int = 12) -> tuple[float, float]:
    from labkit_mingru.ops import parallel_scan

    rng = np.random.default_rng(0)
    shape = (32, 128, hidden)
    a = labkit.tensor(rng.uniform(0, 1, shape).astype(np.float32), requires_grad=True)
    b = labkit.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    forward, backward = [], []
    with use_kernels(kernels):
        for _ in range(repeats):
            start = time.perf_counter()
            h = parallel_scan(a, b)
            middle = time.perf_counter()
            h.backward(labkit.ones_like(h))
            forward.append(middle - start)
            backward.append(time.perf_counter() - middle)
    return _median_ms(forward[2:]), _median_ms(backward[2:])


def bench_activation(name: str, repeats: int = 7) -> float:
    fn = {
        "relu": F.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu,
    }[name]
    x = labkit.randn(4096, 384, generator=labkit.Generator(0), requires_grad=True)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        y = fn(x)
        y.backward(labkit.ones_like(y))
        samples.append(time.perf_counter() - start)
    return _median_ms(samples[1:])


def main() -> None:
    load_plugins()
    print("scan (B=32, T=128, float32): forward / backward ms")
    for hidden in (128, 256):
        for label, kernels in (("doubling scan", []), ("numpy kernel", ["mingru"])):
            fwd, bwd = bench_scan(hidden, kernels)
            print(f"  H={hidden:<4} {label:14} {fwd:7.2f} / {bwd:7.2f}")
    print("activation, forward + backward of (4096, 384) float32: ms")
    for name in ("relu", "silu", "gelu_tanh", "gelu"):
        print(f"  {name:10} {bench_activation(name):7.1f}")


if __name__ == "__main__":
    main()
