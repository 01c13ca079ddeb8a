"""``labkit runs`` on a store the test builds (nested sweep runs), ``labkit ui``'s command and checks."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from labkit.cli import runs as runs_cli
from labkit.cli import ui as ui_cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from labkit.tracking.mlflow_tracker import MLflowTracker

    root = tmp_path_factory.mktemp("runs")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    solo = MLflowTracker(uri=uri, experiment="other", run_name="solo")
    solo.log_params({"optim": {"lr": 0.5}})
    solo.log_metrics({"train/loss": 2.0}, 0)
    solo.finish()
    parent = MLflowTracker(uri=uri, experiment="digits", run_name="sweep-1")
    for lr, acc, status in ((0.1, 0.91, "FINISHED"), (0.01, 0.95, "FINISHED"), (1.0, 0.1, "FAILED")):
        child = MLflowTracker(uri=uri, experiment="digits", run_name=f"optim.lr={lr}", parent_run_id=parent.run_id)
        child.log_params({"optim": {"lr": lr, "_target_": "labkit.optim.SGD"}, "seed": 0})
        child.log_metrics({"train/loss": 1 - acc, "val/accuracy": acc}, 10)
        child.finish(status)
    parent.finish()
    return uri


def lines_of(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_runs_table_nests_children_under_parent(store, capsys):
    assert runs_cli.main_runs(["--tracking-uri", store, "--experiment", "digits"]) == 0
    out = lines_of(capsys)
    header = out[0].split()
    assert header[:4] == ["status", "run", "start", "duration"]
    assert "optim.lr" in header and "val/accuracy" in header  # a varying param, a val/ metric
    assert "seed" not in header and "optim._target_" not in header  # constant ones are left out
    body = out[2:]
    assert len(body) == 4 and "sweep-1" in body[0] and body[0].startswith("FINISHED")
    assert all(("└─ optim.lr=" in line or "- optim.lr=" in line) for line in body[1:])
    failed = next(line for line in body if "optim.lr=1.0" in line)
    assert failed.startswith("FAILED") and "0.1" in failed


def test_runs_sort_and_columns(store, capsys):
    assert runs_cli.main_runs(["--tracking-uri", store, "--experiment", "digits", "--sort", "val/accuracy"]) == 0
    body = lines_of(capsys)[3:]
    assert [line.split("optim.lr=")[1].split()[0] for line in body] == ["0.01", "0.1", "1.0"]  # best first
    assert runs_cli.main_runs(["--tracking-uri", store, "--sort", "val/accuracy:asc", "--columns", "seed"]) == 0
    out = lines_of(capsys)
    assert out[0].split()[-1] == "seed" and "experiment" in out[0].split()  # two experiments listed
    children = [line for line in out if "optim.lr=" in line]
    assert [line.split("optim.lr=")[1].split()[0] for line in children] == ["1.0", "0.1", "0.01"]
    assert any("solo" in line for line in out)


def test_runs_limit(store, capsys):
    assert runs_cli.main_runs(["--tracking-uri", store, "--limit", "1"]) == 0
    assert len(lines_of(capsys)) == 3


def test_runs_errors(store, tmp_path, capsys):
    assert runs_cli.main_runs(["--tracking-uri", store, "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no experiment named 'nope'" in err and "'digits'" in err
    assert runs_cli.main_runs(["--tracking-uri", f"sqlite:///{tmp_path}/absent.db"]) == 1
    assert "no MLflow store at" in capsys.readouterr().out
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(SystemExit):
        runs_cli.main_runs(["--sort", "val/acc:up"])


def test_parse_sort_directions():
    assert runs_cli.parse_sort("val/loss")[1][0] == "metrics.`val/loss` ASC"
    assert runs_cli.parse_sort("val/accuracy")[1][0] == "metrics.`val/accuracy` DESC"
    assert runs_cli.parse_sort("params.optim.lr:asc")[1][0] == "params.`optim.lr` ASC"
    assert runs_cli.parse_sort(None)[1] == ["attributes.start_time DESC"]


def test_ui_command_uses_absolute_store_and_loopback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert ui_cli.main_ui(["--print-command", "--port", "5123"]) == 0
    command = capsys.readouterr().out.split()
    db = tmp_path.resolve() / "mlflow.db"
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{db}"
    assert command[command.index("--artifacts-destination") + 1] == str(tmp_path.resolve() / "mlruns")
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "5123"


def test_ui_refuses_busy_port_and_prints_url(tmp_path, monkeypatch, capsys):
    started = []

    class FakeServer:  # stands in for the mlflow server process
        pid = -1

        def __init__(self, cmd, start_new_session):
            started.append(cmd)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert ui_cli.main_ui(["--tracking-uri", str(tmp_path / "m.db"), "--port", str(port)]) == 1
        assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().out
    assert started == []
    assert ui_cli.main_ui(["--tracking-uri", str(tmp_path / "m.db"), "--port", str(port)]) == 0
    assert f"http://127.0.0.1:{port}" in capsys.readouterr().out and len(started) == 1
    with pytest.raises(SystemExit):
        ui_cli.main_ui(["--port", "70000"])


def test_help_does_not_import_mlflow():
    code = (
        "import sys; from labkit.cli.runs import build_parser; from labkit.cli.ui import build_parser as b2; "
        "import labkit.tracking.mlflow_tracker, labkit.tracking.params; print('mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_ui_sigterm_stops_the_server_it_started(tmp_path):
    """SIGTERM to `labkit ui` must not leave the mlflow server (and its port) behind."""
    import os
    import signal
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "ui", "--tracking-uri", str(tmp_path / "m.db"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ui_cli.port_is_free("127.0.0.1", port):
        time.sleep(0.5)
    assert not ui_cli.port_is_free("127.0.0.1", port), "the server never started listening"
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not ui_cli.port_is_free("127.0.0.1", port):
        time.sleep(0.5)
    assert ui_cli.port_is_free("127.0.0.1", port), "the mlflow server kept running after SIGTERM"
