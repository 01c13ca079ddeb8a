"""Logging overhead of MLflowTracker: 1,000 steps x 3 metrics to a local SQLite store.

    python benchmarks/tracking_overhead.py [--steps 1000] [--step-ms 40]

Times every ``log_metrics`` call plus the flushes and ``finish`` (all the time the
training loop spends in the tracker), for the default thresholds (``flush_every_n=1000``)
and for the flush cadence a real ``--step-ms`` step gives with ``flush_every_s=5``
(one flush every 5000/step_ms steps, simulated with ``flush_every_n`` so the benchmark
does not sleep). Also times MLflow's unbuffered ``log_metric`` per value for comparison.
Reports the overhead as a share of a ``--step-ms`` training step (target: well under 2%).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time


def run(uri: str, steps: int, flush_every_n: int) -> float:
    """Seconds spent in the tracker for ``steps`` steps of 3 metrics (run creation excluded)."""
    from labkit.tracking.mlflow_tracker import MLflowTracker

    tracker = MLflowTracker(uri=uri, experiment="overhead", flush_every_s=1e9, flush_every_n=flush_every_n)
    spent = 0.0
    for step in range(steps):
        start = time.perf_counter()
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "train/lr": 1e-3, "train/throughput": 512.0}, step)
        spent += time.perf_counter() - start
    start = time.perf_counter()
    tracker.finish()
    return spent + time.perf_counter() - start


def unbuffered(uri: str, values: int) -> float:
    """Seconds per value for ``MlflowClient.log_metric`` one call at a time."""
    from labkit.tracking.mlflow_tracker import MLflowTracker

    tracker = MLflowTracker(uri=uri, experiment="overhead", run_name="unbuffered")
    start = time.perf_counter()
    for step in range(values):
        tracker.client.log_metric(tracker.run_id, "train/loss", 1.0, step=step)
    seconds = (time.perf_counter() - start) / values
    tracker.finish()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--step-ms", type=float, default=40.0, help="the training step the overhead is compared with")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        run(uri, 10, 1000)  # warm up: import mlflow, create the schema
        per_5s = max(1, int(5000 / args.step_ms)) * 3
        budget = args.steps * args.step_ms / 1000
        print(f"{args.steps} steps x 3 metrics, local SQLite; overhead vs a {args.step_ms:g} ms step")
        print("| flushing | tracker time | per step | share of step |")
        print("|---|---|---|---|")
        for label, n in (("every 1000 values (default)", 1000), (f"every 5 s (= {per_5s} values)", per_5s)):
            seconds = min(run(uri, args.steps, n) for _ in range(3))
            print(
                f"| {label} | {seconds * 1000:.0f} ms | {seconds / args.steps * 1e3:.3f} ms | {seconds / budget:.2%} |"
            )
        one = unbuffered(uri, 200)
        print(
            f"| unbuffered log_metric (for comparison) | {one * 3 * args.steps * 1000:.0f} ms | "
            f"{one * 3 * 1e3:.3f} ms | {one * 3 * args.steps / budget:.2%} |"
        )


if __name__ == "__main__":
    main()
