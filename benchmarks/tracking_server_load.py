"""Load test: N parallel trial processes logging metrics through labkit's MLflowTracker to one store.

    python benchmarks/tracking_server_load.py                        # 8 x 1,000 steps, PostgreSQL server vs SQLite
    python benchmarks/tracking_server_load.py --processes 4 --steps 200 --server-uri http://127.0.0.1:5000
    python benchmarks/tracking_server_load.py --stores sqlite --json out.json

Each trial is its own Python process (as with `hydra/launcher=parallel`): it opens a run with
``MLflowTracker`` (default thresholds: flush every 5 s or 1,000 values), logs ``--metrics`` metrics
at every step and flushes every ``--flush-every`` steps, as the training loop does at each
checkpoint, then ends the run FINISHED. The store and the experiment exist before the trials start
(as in a sweep: the callback creates them); all trials start together (a file barrier after their
imports), so run creation is timed under contention too. Each value encodes its trial and step (``trial * 1e6 + step + k / 10``), so after the
run every history is read back and checked: exactly ``--steps`` values per metric and run, each
step once, no value from another trial, one run per trial. The exit code is 1 if any check fails.

Stores: ``server`` (an MLflow server on PostgreSQL: ``--server-uri``, or one started here with
``labkit.tracking.server`` in a temporary folder: that needs PostgreSQL installed) and
``sqlite`` (a fresh local ``sqlite:///.../mlflow.db``, the default store of ``labkit train``).
Times: the wall time from the start signal until the last trial ended, and per trial the time
inside the tracker (logging + flushes + finish).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEYS = ("train/loss", "train/acc", "train/lr", "train/throughput", "train/grad_norm")


def value(trial: int, step: int, k: int) -> float:
    """The value trial ``trial`` logs for metric ``k`` at ``step`` (exact in float64, unique per trial)."""
    return trial * 1e6 + step + k / 10


# ---- one trial (a child process) -------------------------------------------------------------


def trial_main(args: argparse.Namespace) -> None:
    """Wait for the start signal, log ``steps`` steps, print timings as JSON."""
    import mlflow.entities
    import mlflow.tracking  # noqa: F401 - imported before the start signal: the timings are of logging

    from labkit.tracking.mlflow_tracker import MLflowTracker

    (Path(args.barrier) / f"ready-{args.trial}").touch()
    while not (Path(args.barrier) / "go").exists():
        time.sleep(0.005)
    begin = time.perf_counter()
    tracker = MLflowTracker(
        uri=args.uri, experiment=args.experiment, run_name=f"trial-{args.trial}", tags={"load.trial": args.trial}
    )
    created = time.perf_counter()
    keys = KEYS[: args.metrics]
    for step in range(args.steps):
        tracker.log_metrics({key: value(args.trial, step, k) for k, key in enumerate(keys)}, step)
        if step % args.flush_every == args.flush_every - 1:
            tracker.flush()  # the loop flushes after each checkpoint
    tracker.finish()
    end = time.perf_counter()
    print(
        json.dumps({"trial": args.trial, "run_id": tracker.run_id, "create_s": created - begin, "log_s": end - created})
    )


# ---- the driver --------------------------------------------------------------------------------


def run_trials(uri: str, experiment: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Start ``args.processes`` trials on ``uri``, release them together; wall time and per-trial timings."""
    from labkit.tracking.store import ensure_experiment, make_client

    ensure_experiment(make_client(uri), experiment)  # as the sweep callback does before it launches trials
    barrier = folder / f"barrier-{experiment}"
    barrier.mkdir(parents=True)
    common = ["--uri", uri, "--experiment", experiment, "--steps", str(args.steps), "--metrics", str(args.metrics)]
    common += ["--flush-every", str(args.flush_every), "--barrier", str(barrier)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--trial", str(i), *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(args.processes)
    ]
    while len(list(barrier.glob("ready-*"))) < args.processes:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    start = time.perf_counter()
    (barrier / "go").touch()
    results, errors = [], []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace")[-2000:])
        else:
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    return {"wall_s": wall, "trials": results, "errors": errors}


