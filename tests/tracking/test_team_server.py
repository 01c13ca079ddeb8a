"""Team tracking: ``labkit server --postgres`` (a real PostgreSQL + ``mlflow server`` on loopback), a sweep with
parallel trials against it, concurrent experiment creation, and parallel trials on one store (server and SQLite).

The slow tests share one server (``team``, started once for the module: 20-60 s). Without PostgreSQL
installed they fail, saying how to install it (see tests/tracking/postgres_fixture.py).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import pytest

from labkit.cli.server import main as server_main
from labkit.tracking.server import (
    MlflowServer,
    PostgresCluster,
    PostgresNotFoundError,
    find_postgres_bin,
    is_loopback,
    is_postgres_uri,
    postgres_uri,
    redact_uri,
)
from tests.tracking.postgres_fixture import REPO, team_server

# ---- without a server ------------------------------------------------------------------------


def test_missing_postgres_names_the_install_command(tmp_path):
    with pytest.raises(PostgresNotFoundError, match=r"apt-get install postgresql") as info:
        find_postgres_bin([tmp_path / "nope"])
    assert str(tmp_path / "nope") in str(info.value)
    for version in ("13", "16", "9"):  # the newest usable install wins; one without pg_ctl does not count
        folder = tmp_path / "postgresql" / version / "bin"
        folder.mkdir(parents=True)
        (folder / "initdb").touch()
        (folder / "pg_ctl").touch()
    broken = tmp_path / "postgresql" / "17" / "bin"
    broken.mkdir(parents=True)
    (broken / "initdb").touch()
    candidates = sorted((tmp_path / "postgresql").glob("*/bin"))
    assert find_postgres_bin(candidates) == tmp_path / "postgresql" / "16" / "bin"


def test_the_fixture_fails_with_the_install_command_when_postgres_is_missing(monkeypatch):
    from tests.tracking import postgres_fixture

    def missing():
        raise PostgresNotFoundError("PostgreSQL: expected initdb and pg_ctl in /nowhere, found none; install ...")

    monkeypatch.setattr(postgres_fixture, "find_postgres_bin", missing)
    with pytest.raises(pytest.fail.Exception, match=r"found none.*CI installs it in \.ci/run"):
        postgres_fixture.require_postgres()  # a failure, not a skip


def test_uri_helpers():
    uri = postgres_uri("lab user", "127.0.0.1", 5433, "ml/flow", password="p@ss:w/rd")
    assert uri == "postgresql+psycopg2://lab%20user:p%40ss%3Aw%2Frd@127.0.0.1:5433/ml%2Fflow"
    assert redact_uri(uri) == "postgresql+psycopg2://lab%20user:***@127.0.0.1:5433/ml%2Fflow"
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert postgres_uri("u", "::1", 5432, "db", driver="") == "postgresql://u@[::1]:5432/db"
    assert all(map(is_postgres_uri, ["postgresql://u@h/d", "postgresql+psycopg2://h/d", "postgres://h/d"]))
    assert not any(map(is_postgres_uri, ["sqlite:///a.db", "http://h", "postgresql.db", "mysql://h/d"]))
    with pytest.raises(ValueError, match=r"expected a port in 1\.\.65535, got 0"):
        postgres_uri("u", "h", 0, "d")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.1.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("mlflow.lab")


def test_server_command_keeps_the_store_uri_off_the_command_line(tmp_path):
    secret = postgres_uri("mlflow", "db.lab", 5432, "mlflow", password="hunter2")
    server = MlflowServer(secret, tmp_path / "art", port=5055, workers=3)
    command = server.command()
    assert command[1:4] == ["-m", "mlflow", "server"] and "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == str(tmp_path / "art")
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--workers") + 1] == "3"
    assert not any("hunter2" in part or "db.lab" in part for part in command)  # `ps` shows command lines to all
    assert MlflowServer(secret, "s3://bucket/x", host="0.0.0.0", port=80).uri == "http://127.0.0.1:80"
    with pytest.raises(ValueError, match=r"--port: expected a port in 1\.\.65535, got 70000"):
        MlflowServer(secret, tmp_path, port=70000)
    with pytest.raises(ValueError, match="--workers: expected at least 1, got 0"):
        MlflowServer(secret, tmp_path, workers=0)


def test_cluster_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    fake_bin = tmp_path / "bin"
    with pytest.raises(ValueError, match=r"--postgres .*: expected a new or empty folder.*\['notes.txt'\]"):
        PostgresCluster(tmp_path, bin_dir=fake_bin).init()
    with pytest.raises(RuntimeError, match="expected start\\(\\) first"):
        _ = PostgresCluster(tmp_path / "new", bin_dir=fake_bin).uri


def test_cli_mistakes_are_reported(tmp_path, capsys):
    for argv, expected in [
        (["--port", "0"], "--port: expected a port in 1..65535, got 0"),
        (["--backend-store-uri", "http://mlflow.lab:5000"], "--backend-store-uri: expected a database URI"),
        (["--postgres", str(tmp_path), "--backend-store-uri", "sqlite:///x.db"], "not allowed with argument"),
    ]:
        with pytest.raises(SystemExit) as info:
            server_main(argv)
        assert info.value.code == 2 and expected in capsys.readouterr().err


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_binding_beyond_loopback_warns_loudly(tmp_path, capsys):
    # a handler on the command's own logger: other tests in the same process (Hydra and MLflow runs)
    # reconfigure the root logger's handlers, which caplog relies on
    logger = logging.getLogger("labkit.cli.server")
    seen, level, disabled = _Records(), logger.level, logger.disabled
    logger.addHandler(seen)
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    try:
        with socket.socket() as busy:  # the port is taken: the command stops right after its checks
            busy.bind(("0.0.0.0", 0))
            busy.listen()
            port = busy.getsockname()[1]
            code = server_main(
                ["--backend-store-uri", f"sqlite:///{tmp_path}/m.db", "--host", "0.0.0.0", "--port", str(port)]
            )
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
        logger.disabled = disabled
    assert code == 1
    assert f"port {port} on 0.0.0.0 is in use; expected a free port" in capsys.readouterr().err
    (warning,) = [r for r in seen.records if r.levelno == logging.WARNING]
    assert "0.0.0.0" in warning.getMessage() and "no authentication" in warning.getMessage()


# ---- against a real PostgreSQL + mlflow server ---------------------------------------------------


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    with team_server(tmp_path_factory) as server:
        yield server


def _client(uri: str):
    from labkit.tracking.store import make_client

    return make_client(uri)


@pytest.mark.slow
def test_server_runs_on_postgres_with_served_artifacts(team, tmp_path):
    out = team.output()
    assert f"labkit train tracking=server tracking.uri={team.uri}" in out
    assert "postgresql+psycopg2://labkit@127.0.0.1:" in out and "password" in out and "***" not in out
    assert team.cluster().running()
    client = _client(team.uri)
    experiment = client.create_experiment("artifact-check")
    run = client.create_run(experiment)
    (tmp_path / "a.txt").write_text("artifact")
    client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"), "sub")
    assert client.get_experiment(experiment).artifact_location.startswith("mlflow-artifacts:")
    assert [p.read_text() for p in team.artifacts.rglob("a.txt")] == ["artifact"]  # stored by the server


@pytest.mark.slow
def test_sweep_with_parallel_trials_against_the_server(team, tmp_path):
    steps = 3
    command = [sys.executable, "-m", "labkit", "train", "-m", "hydra/launcher=parallel", "model=mlp", "tracking=server"]
    command += [f"tracking.uri={team.uri}", "tracking.experiment=team-sweep", f"trainer.max_steps={steps}"]
    command += ["trainer.log_every=1", "trainer.log_model=false", f"hydra.sweep.dir={tmp_path}/multirun"]
    command += ["optim.lr=0.001,0.01", "seed=0,1"]  # 4 trials, 2 at a time; run names stay under 250 characters
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not (tmp_path / "mlflow.db").exists() and (tmp_path / "checkpoints").is_dir()  # runs on the server

    client = _client(team.uri)
    runs = client.search_runs([client.get_experiment_by_name("team-sweep").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.tags["labkit.sweep.trials"] == "4"
    combos = sorted((c.data.params["optim.lr"], c.data.params["seed"]) for c in children)
    assert combos == [("0.001", "0"), ("0.001", "1"), ("0.01", "0"), ("0.01", "1")]
    for child in children:
        assert child.info.status == "FINISHED"
        name = child.info.run_name  # the overrides: each child holds its own trial's params
        assert f"optim.lr={child.data.params['optim.lr']}," in name and f"seed={child.data.params['seed']}," in name
        for key in ("train/loss", "train/lr"):
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, key)) == list(
                range(1, steps + 1)
            )
        for key in ("val/accuracy", "test/accuracy"):
            assert len(client.get_metric_history(child.info.run_id, key)) == 1
        files = {f.path for f in client.list_artifacts(child.info.run_id)}
        assert "config" in files or any(p.startswith("config") for p in files), files
    assert "sweep" in {f.path for f in client.list_artifacts(parent.info.run_id)}


@pytest.mark.slow
def test_run_names_longer_than_250_characters(team):
    from labkit.tracking.mlflow_tracker import MLflowTracker

    name = "model=mlp," + ",".join(f"trainer.option_{i}=value_{i}" for i in range(12)) + ",work_dir=/a/long/path"
    assert len(name) > 250
    tracker = MLflowTracker(uri=team.uri, experiment="long-names", run_name=name)
    tracker.finish()
    run = _client(team.uri).get_run(tracker.run_id)
    assert len(run.info.run_name) <= 250 and run.info.run_name[:100] == name[:100]


RACE = """
import json, sys, time
from pathlib import Path
from labkit.tracking.store import ensure_experiment, make_client

