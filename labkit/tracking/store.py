"""MLflow stores and experiments: absolute tracking URIs, health checks, a creation lock, clients.

mlflow is imported inside the functions that need it (``make_client``, ``ensure_experiment``),
never at module import, so ``labkit --help`` and the CLI's argument parsing stay fast.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labkit.tracking.params import sanitize_key
from labkit.tracking.postgres import check_postgres_driver, is_postgres_uri

HEALTH_TIMEOUT_S = 5.0


def resolve_tracking_uri(uri: str | os.PathLike[str] | None = None, cwd: str | os.PathLike[str] | None = None) -> str:
    """An absolute tracking URI: ``None`` -> ``sqlite:///<abs cwd>/mlflow.db``.

    ``sqlite:///relative.db`` and bare paths ending in ``.db`` are made absolute against
    ``cwd`` (default: the current directory); other URIs (``http(s)://``, ``postgresql://``)
    are returned unchanged.
    """
    base = Path(cwd if cwd is not None else os.getcwd()).expanduser().resolve()
    if uri is None or str(uri).strip() == "":
        return f"sqlite:///{base / 'mlflow.db'}"
    text = str(uri)
    if text.startswith("sqlite:///"):
        path = text[len("sqlite:///") :]
        if path.startswith("/"):
            return text
        return f"sqlite:///{(base / path).resolve()}"
    if "://" not in text and text.endswith(".db"):
        return f"sqlite:///{(base / text).resolve()}"
    return text


def sqlite_path(uri: str) -> Path | None:
    """The database file of an absolute ``sqlite:///`` URI, else None."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def default_artifact_root(uri: str) -> str | None:
    """Where a local store keeps artifacts: ``mlruns/`` next to the SQLite file (None for servers)."""
    db = sqlite_path(uri)
    return str(db.parent / "mlruns") if db is not None else None


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """For ``http(s)://`` URIs, fail fast with the URI in the message when no server answers.

    Any HTTP answer (even 404 or 401) counts as reachable; refused connections, DNS
    failures and timeouts raise ``ConnectionError``.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"MLflow tracking server {uri} is not reachable ({reason}); expected a running server "
            f"(start one with `labkit ui` or `mlflow server`), or use a local store such as sqlite:///ABS/PATH/mlflow.db"
        ) from exc


def is_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """False when an ``http(s)://`` server does not answer within ``timeout`` s; True for local stores."""
    try:
        check_reachable(uri, timeout)
    except ConnectionError:
        return False
    return True


#: MLflow reads these before every HTTP request; spooled trackers and `labkit sync` bound them
_HTTP_VARS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
_http_mutex = threading.Lock()
_http_users: list[int] = []
_http_saved: dict[str, str | None] = {}


@contextmanager
def http_limits(timeout_s: int) -> Iterator[None]:
    """Make every MLflow HTTP request in this process give up after ``timeout_s`` s, with no retries.

    MLflow 3.17 retries a failed request 7 times with exponential backoff (minutes) and waits
    120 s for an answer; it reads ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT``
    before each request, so they are set here, process-wide, while any user holds the limits
    (the tightest timeout wins) and restored after the last one leaves. Retries are then the
    spool's job (backoff, and a check of what the store has before resending: MLflow's own
    retries resend a POST whose answer was lost, which would log a metric batch twice).
    """
    with _http_mutex:
        if not _http_users:
            _http_saved.update({name: os.environ.get(name) for name in _HTTP_VARS})
        _http_users.append(max(1, int(timeout_s)))
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(min(_http_users))
    try:
        yield
    finally:
        with _http_mutex:
            _http_users.remove(max(1, int(timeout_s)))
            if _http_users:
                os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(min(_http_users))
            else:
                for name, value in _http_saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` for a SQLite store (no-op for servers).

    MLflow builds the SQLite schema with alembic migrations; processes that start them at
    the same time corrupt each other's ("table ... already exists", "No such constraint"),
    so creating the store and the experiment is serialised across processes on this machine.
    A PostgreSQL store (``postgresql://``) is serialised across machines by :func:`postgres_lock`.
    """
    if is_postgres_uri(uri):
        with postgres_lock(uri):
            yield
        return
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; single-process use is still safe
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: the PostgreSQL advisory lock key under which labkit creates MLflow schemas and experiments
POSTGRES_LOCK_KEY = 0x6C61626B6974  # "labkit"


@contextmanager
def postgres_lock(uri: str, key: int = POSTGRES_LOCK_KEY) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock on the database of ``uri`` for the block.

    MLflow creates a fresh database's schema with alembic on the first client; clients that start
    together collide ("duplicate key value violates unique constraint pg_type_typname_nsp_index",
    measured with 4 processes). The lock serialises that, and experiment creation, among labkit's
    clients on any machine. It is released when the block ends or its connection drops.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    check_postgres_driver(uri)  # a clear "pip install" message instead of SQLAlchemy's import error
    engine = create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def make_client(uri: str | None = None, check: bool = True) -> Any:
    """An ``MlflowClient`` on the absolute form of ``uri`` whose store (and SQLite schema) exists.

    ``check=False`` skips the health check of a server (a spooled tracker starts without one).
    """
    uri = resolve_tracking_uri(uri)
    if check:
        check_reachable(uri)
    from mlflow.tracking import MlflowClient

    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client._tracking_client.store  # noqa: B018 - builds the store (and runs the migrations) now
    return client


def ensure_experiment(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with an absolute artifact location) if missing.

    Safe when several processes race to create it: the loser re-reads it.
    """
    from mlflow.exceptions import MlflowException

    if not isinstance(name, str) or not name:
        raise ValueError(f"MLflowTracker: expected a non-empty experiment name, got {name!r}")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        if artifact_location is None:
            root = default_artifact_root(client.tracking_uri)
            artifact_location = None if root is None else str(Path(root) / sanitize_key(name).replace("/", "_"))
        try:
            return client.create_experiment(name, artifact_location=_as_uri(artifact_location))
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"MLflowTracker: experiment {name!r} is deleted in {client.tracking_uri}; expected an active "
            f"experiment (restore it with `mlflow experiments restore --experiment-id {experiment.experiment_id}`)"
        )
    return experiment.experiment_id


def _as_uri(location: str | None) -> str | None:
    if location is None or "://" in location:
        return location
    return Path(location).resolve().as_uri()