def verify(uri: str, experiment: str, args: argparse.Namespace) -> list[str]:
    """Everything wrong with the store's copy of the trials (empty: every value exactly once, none mixed)."""
    from labkit.tracking.store import make_client

    client = make_client(uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id], max_results=10_000)
    problems = []
    by_trial: dict[int, list[Any]] = {}
    for run in runs:
        by_trial.setdefault(int(run.data.tags.get("load.trial", -1)), []).append(run)
    if sorted(by_trial) != list(range(args.processes)) or any(len(v) != 1 for v in by_trial.values()):
        problems.append(f"{experiment}: expected one run per trial 0..{args.processes - 1}, got {sorted(by_trial)}")
    for trial, (run, *_) in sorted(by_trial.items()):
        if run.info.status != "FINISHED":
            problems.append(f"trial {trial}: status {run.info.status}")
        for k, key in enumerate(KEYS[: args.metrics]):
            history = client.get_metric_history(run.info.run_id, key)
            got = sorted((m.step, m.value) for m in history)
            expected = [(s, value(trial, s, k)) for s in range(args.steps)]
            if got != expected:
                steps = [s for s, _ in got]
                problems.append(
                    f"trial {trial} {key}: {len(got)} values (expected {args.steps}), "
                    f"{len(set(steps))} distinct steps, {sum(1 for s, v in got if v != value(trial, s, k))} foreign"
                )
    return problems


def start_server(folder: Path) -> tuple[Any, Any]:
    """A private PostgreSQL cluster and an MLflow server on it, in ``folder`` (reachable by ``postgres``)."""
    from labkit.tracking.server import MlflowServer, PostgresCluster, free_port

    cluster = PostgresCluster(folder / "pg")
    cluster.start()
    server = MlflowServer(
        cluster.uri, folder / "artifacts", port=free_port(), env=cluster.client_env(), log_path=folder / "server.log"
    )
    server.start()
    server.wait_healthy(300)
    return cluster, server


def summary(name: str, uri: str, outcome: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    logs = sorted(t["log_s"] for t in outcome["trials"]) or [float("nan")]
    creates = sorted(t["create_s"] for t in outcome["trials"]) or [float("nan")]
    return {
        "store": name,
        "uri": uri,
        "wall_s": round(outcome["wall_s"], 2),
        "create_s_median": round(creates[len(creates) // 2], 3),
        "log_s_median": round(logs[len(logs) // 2], 3),
        "log_s_max": round(logs[-1], 3),
        "failed_trials": len(outcome["errors"]),
        "exact": not problems and not outcome["errors"],
        "problems": problems[:20],
        "errors": outcome["errors"][:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=3, help=f"metrics per step (at most {len(KEYS)})")
    parser.add_argument("--flush-every", type=int, default=100, help="steps between flushes (the loop's checkpoints)")
    parser.add_argument("--stores", default="server,sqlite", help="comma-separated: server, sqlite")
    parser.add_argument("--server-uri", help="an MLflow server to load (default: start one on a private PostgreSQL)")
    parser.add_argument("--sqlite-dir", help="the SQLite store's folder (default: a temporary one, deleted)")
    parser.add_argument("--experiment", default=f"load-{os.getpid()}-{int(time.time())}")
    parser.add_argument("--json", help="also write the results here")
    # a trial process
    parser.add_argument("--trial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    if args.trial is not None:
        trial_main(args)
        return 0
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"server", "sqlite"}:
        parser.error(f"--stores: expected a comma-separated subset of server,sqlite, got {args.stores!r}")
    if not 1 <= args.metrics <= len(KEYS) or args.processes < 1 or args.steps < 1 or args.flush_every < 1:
        parser.error("expected --processes, --steps, --flush-every >= 1 and --metrics in 1..5")

    folder = Path(tempfile.mkdtemp(prefix="labkit-load-"))
    folder.chmod(0o711)  # the postgres user must reach the cluster folder inside when this runs as root
    cluster = server = None
    rows = []
    try:
        for name in stores:
            if name == "server":
                uri = args.server_uri
                if uri is None:
                    cluster, server = start_server(folder)
                    uri = server.uri
            else:
                db = Path(args.sqlite_dir).resolve() if args.sqlite_dir else folder / "sqlite"
                uri = f"sqlite:///{db}/mlflow.db"
            experiment = f"{args.experiment}-{name}"
            outcome = run_trials(uri, experiment, args, folder)
            rows.append(summary(name, uri, outcome, verify(uri, experiment, args)))
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"{args.processes} trial processes x {args.steps} steps x {args.metrics} metrics, flush every {args.flush_every}"
    )
    print("| store | wall s | run creation s (median) | in tracker s (median / max) | read back |")
    print("|---|---|---|---|---|")
    for row in rows:
        check = "exact" if row["exact"] else f"WRONG: {row['problems'][:3]} {row['errors'][:1]}"
        print(
            f"| {row['store']} | {row['wall_s']:.1f} | {row['create_s_median']:.2f} | "
            f"{row['log_s_median']:.2f} / {row['log_s_max']:.2f} | {check} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": rows}, indent=1))
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
