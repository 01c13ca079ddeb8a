"""The fastkernels plugin: each kernel against the built-in forward, and whole training steps.

    python benchmarks/plugin_kernels.py                  # Markdown tables
    python benchmarks/plugin_kernels.py --repeats 60
    python benchmarks/plugin_kernels.py --cpu-time       # on a busy machine: CPU time, 1 BLAS thread

Needs the plugin installed (``pip install -e plugins/labkit-fastkernels``).

(a) per op: the arrays and ``Function`` objects of one real CNN training step of
    benchmarks/training_steps.py (1x28x28 inputs, batch 64: conv3x3 32 - pool2 - conv3x3 64
    - pool2 - linear 128 - linear 10, Adam) are recorded (every call of a Function the
    plugin has a kernel for), then each recorded call is timed with the built-in
    ``forward`` and with the kernel, interleaved; one row per distinct call;
(b) that training step (zero_grad, forward, backward, Adam), two identically seeded models,
    one stepped inside ``labkit.plugins.use_kernels(["fastkernels"])``, interleaved.
Times: medians of --repeats after warm-up, float32, 2 BLAS threads (benchmarks/_harness.py),
wall clock. With --cpu-time: 1 BLAS thread and the CPU time of the timing thread, which other
processes on a shared machine disturb far less (they still share caches and memory bandwidth).
ratio = kernel / built-in (below 1: the kernel is faster).
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable
from typing import Any

from _harness import interleaved, limit_threads, machine

limit_threads()

import numpy as np  # noqa: E402
from training_steps import labkit_step  # noqa: E402

import labkit  # noqa: E402
import labkit.functional  # noqa: E402  (registers the built-in Functions)
from labkit.plugins import registry, use_kernels  # noqa: E402

PLUGIN = "fastkernels"
WORKLOAD = "cnn"


def plugin_kernels() -> dict[str, Callable[..., Any]]:
    """Built-in Function name -> this plugin's kernel (imports them)."""
    registry.load_plugins()
    found = {e.meta["function"]: registry.get("kernel", e.name) for e in registry.entries("kernel", owner=PLUGIN)}
    if not found:
        raise SystemExit(f"plugin {PLUGIN!r} has no kernels here: pip install -e plugins/labkit-{PLUGIN}")
    return found


def record_calls(step: Callable[[], None], functions: list[str]) -> list[tuple[str, Any, tuple[Any, ...], dict]]:
    """Run ``step`` once with recorders as kernels: (function, fn object, input arrays, attributes) per call."""
    calls: list[tuple[str, Any, tuple[Any, ...], dict]] = []
    installed = []
    for name in functions:
        cls = registry.get("function", name)

        def recorder(fn: Any, *arrays: Any, _name: str = name, _cls: type = cls) -> Any:
            calls.append((_name, fn, arrays, dict(vars(fn))))
            return _cls.forward(fn, *arrays)

        installed.append((cls, cls._kernels.get("numpy")))
        cls.register_kernel("numpy", recorder)
    try:
        step()
    finally:
        for cls, previous in installed:
            if previous is None:
                cls._kernels.pop("numpy", None)
            else:
                cls._kernels["numpy"] = previous
    return calls


def _replay(calls: list[tuple[str, Any, tuple[Any, ...], dict]], forward: Callable[..., Any] | None) -> Callable:
    """Run the recorded calls again (built-in forward when ``forward`` is None), restoring each fn's state."""

    def run() -> None:
        for _, fn, arrays, state in calls:
            fn.__dict__.update(state)  # ConvGradInput consumes its rows; forwards set saved state
            if forward is None:
                type(fn).forward(fn, *arrays)
            else:
                forward(fn, *arrays)

    return run


def _shape_label(name: str, arrays: tuple[Any, ...]) -> str:
    shapes = " ".join("x".join(str(s) for s in a.shape) for a in arrays if a is not None)
    return f"{name} {shapes}"


def interleaved_cpu(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """``_harness.interleaved`` timing the CPU time of this thread (``time.thread_time``)."""
    return interleaved(fns, repeats, warmup, clock=time.thread_time)


def per_op(
    workload: str, kernels: dict[str, Callable[..., Any]], repeats: int, timing: Callable[..., dict[str, float]]
) -> list[tuple[str, float, float]]:
    """(label, built-in ms, kernel ms) per distinct recorded call of the workload's step."""
    step = labkit_step(workload)
    step()  # warm-up, Adam state allocated
    calls = record_calls(step, sorted(kernels))
    groups: dict[str, list] = {}
    for call in calls:
        label = _shape_label(call[0], call[2])
        groups.setdefault(label, []).append(call)
    rows = []
    for label, group in groups.items():
        name = group[0][0]
        times = timing({"builtin": _replay(group, None), "kernel": _replay(group, kernels[name])}, repeats, warmup=2)
        count = f" (x{len(group)})" if len(group) > 1 else ""
        rows.append((label + count, times["builtin"] * 1e3, times["kernel"] * 1e3))
    return rows


def whole_step(workload: str, repeats: int, timing: Callable[..., dict[str, float]]) -> tuple[float, float, float]:
    """(built-in ms, with kernels ms, use_kernels enter+exit ms) for the workload's training step."""
    plain, fast = labkit_step(workload), labkit_step(workload)

    def with_kernels() -> None:
        with use_kernels([PLUGIN]):
            fast()

    def toggle() -> None:
        with use_kernels([PLUGIN]):
            pass

    times = timing({"builtin": plain, "kernels": with_kernels, "toggle": toggle}, repeats, warmup=3)
    return times["builtin"] * 1e3, times["kernels"] * 1e3, times["toggle"] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cpu-time", action="store_true", help="1 BLAS thread, CPU time of this thread")
    args = parser.parse_args()
    timing: Callable[..., dict[str, float]] = interleaved
    clock = "wall clock, 2 BLAS threads"
    if args.cpu_time:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        timing, clock = interleaved_cpu, "CPU time of the timing thread, 1 BLAS thread"
    kernels = plugin_kernels()
    print(f"# plugin_kernels ({PLUGIN}), {datetime.date.today()}, {machine()}")
    print(
        f"# labkit {labkit.__version__}, numpy {np.__version__}, {args.repeats} interleaved repeats, medians, {clock}\n"
    )
    print("| op call in the CNN step (input shapes) | built-in ms | kernel ms | ratio |")
    print("|---|---:|---:|---:|")
    saved = 0.0
    for label, base, kern in per_op(WORKLOAD, kernels, args.repeats, timing):
        saved += base - kern
        print(f"| {label} | {base:.3f} | {kern:.3f} | {kern / base:.2f} |")
    print(f"| all of them (built-in minus kernel) | | {-saved:+.3f} | |")
    print("\n| training step | built-in ms | with kernels ms | ratio | use_kernels enter+exit ms |")
    print("|---|---:|---:|---:|---:|")
    base, kern, toggle = whole_step(WORKLOAD, args.repeats, timing)
    print(
        f"| CNN, batch 64 (benchmarks/training_steps.py) | {base:.2f} | {kern:.2f} | {kern / base:.3f} | {toggle:.3f} |"
    )


if __name__ == "__main__":
    main()
