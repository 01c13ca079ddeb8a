"""Spooling against a real ``mlflow server`` (SQLite backend, served artifacts) that goes away mid-run.

One server per module (it takes 20 s or more to answer here); the outage test stops it and starts
it again on the same port and store. Then every metric step must be in the store exactly once,
with every param, tag and artifact, and the runs FINISHED.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.tracking.mlflow_tracker import MLflowTracker
from labkit.tracking.spool import peek
from labkit.tracking.store import is_reachable

pytestmark = pytest.mark.slow

mlflow = pytest.importorskip("mlflow")


class Server:
    """``python -m mlflow server`` on 127.0.0.1:<free port> with a SQLite store in ``root``."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.root = root
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db"]
        command += ["--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        log = open(self.root / f"server-{self.starts}.log", "wb")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job workers: starts faster
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        log.close()

    def wait_healthy(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not is_reachable(self.uri, timeout=2.0):
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, f"mlflow server not healthy after {timeout} s\n{self.log_tail()}"
            time.sleep(0.3)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=self.uri).search_experiments()  # the first API call is slow: make it here

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        assert not is_reachable(self.uri, timeout=1.0)

    def log_tail(self) -> str:
        return (self.root / f"server-{self.starts}.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def spool_settings(folder: Path, **extra) -> dict:
    base = {"enabled": True, "dir": str(folder), "request_timeout_s": 5, "backoff_min_s": 0.2, "backoff_max_s": 1.0}
    return {**base, "max_wait_s": 90.0, **extra}


def log_steps(tracker: MLflowTracker, steps: range, flush_every: int = 5) -> float:
    """Log ``train/loss`` and ``train/acc`` at each step, flushing every few steps; the slowest flush (s)."""
    worst = 0.0
    for step in steps:
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "train/acc": step / 1000}, step)
        if step % flush_every == flush_every - 1:
            begin = time.perf_counter()
            tracker.flush()
            worst = max(worst, time.perf_counter() - begin)
    return worst


def wait_sent(tracker: MLflowTracker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while tracker._spool.journal.pending_count():
        assert time.monotonic() < deadline, f"run {tracker.run_id}: backlog not sent in {timeout} s"
        time.sleep(0.1)


def artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def check_run(client, run_id: str, steps: range, files: set[str], params: dict) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("train/loss", "train/acc"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(steps), key  # every step, exactly once
    loss = {m.step: m.value for m in client.get_metric_history(run_id, "train/loss")}
    assert all(loss[s] == pytest.approx(1.0 / (s + 1)) for s in steps)
    assert {k: run.data.params[k] for k in params} == params
    assert files <= artifacts(client, run_id)


def test_server_stopped_and_restarted_mid_run_loses_nothing_and_sends_nothing_twice(server, tmp_path):
    from mlflow.tracking import MlflowClient

    (tmp_path / "ckpt").write_bytes(b"weights-1")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "x.txt").write_text("x")
    spool = tmp_path / "spool"

    online = MLflowTracker(
        uri=server.uri, experiment="outage", run_name="through", spool=spool_settings(spool), flush_every_n=10**6
    )
    assert not online.run_id.startswith("local-") and online.mlflow_run_id == online.run_id
    online.log_params({"optim": {"lr": 0.1}, "seed": 0})
    online.log_text("before the outage", "notes/before.txt")
    log_steps(online, range(0, 30))
    wait_sent(online)

    server.stop()
    late = MLflowTracker(
        uri=server.uri, experiment="outage", run_name="started-down", spool=spool_settings(spool), flush_every_n=10**6
    )
    assert late.run_id.startswith("local-") and late.mlflow_run_id is None
    late.log_params({"optim": {"lr": 0.2}})
    worst = log_steps(online, range(30, 60))
    worst = max(worst, log_steps(late, range(0, 30)))
    online.log_artifact(tmp_path / "ckpt", "checkpoints")
    (tmp_path / "ckpt").write_bytes(b"weights-2")  # overwritten after logging: the store must get weights-1
    online.log_artifact(tmp_path / "tree")
    late.log_text("logged while the server was down", "notes/during.txt")
    online.set_tags({"phase": "outage"})
    assert worst < 0.5, f"a flush stalled {worst:.3f} s while the server was down"
    assert online._spool.journal.pending_count() > 0 and late._spool.journal.pending_count() > 0

    server.start()  # the runs go on while it boots, then send their backlog once it answers
    worst = max(log_steps(online, range(60, 80)), log_steps(late, range(30, 50)))
    assert worst < 0.5, f"a flush stalled {worst:.3f} s while the server was starting"
    server.wait_healthy()
    log_steps(online, range(80, 100))
    log_steps(late, range(50, 60))
    online.finish()
    late.finish()

    assert online._spool.journal.pending_count() == 0 and late._spool.journal.pending_count() == 0
    client = MlflowClient(tracking_uri=server.uri)
    check_run(
        client,
        online.run_id,
        range(100),
        {"notes/before.txt", "checkpoints/ckpt", "tree/sub/x.txt"},
        {"optim.lr": "0.1", "seed": "0"},
    )
    assert client.get_run(online.run_id).data.tags["phase"] == "outage"
    path = client.download_artifacts(online.run_id, "checkpoints/ckpt", str(tmp_path / "dl"))
    assert Path(path).read_bytes() == b"weights-1"
    late_id = late.mlflow_run_id
    assert late_id is not None and late_id != late.run_id
    check_run(client, late_id, range(60), {"notes/during.txt"}, {"optim.lr": "0.2"})
    stored = client.get_run(late_id)
    records, _ = peek(late.spool_dir)
    assert stored.info.start_time == records[0]["start_time"] and stored.info.run_name == "started-down"
    assert stored.data.tags["labkit.spool_key"] == late.run_id
    names = [r.info.run_name for r in client.search_runs([stored.info.experiment_id])]
    assert sorted(names) == ["started-down", "through"]  # no run created twice


def test_offline_run_then_labkit_sync_to_the_server(server, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from labkit.cli.sync import main as sync_main

    spool = tmp_path / "spool"
    tracker = MLflowTracker(
        uri=server.uri, experiment="offline", run_name="offline", spool={"offline": True, "dir": str(spool)}
    )
    tracker.log_params({"optim": {"lr": 0.3}})
    log_steps(tracker, range(40))
    (tmp_path / "model.bin").write_bytes(b"m")
    tracker.log_artifact(tmp_path / "model.bin", "model")
    tracker.finish()
    assert tracker.mlflow_run_id is None  # offline: nothing was sent

    assert sync_main(["--spool", str(spool)]) == 0
    out = capsys.readouterr().out
    assert tracker.run_id in out and "8 metric batches (80 values)" in out and "end FINISHED" in out
    run_id = peek(tracker.spool_dir)[1]["run_id"]
    client = MlflowClient(tracking_uri=server.uri)
    check_run(client, run_id, range(40), {"model/model.bin"}, {"optim.lr": "0.3"})
    assert sync_main(["--spool", str(spool)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert len(client.get_metric_history(run_id, "train/loss")) == 40
