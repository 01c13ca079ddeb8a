"""Data-parallel scaling on the CPU: 1 rank (1 and 2 BLAS threads) against 2 ranks x 1 thread over MPI.

Strong scaling: the global batch is fixed (MLP 784-512-256-10: 256 examples; CNN 2 conv + 2
linear on 28x28: 64), so every configuration trains the same model the same way; 2 ranks
each compute half of it and all-reduce the gradients (labkit.distributed, the calls the
training loop makes). Each configuration runs in fresh processes, the configurations in
turn, ``--repeats`` times; the table gives medians.

    python benchmarks/ddp_scaling.py --repeats 3          # needs mpirun and mpi4py (labkit[mpi])
    mpirun -n 2 python benchmarks/ddp_scaling.py --worker mlp --steps 30   # one measurement

"ms/step" is a whole step (forward, backward, gradient all-reduce, optimizer step) on rank 0;
"comm" is the part spent in the loss all-reduce and the gradient all-reduce (waiting for the
slower rank included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = {"mlp": 256, "cnn": 64}
CONFIGS = (("1 rank x 1 thread", 1, 1), ("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1))


def build(name: str, batch: int, rank: int, ranks: int) -> tuple[Any, Any, Any, Any]:
    """The model, optimizer and this rank's shard ``(x, y)`` of a fixed global batch."""
    import labkit
    from labkit import nn, optim

    g = labkit.Generator(0)
    rng = np.random.default_rng(0)
    if name == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 512, generator=g), nn.ReLU(),
            nn.Linear(512, 256, generator=g), nn.ReLU(),
            nn.Linear(256, 10, generator=g),
        )  # fmt: skip
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128, generator=g), nn.ReLU(), nn.Linear(128, 10, generator=g),
        )  # fmt: skip
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        opt = optim.Adam(model.parameters(), lr=1e-3)
    y = rng.integers(0, 10, batch)
    part = np.array_split(np.arange(batch), ranks)[rank]
    return model, opt, labkit.tensor(x[part]), labkit.tensor(y[part])


def worker(name: str, steps: int, bucket_mb: float) -> None:
    """One measurement (under mpirun for several ranks); rank 0 prints a JSON line."""
    import labkit.functional as F
    from labkit.backends.allocator import reuse_freed_memory
    from labkit.core.random import Generator
    from labkit.distributed.strategy import DDPStrategy

    reuse_freed_memory()
    strategy = DDPStrategy("cpu", bucket_mb=bucket_mb)
    model, opt, x, y = build(name, GLOBAL_BATCH[name], strategy.rank, strategy.world_size)
    streams = SimpleNamespace(data=Generator(0), model=Generator(1), dropout=Generator(2))  # the runner's Seeds
    strategy.setup(model, opt, streams, loader=None)
    totals, comms = [], []
    for i in range(steps + 5):  # 5 warm-up steps
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        c0 = time.perf_counter()
        strategy.begin_step(float(loss.item()), int(y.shape[0]), None)
        comm = time.perf_counter() - c0
        opt.zero_grad()
        loss.backward()
        c0 = time.perf_counter()
        strategy.reduce_gradients()
        comm += time.perf_counter() - c0
        opt.step()
        if i >= 5:
            totals.append(time.perf_counter() - t0)
            comms.append(comm)
    if strategy.is_main:
        params = sum(p.data.size for p in model.parameters())
        print(json.dumps({"step_s": statistics.median(totals), "comm_s": statistics.median(comms), "params": params}))
    strategy.finish()


def measure(name: str, ranks: int, threads: int, steps: int, bucket_mb: float) -> dict[str, float]:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--bucket-mb", str(bucket_mb)]
    if ranks > 1:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("mpirun not found: apt-get install -y openmpi-bin libopenmpi-dev; pip install mpi4py")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        command = [mpirun, "-n", str(ranks), "--oversubscribe", "--bind-to", "none", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(GLOBAL_BATCH), help="run one measurement in this process")
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.bucket_mb)
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}; steps {args.steps}, repeats {args.repeats}")
    print("| workload (global batch) | configuration | ms/step | examples/s | speed-up vs 1x1 | comm ms/step |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads.split(","):
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in CONFIGS}
        for _ in range(args.repeats):  # configurations in turn, so that load changes hit all alike
            for label, ranks, threads in CONFIGS:
                runs[label].append(measure(name, ranks, threads, args.steps, args.bucket_mb))
        base = statistics.median(r["step_s"] for r in runs[CONFIGS[0][0]])
        for label, _, _ in CONFIGS:
            step = statistics.median(r["step_s"] for r in runs[label])
            comm = statistics.median(r["comm_s"] for r in runs[label])
            batch = GLOBAL_BATCH[name]
            print(
                f"| {name} ({batch}) | {label} | {step * 1e3:.2f} | {batch / step:,.0f} | {base / step:.2f} "
                f"| {comm * 1e3:.2f} |"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
