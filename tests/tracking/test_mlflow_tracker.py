"""MLflowTracker against a temporary SQLite store: params, batched metrics, artifacts, tags, status, resume."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from labkit.tracking import Tracker
from labkit.tracking.mlflow_tracker import MLflowTracker, record_failure
from labkit.tracking.store import ensure_experiment, make_client, resolve_tracking_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating the schema costs about a second)."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root


def new_tracker(store, **kwargs) -> MLflowTracker:
    uri, _ = store
    kwargs.setdefault("experiment", f"exp-{uuid.uuid4().hex[:6]}")
    return MLflowTracker(uri=uri, **kwargs)


def test_resolve_tracking_uri_is_absolute(tmp_path):
    assert resolve_tracking_uri(None, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolve_tracking_uri("sqlite:///sub/x.db", cwd=tmp_path) == f"sqlite:///{tmp_path.resolve() / 'sub/x.db'}"
    assert resolve_tracking_uri("runs.db", cwd=tmp_path) == f"sqlite:///{tmp_path.resolve() / 'runs.db'}"
    assert resolve_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("http://host:5000") == "http://host:5000"


def test_default_store_in_cwd_with_artifacts_in_mlruns(store, tmp_path, monkeypatch):
    make_client(store[0])  # the module's store has its schema: copying it saves a second migration
    shutil.copy(store[1] / "mlflow.db", tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    tracker = MLflowTracker(run_name="here")
    tracker.log_text("hi", "a.txt")
    tracker.finish()
    assert tracker.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert (tmp_path / "mlflow.db").is_file()
    assert tracker.artifact_uri.startswith((tmp_path / "mlruns").resolve().as_uri())
    assert list((tmp_path / "mlruns").rglob("a.txt"))


def test_implements_tracker_protocol(store):
    tracker = new_tracker(store)
    assert isinstance(tracker, Tracker)
    tracker.finish()


def test_params_metrics_tags_all_present(store):
    tracker = new_tracker(store, run_name="full", tags={"labkit.device": "cpu"}, flush_every_n=250)
    sent = []
    real = tracker.client.log_batch

    def spy(run_id, metrics=(), params=(), tags=(), **kw):
        sent.append((len(metrics), len(params), len(tags)))
        return real(run_id, metrics=metrics, params=params, tags=tags, **kw)

    tracker.client.log_batch = spy
    params = {f"p{i}": i for i in range(150)}
    tracker.log_params({"optim": {"lr": 0.01}, **params})
    for step in range(1200):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "train/lr": 0.1, "epoch": step // 100}, step)
    tracker.finish()

    assert all(m <= 1000 and p <= 100 and t <= 100 for m, p, t in sent)
    assert sum(m for m, _, _ in sent) == 3600
    assert sum(p for _, p, _ in sent) == 151 and [p for _, p, _ in sent if p] == [100, 51]
    client = tracker.client
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "full"
    assert run.data.params["optim.lr"] == "0.01" and run.data.params["p149"] == "149"
    history = client.get_metric_history(tracker.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1200))
    assert {m.step: m.value for m in history}[9] == pytest.approx(0.1)
    assert run.data.tags["labkit.device"] == "cpu"
    assert {"labkit.version", "labkit.command", "labkit.host", "mlflow.source.name"} <= set(run.data.tags)


def test_time_based_flush(store):
    tracker = new_tracker(store, flush_every_s=0.5, flush_every_n=10**6)
    tracker.flush()  # restart the clock: creating the run may have taken longer than the interval
    tracker.log_metrics({"a": 1.0}, 0)
    assert tracker.client.get_metric_history(tracker.run_id, "a") == []  # buffered
    time.sleep(0.55)
    tracker.log_metrics({"a": 2.0}, 1)
    assert len(tracker.client.get_metric_history(tracker.run_id, "a")) == 2
    tracker.finish()


def test_non_numeric_metric_names_the_key(store):
    tracker = new_tracker(store)
    with pytest.raises(TypeError, match="'val/acc' expected a number"):
        tracker.log_metrics({"val/acc": "high"}, 0)
    tracker.finish()


def test_artifacts_text_figure_yaml(store, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracker = new_tracker(store)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner.txt").write_text("x")
    tracker.log_artifact(tmp_path / "notes.txt")
    tracker.log_artifact(tmp_path / "notes.txt", "sub")
    tracker.log_artifact(tmp_path / "dir")
    tracker.log_text("some text", "texts/t.txt")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    tracker.log_figure(fig, "plots/curve.png")
    plt.close(fig)
    tracker.log_dict_yaml({"b": 1, "a": [1, 2]}, "config.yaml")
    with pytest.raises(FileNotFoundError, match="expected an existing file"):
        tracker.log_artifact(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="matplotlib Figure"):
        tracker.log_figure(object(), "x.png")
    tracker.finish()

    local = tracker.client.download_artifacts(tracker.run_id, "", str(tmp_path / "dl"))
    from pathlib import Path

    root = Path(local)
    assert (root / "notes.txt").read_text() == "hello" and (root / "sub" / "notes.txt").is_file()
    assert (root / "dir" / "inner.txt").read_text() == "x"
    assert (root / "texts" / "t.txt").read_text() == "some text"
    assert (root / "plots" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "config.yaml").read_text() == "b: 1\na:\n- 1\n- 2\n"


@pytest.mark.parametrize(
    "error, status", [(None, "FINISHED"), (RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_context_manager_status(store, error, status):
    tracker = new_tracker(store)
    with pytest.raises(type(error)) if error is not None else contextlib.nullcontext():
        with tracker:
            tracker.log_metrics({"m": 1.0}, 0)
            if error is not None:
                raise error
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == status
    assert len(tracker.client.get_metric_history(tracker.run_id, "m")) == 1  # flushed on the way out


def test_finish_validates_and_is_idempotent(store):
    tracker = new_tracker(store)
    with pytest.raises(ValueError, match="expected status in"):
        tracker.finish("DONE")
    tracker.finish("KILLED")
    tracker.finish("FINISHED")  # no effect
    assert tracker.client.get_run(tracker.run_id).info.status == "KILLED"


def test_record_failure_tags_and_error_text(store, tmp_path):
    tracker = new_tracker(store)
    try:
        raise ValueError("bad lr")
    except ValueError as exc:
        record_failure(tracker, exc)
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["labkit.error"] == "bad lr" and run.data.tags["labkit.error_type"] == "ValueError"
    text = open(tracker.client.download_artifacts(tracker.run_id, "error.txt", str(tmp_path))).read()
    assert "ValueError: bad lr" in text and "Traceback" in text


def test_resume_appends_metrics_and_keeps_params(store):
    first = new_tracker(store, run_name="resumable")
    first.log_params({"optim": {"lr": 0.1}, "seed": 0})
    for step in range(5):
        first.log_metrics({"train/loss": float(step)}, step)
    first.finish("KILLED")

    again = MLflowTracker(uri=store[0], run_id=first.run_id)
    assert again.run_name == "resumable"
    assert again.client.get_run(first.run_id).info.status == "RUNNING"
    again.log_params({"optim": {"lr": 0.1}, "seed": 0})  # same values: fine
    with pytest.raises(ValueError, match=r"param 'optim.lr'.*expected '0.1', got '0.2'"):
        again.log_params({"optim": {"lr": 0.2}})
    for step in range(5, 10):
        again.log_metrics({"train/loss": float(step)}, step)
    again.finish()

    run = again.client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["labkit.resumed"] == "true"
    steps = [m.step for m in again.client.get_metric_history(first.run_id, "train/loss")]
    assert sorted(steps) == list(range(10))


def test_resume_unknown_run_names_it(store):
    with pytest.raises(ValueError, match="no run with run_id 'nope'"):
        MLflowTracker(uri=store[0], run_id="nope")


def test_nested_run_has_parent_tag(store):
    parent = new_tracker(store, experiment="nest")
    child = new_tracker(store, experiment="nest", parent_run_id=parent.run_id)
    assert child.client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    child.finish()
    parent.finish()


def test_experiment_creation_race_rereads(store, monkeypatch):
    client = make_client(store[0])
    name = f"race-{uuid.uuid4().hex[:6]}"
    winner = ensure_experiment(client, name)
    real = client.get_experiment_by_name
    calls = []

    def stale_then_real(n):  # another process created it between our read and our create
        calls.append(n)
        return None if len(calls) == 1 else real(n)

    monkeypatch.setattr(client, "get_experiment_by_name", stale_then_real)
    assert ensure_experiment(client, name) == winner and len(calls) == 2


def test_unreachable_http_uri_fails_fast_naming_it():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"{uri} is not reachable"):
        MLflowTracker(uri=uri)
    assert time.perf_counter() - start < 5.0


SCRIPT = """
import sys
from labkit.tracking.mlflow_tracker import MLflowTracker
tracker = MLflowTracker(uri=sys.argv[1], experiment="atexit", run_name=sys.argv[2])
print(tracker.run_id, flush=True)
tracker.log_metrics({"m": 1.0}, 0)
if sys.argv[2] == "raises":
    raise RuntimeError("crash before finish")
sys.exit(0)
"""


def test_process_exit_never_leaves_run_running(tmp_path):
    """A script that raises ends FAILED, one that exits without finish() ends KILLED (atexit).

    Both start at once on a new store, so they also race to create its schema and experiment.
    """
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    procs = {
        how: subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SCRIPT), uri, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for how in ("raises", "exits")
    }
    client = make_client(uri)
    for how, expected in (("raises", "FAILED"), ("exits", "KILLED")):
        out, err = procs[how].communicate(timeout=60)
        run_id = out.decode().split()[0]
        run = client.get_run(run_id)
        assert run.info.status == expected, err.decode()[-2000:]
        assert len(client.get_metric_history(run_id, "m")) == 1
