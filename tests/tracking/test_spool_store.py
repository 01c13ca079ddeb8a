"""Spooled trackers and ``labkit sync`` against a local SQLite store: in-doubt create, crash, resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from labkit.tracking.sender import SendError, send_pending
from labkit.tracking.spool import Journal, new_key, peek

pytestmark = pytest.mark.slow

CREATE = {"op": "create", "uri": "sqlite:////nowhere.db", "experiment": "e", "run_name": "r", "tags": {}}


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory):
    from labkit.tracking.store import make_client

    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    make_client(uri)  # the schema, once
    return uri


def test_in_doubt_create_finds_the_run_instead_of_making_another(tmp_path, sqlite_uri):
    from labkit.tracking.store import make_client

    client = make_client(sqlite_uri)
    real = client.create_run

    def create_then_lose_answer(*args, **kwargs):
        real(*args, **kwargs)
        raise TimeoutError("read timed out")

    journal = Journal.create(tmp_path, new_key(), {**CREATE, "experiment": "doubt", "start_time": 1234})
    client.create_run = create_then_lose_answer
    with pytest.raises(SendError):
        send_pending(journal, client)
    client.create_run = real
    send_pending(journal, client, in_doubt=True)
    runs = client.search_runs([client.get_experiment_by_name("doubt").experiment_id])
    assert [r.info.run_id for r in runs] == [journal.run_id]
    assert runs[0].info.start_time == 1234 and runs[0].data.tags["labkit.spool_key"] == journal.key


CRASH = """
import os, sys
from labkit.tracking.mlflow_tracker import MLflowTracker
tracker = MLflowTracker(uri=sys.argv[1], experiment="crash", spool={"offline": True, "dir": sys.argv[2]})
tracker.log_params({"lr": 0.5})
for step in range(30):
    tracker.log_metrics({"m": float(step)}, step)
    if step % 10 == 9:
        tracker.flush()
print(tracker.run_id, flush=True)
os._exit(3)  # killed: no finish, no atexit
"""


def test_crashed_offline_run_keeps_what_it_flushed_and_sync_ends_it_killed(tmp_path, sqlite_uri, capsys):
    from labkit.cli.sync import main as sync_main
    from labkit.tracking.store import make_client

    spool = tmp_path / "spool"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), sqlite_uri, str(spool)], capture_output=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]
    key = proc.stdout.decode().split()[0]
    assert sync_main(["--spool", str(spool)]) == 0
    out = capsys.readouterr().out
    assert "ended KILLED" in out and key in out
    run_id = json.loads((spool / key / "acked.json").read_text())["run_id"]
    client = make_client(sqlite_uri)
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.params == {"lr": "0.5"}
    assert sorted(m.step for m in client.get_metric_history(run_id, "m")) == list(range(30))


def test_resumed_offline_run_continues_its_spool(tmp_path, sqlite_uri, capsys):
    from labkit.cli.sync import main as sync_main
    from labkit.tracking.mlflow_tracker import MLflowTracker
    from labkit.tracking.store import make_client

    spool = {"offline": True, "dir": str(tmp_path)}
    first = MLflowTracker(uri=sqlite_uri, experiment="resume", run_name="r", spool=spool)
    first.log_params({"lr": 0.1})
    for step in range(5):
        first.log_metrics({"m": float(step)}, step)
    first.finish("KILLED")
    with pytest.raises(RuntimeError, match="has finished"):
        first.set_tags({"late": "x"})

    again = MLflowTracker(uri=sqlite_uri, run_id=first.run_id, spool=spool)
    assert again.run_id == first.run_id and again.run_name == "r"
    again.log_params({"lr": 0.1})  # the same value: fine
    with pytest.raises(ValueError, match=r"param 'lr'.*expected '0.1', got '0.2'"):
        again.log_params({"lr": 0.2})
    for step in range(5, 10):
        again.log_metrics({"m": float(step)}, step)
    again.finish()
    with pytest.raises(ValueError, match="no spool for run 'local-nope'"):
        MLflowTracker(uri=sqlite_uri, run_id="local-nope", spool=spool)

    assert sync_main(["--spool", str(tmp_path)]) == 0
    assert "1 resume" in capsys.readouterr().out
    run_id = peek(again.spool_dir)[1]["run_id"]
    client = make_client(sqlite_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["labkit.resumed"] == "true"
    assert sorted(m.step for m in client.get_metric_history(run_id, "m")) == list(range(10))
