"""A real PostgreSQL cluster and MLflow server on loopback, started through ``labkit server --postgres``.

Used by tests/tracking/test_team_server.py as a module-scoped fixture (it takes 20-60 s to be healthy)::

    @pytest.fixture(scope="module")
    def team(tmp_path_factory):
        with team_server(tmp_path_factory) as server:
            yield server

PostgreSQL must be installed: without it the tests FAIL (not skip) with the command that installs
it, because CI (.ci/run) installs it and a silent skip would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.tracking.server import DRIVER_HINT, PostgresCluster, PostgresNotFoundError, find_postgres_bin, free_port

REPO = Path(__file__).resolve().parents[2]
READY_LINE = "MLflow tracking server on "


def require_postgres() -> Path:
    """The PostgreSQL bin folder, or a test failure that says how to install PostgreSQL and psycopg2."""
    try:
        bin_dir = find_postgres_bin()
    except PostgresNotFoundError as exc:
        pytest.fail(f"{exc}. CI installs it in .ci/run; the team-tracking tests need a real PostgreSQL", pytrace=False)
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail(f"psycopg2 is missing: {DRIVER_HINT}", pytrace=False)
    return bin_dir


@dataclass
class TeamServer:
    """What the fixture started: ``labkit server`` (``process``) with its cluster folder and artifact store."""

    uri: str
    root: Path
    cluster_dir: Path
    artifacts: Path
    process: subprocess.Popen[str]
    log: Path

    def cluster(self, database: str | None = None) -> PostgresCluster:
        """The running cluster (to open another database on it, or to check it stopped)."""
        return PostgresCluster(self.cluster_dir, database=database)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM to ``labkit server`` (it stops mlflow and PostgreSQL itself); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own group: the server's children too
                self.process.wait()
        return int(self.process.returncode)


def _reachable_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the ``postgres`` user can enter when the tests run as root (pytest's tmp is 0700 root)."""
    if os.geteuid() != 0:
        return Path(tmp_path_factory.mktemp("team"))
    root = Path(tempfile.mkdtemp(prefix="labkit-team-"))
    root.chmod(0o711)
    return root


@contextmanager
def team_server(tmp_path_factory: pytest.TempPathFactory, timeout: float = 300.0) -> Iterator[TeamServer]:
    """Start ``labkit server --postgres ROOT/pg`` on 127.0.0.1:<free port>; stop it and clean up afterwards."""
    require_postgres()
    root = _reachable_root(tmp_path_factory)
    port = free_port()
    command = [sys.executable, "-m", "labkit", "server", "--postgres", str(root / "pg"), "--port", str(port)]
    command += ["--artifacts-destination", str(root / "artifacts"), "--workers", "2", "--timeout", str(timeout)]
    log = root / "labkit-server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=root, start_new_session=True
        )
    server = TeamServer(f"http://127.0.0.1:{port}", root, root / "pg", root / "artifacts", process, log)
    try:
        deadline = time.monotonic() + timeout + 60
        while READY_LINE not in server.output():
            if process.poll() is not None:
                pytest.fail(f"labkit server exited with {process.returncode}:\n{server.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"labkit server not ready in {timeout + 60:.0f} s:\n{server.output()[-4000:]}")
            time.sleep(0.3)
        yield server
    finally:
        server.stop()
        cluster = PostgresCluster(server.cluster_dir)
        if cluster.initialised and cluster.running():  # labkit server failed to stop it: do it, then complain
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
