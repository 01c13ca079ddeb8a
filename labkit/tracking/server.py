"""A local MLflow tracking server, optionally on a private PostgreSQL cluster, for a team or for trying one out.

    cluster = PostgresCluster("/srv/labkit-pg")          # initdb on first use, then pg_ctl start
    cluster.start()                                      # 127.0.0.1:<free port>, database "mlflow"
    server = MlflowServer(cluster.uri, "/srv/labkit-pg/artifacts", env=cluster.client_env())
    server.start(); server.wait_healthy()
    ...                                                  # labkit train tracking=server tracking.uri=<server.uri>
    server.stop(); cluster.stop()

``labkit server`` (labkit/cli/server.py) is the command around these. mlflow itself is never
imported here: the server runs as ``python -m mlflow server`` in its own process group.

The PostgreSQL side lives in postgres.py.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from labkit.tracking.postgres import (  # noqa: F401  (re-exported: the server's public helpers)
    CLUSTER_FILE,
    DRIVER_HINT,
    INSTALL_HINT,
    PostgresCluster,
    PostgresNotFoundError,
    _environ,
    check_postgres_driver,
    find_postgres_bin,
    free_port,
    is_loopback,
    is_postgres_uri,
    port_is_free,
    postgres_uri,
    redact_uri,
)

log = logging.getLogger(__name__)


def wait_healthy(uri: str, timeout_s: float = 180.0, process: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``<uri>/health`` until it answers 200; the seconds waited.

    Raises:
        RuntimeError: ``process`` exited first, or no answer within ``timeout_s``.
    """
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=2.0) as answer:
                if answer.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode} before {uri} was healthy")
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"mlflow server at {uri}: expected /health to answer within {timeout_s:g} s, it did not")
        time.sleep(0.3)


class MlflowServer:
    """``python -m mlflow server`` with proxied artifacts (``--serve-artifacts``) in its own process group.

    The backend URI travels in ``MLFLOW_BACKEND_STORE_URI``, not on the command line (``ps`` shows
    command lines to every user of the machine).

    Args:
        backend_store_uri: ``postgresql+psycopg2://...`` or an absolute ``sqlite:///...``.
        artifacts_destination: where the server keeps artifacts (a folder, or s3://... etc.).
        host, port: where it listens (127.0.0.1 by default: this machine only).
        workers: uvicorn worker processes.
        env: extra environment for the server (``PGPASSFILE``).
        log_path: the server's stdout/stderr go here (None: inherit the terminal).
    """

    def __init__(
        self,
        backend_store_uri: str,
        artifacts_destination: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 5000,
        workers: int = 4,
        env: dict[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0 < int(port) < 65536:
            raise ValueError(f"--port: expected a port in 1..65535, got {port}")
        if int(workers) < 1:
            raise ValueError(f"--workers: expected at least 1, got {workers}")
        destination = str(artifacts_destination)
        if "://" not in destination:
            destination = str(Path(destination).expanduser().resolve())
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = destination
        self.host, self.port, self.workers = host, int(port), int(workers)
        self.env = dict(env or {})
        self.log_path = None if log_path is None else Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI clients use: ``http://host:port`` (``127.0.0.1`` for a wildcard bind)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts"]
        command += ["--artifacts-destination", self.artifacts_destination]
        return [*command, "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]

    def start(self) -> None:
        check_postgres_driver(self.backend_store_uri)
        if not port_is_free(self.host, self.port):
            raise ValueError(f"--port: port {self.port} on {self.host} is in use; expected a free port")
        if "://" not in self.artifacts_destination:
            Path(self.artifacts_destination).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri}
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no GenAI job runner: starts faster
        out = None if self.log_path is None else open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
            )
        finally:
            if out is not None:
                out.close()
        log.info("mlflow server for %s starting on %s", redact_uri(self.backend_store_uri), self.uri)

    def wait_healthy(self, timeout_s: float = 180.0) -> float:
        """Seconds until ``/health`` answered; raises (with the log's tail) if the server died or is late."""
        try:
            return wait_healthy(self.uri, timeout_s, self.process)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path and self.log_path.exists() else ""
            raise RuntimeError(f"{exc}\n{tail}") from exc

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM to the server's process group (its workers too), SIGKILL after ``grace_s``; its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode
