"""Stopping a sweep: SIGTERM (or Ctrl-C) to ``labkit train -m`` stops every trial cleanly, starts no new one,
and ends the parent run KILLED with the trials table, in-process and with worker processes (joblib)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labkit.runner.sweep_stop import STOP_FILE, SweepStop, stop_requested
from tests.runner.helpers import TOY, AllowToyTargets

REPO = Path(__file__).resolve().parents[2]


def test_stop_file_records_the_signal_and_is_seen(tmp_path):
    assert stop_requested(tmp_path) is None and stop_requested(None) is None
    stop = SweepStop(tmp_path)
    stop.record(signal.SIGTERM)
    assert stop_requested(tmp_path) == "SIGTERM" and (tmp_path / STOP_FILE).read_text().strip() == "SIGTERM"
    stop.record(signal.SIGINT)  # the first signal is the one kept
    assert stop_requested(tmp_path) == "SIGTERM"


def test_handler_passes_the_signal_to_worker_processes_then_lets_them_finish(tmp_path, monkeypatch):
    class Worker:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("labkit.runner.sweep_stop.os.kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr("labkit.runner.sweep_stop.multiprocessing.active_children", lambda: [Worker(11), Worker(12)])
    stop = SweepStop(tmp_path)
    stop.handle(signal.SIGTERM, None)  # workers: forwarded, no exception here (the launcher collects their ends)
    assert sent == [(11, signal.SIGTERM), (12, signal.SIGTERM)] and stop.signal_name == "SIGTERM"
    with pytest.raises(KeyboardInterrupt):  # a second signal does not wait any longer
        stop.handle(signal.SIGTERM, None)


def test_handler_of_an_in_process_launcher_interrupts_even_with_child_processes(tmp_path, monkeypatch):
    class LoaderWorker:
        pid = 21

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("labkit.runner.sweep_stop.os.kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr("labkit.runner.sweep_stop.multiprocessing.active_children", lambda: [LoaderWorker()])
    stop = SweepStop(tmp_path, in_process=True)  # the trial runs here; its data workers are not trials
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGTERM, None)
    assert sent == [(21, signal.SIGTERM)] and stop_requested(tmp_path) == "SIGTERM"


def test_handler_without_workers_interrupts_the_trial_in_this_process(tmp_path, monkeypatch):
    monkeypatch.setattr("labkit.runner.sweep_stop.multiprocessing.active_children", lambda: [])
    stop = SweepStop(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGINT, None)
    assert stop_requested(tmp_path) == "SIGINT"


def test_install_and_restore_the_previous_handlers(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    stop = SweepStop(tmp_path)
    stop.install()
    assert signal.getsignal(signal.SIGTERM) == stop.handle and signal.getsignal(signal.SIGINT) == stop.handle
    stop.restore()
    assert signal.getsignal(signal.SIGTERM) == before


def _children_of(pid: int) -> list[Any]:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "sequential"])
def test_sigterm_stops_a_sweep_cleanly(tmp_path, launcher):
    psutil = pytest.importorskip("psutil")
    if launcher == "parallel":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from labkit.tracking.store import make_client

    store = tmp_path / "mlflow.db"
    sweep_dir = tmp_path / "multirun" / "stop"
    args = [
        *TOY,
        f"hydra/launcher={launcher}",
        "tracking=mlflow",
        f"tracking.uri=sqlite:///{store}",
        "tracking.experiment=stop",
        f"+hydra.callbacks.allow_toy._target_={AllowToyTargets.__module__}.AllowToyTargets",
        f"hydra.sweep.dir={sweep_dir}",
        "data.n=4000",
        "trainer.max_epochs=100000",  # the trials run until they are stopped
        "trainer.log_model=false",
        "optimized_metric=val/accuracy",
        "optim.lr=0.001,0.002,0.003,0.004,0.005",
        "--multirun",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "train", *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    running = 2 if launcher == "parallel" else 1
    checkpoints = tmp_path / "checkpoints" / "stop"
    deadline = time.monotonic() + 120
    while len(list(checkpoints.glob("*/last*"))) < running:  # every running trial has checkpointed once
        assert proc.poll() is None, (tmp_path / "out.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, (tmp_path / "out.txt").read_text()[-3000:]
        time.sleep(0.2)
    workers = _children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
        log.close()
    output = (tmp_path / "out.txt").read_text()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert "sweep stopped (SIGTERM)" in output, output[-3000:]
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"worker processes left running: {alive}"

    client = make_client(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("stop").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "KILLED" and parent.data.tags["labkit.sweep.stopped_by"] == "SIGTERM"
    assert len(children) == running  # the queued trials never started
    for child in children:  # stopped at a step boundary, with a final checkpoint: resumable
        assert child.info.status == "KILLED", child.data.tags.get("labkit.error")
    assert (sweep_dir / "trials.csv").is_file()
    assert "sweep/trials.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