barrier, me, uris = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
ids = []
for round, uri in enumerate(uris):
    (barrier / f"{round}-{me}").touch()  # all processes start each round together
    while len(list(barrier.glob(f"{round}-*"))) < 4:
        time.sleep(0.002)
    ids.append(ensure_experiment(make_client(uri), "same-name"))
print(json.dumps(ids))
"""


@pytest.mark.slow
def test_concurrent_creation_of_one_experiment_is_safe(team, tmp_path, monkeypatch):
    """Four processes create the same experiment at once: on the server, directly on a fresh PostgreSQL
    database (MLflow's schema is created by the first client: labkit serialises it with an advisory lock)
    and on a fresh SQLite file (a file lock)."""
    fresh = team.cluster(database="race")
    fresh.create_database()
    for key, value in fresh.client_env().items():  # the direct PostgreSQL client reads the password from pgpass
        monkeypatch.setenv(key, value)
    uris = [team.uri, fresh.uri, f"sqlite:///{tmp_path}/race.db"]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(barrier), str(i), *uris],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0 and "IntegrityError" not in err, err[-3000:]
    ids = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(row == ids[0] for row in ids), ids  # every process got the same experiment in each store
    for uri in uris:
        names = [e.name for e in _client(uri).search_experiments()]
        assert names.count("same-name") == 1, (uri, names)


@pytest.mark.slow
def test_parallel_trials_on_one_store_never_lose_or_mix_runs(team, tmp_path):
    """The load test at test size (4 processes x 200 steps x 3 metrics), against the server and SQLite;
    every history is read back here too, independently of the script's own check."""
    processes, steps = 4, 200
    out = tmp_path / "load.json"
    command = [sys.executable, str(REPO / "benchmarks" / "tracking_server_load.py"), "--processes", str(processes)]
    command += ["--steps", str(steps), "--flush-every", "50", "--server-uri", team.uri, "--experiment", "load"]
    command += ["--json", str(out), "--sqlite-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = {row["store"]: row for row in json.loads(out.read_text())["results"]}
    assert set(results) == {"server", "sqlite"} and results["sqlite"]["uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    for row in results.values():
        assert row["exact"] and row["failed_trials"] == 0, row
        client = _client(row["uri"])
        runs = client.search_runs([client.get_experiment_by_name(f"load-{row['store']}").experiment_id])
        assert sorted(int(r.data.tags["load.trial"]) for r in runs) == list(range(processes))
        for run in runs:
            trial = int(run.data.tags["load.trial"])
            assert run.info.status == "FINISHED"
            for k, key in enumerate(("train/loss", "train/acc", "train/lr")):
                history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
                assert history == [(s, trial * 1e6 + s + k / 10) for s in range(steps)], (row["store"], trial, key)


@pytest.mark.slow
def test_sigterm_stops_the_server_and_postgres(team, monkeypatch):
    """Last in the module: labkit server, on SIGTERM, stops mlflow and the cluster and exits 0."""
    client = _client(team.uri)
    assert client.search_experiments()
    start = time.monotonic()
    assert team.stop() == 0, team.output()[-3000:]
    assert time.monotonic() - start < 60
    assert "labkit server: stopping" in team.output()
    assert not team.cluster().running()
    from labkit.tracking.store import is_reachable

    assert not is_reachable(team.uri, timeout=1.0)

    cluster = team.cluster()  # started again (as a second `labkit server --postgres DIR` would): same port, same data
    port = cluster.port
    try:
        assert cluster.start() == f"postgresql+psycopg2://labkit@127.0.0.1:{port}/mlflow"
        import psycopg2

        monkeypatch.setenv("PGPASSFILE", cluster.client_env()["PGPASSFILE"])
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="labkit", dbname="mlflow")
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT name FROM experiments WHERE name = %s", ("artifact-check",))
            assert cursor.fetchall() == [("artifact-check",)]
        connection.close()
    finally:
        cluster.stop()
    assert not cluster.running()
