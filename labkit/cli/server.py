"""``labkit server``: an MLflow tracking server for a team (or to try one), bound to 127.0.0.1 by default.

    labkit server                                      # store sqlite:///<cwd>/mlflow.db, artifacts ./mlartifacts
    labkit server --postgres ./pg                      # a private PostgreSQL cluster in ./pg (initdb on first use)
    labkit server --backend-store-uri postgresql+psycopg2://mlflow@db.lab:5432/mlflow \\
                  --artifacts-destination /shared/mlflow-artifacts --host 0.0.0.0 --port 5000

Runs ``mlflow server --serve-artifacts`` (clients upload artifacts through the server, so they
need no access to the artifact store), waits until ``/health`` answers, prints the tracking URI
to give ``labkit train``, and stops the server (and the PostgreSQL cluster it started) on
Ctrl-C or SIGTERM. See docs/tracking.md, "Working as a team".
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit server", description="Start an MLflow tracking server (docs/tracking.md: Working as a team)."
    )
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--backend-store-uri",
        help="runs/params/metrics store: postgresql+psycopg2://USER@HOST:PORT/DB or sqlite:///PATH "
        "(default: sqlite:///<cwd>/mlflow.db)",
    )
    store.add_argument(
        "--postgres",
        metavar="DIR",
        help="initialise (first time) and start a private PostgreSQL cluster in DIR on 127.0.0.1 and use it",
    )
    parser.add_argument(
        "--artifacts-destination",
        help="where the server keeps artifacts: a folder (shared disk) or s3://... "
        "(default: DIR/artifacts with --postgres, else ./mlartifacts)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--workers", type=int, default=4, help="server worker processes (default 4)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the server to be healthy")
    return parser


def _defaults(args: argparse.Namespace) -> tuple[str | None, str]:
    """The backend URI (None: --postgres decides it) and the artifact destination."""
    from labkit.tracking.store import resolve_tracking_uri, sqlite_path

    if args.postgres is not None:
        return None, args.artifacts_destination or str(Path(args.postgres).expanduser().resolve() / "artifacts")
    uri = resolve_tracking_uri(args.backend_store_uri)
    if uri.startswith(("http://", "https://")):
        raise ValueError(f"--backend-store-uri: expected a database URI (postgresql://, sqlite:///), got {uri}")
    if args.artifacts_destination:
        return uri, args.artifacts_destination
    db = sqlite_path(uri)
    base = db.parent if db is not None else Path.cwd()
    return uri, str(base / "mlartifacts")


def main(argv: list[str] | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; 0 after a clean stop, 1 when the server could not start."""
    from labkit.tracking.server import MlflowServer, PostgresCluster, PostgresNotFoundError, is_loopback, redact_uri

    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port: expected a port in 1..65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        backend, artifacts = _defaults(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not is_loopback(args.host):
        log.warning(
            "binding the MLflow server to %s: anyone who can reach this machine on port %d can read, change "
            "and delete every run and artifact (MLflow has no authentication here); put it behind a "
            "firewall or an authenticating proxy",
            args.host,
            args.port,
        )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _StopSignal(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    cluster: PostgresCluster | None = None
    server: MlflowServer | None = None
    try:
        env: dict[str, str] = {}
        if args.postgres is not None:
            cluster = PostgresCluster(args.postgres)
            backend = cluster.start()
            env = cluster.client_env()
            print(f"PostgreSQL: {backend}  (data {cluster.data}, password in {cluster.pgpass})", flush=True)
        server = MlflowServer(str(backend), artifacts, host=args.host, port=args.port, workers=args.workers, env=env)
        server.start()
        server.wait_healthy(args.timeout)
        print(
            f"MLflow tracking server on {server.uri}\n"
            f"  store:     {redact_uri(str(backend))}\n  artifacts: {server.artifacts_destination}\n"
            f"  use it:    labkit train tracking=server tracking.uri={server.uri}\n"
            f"  (Ctrl-C stops it)",
            flush=True,
        )
        while server.running():
            time.sleep(0.5)
        log.error("mlflow server exited on its own with code %s", server.process.returncode)  # type: ignore[union-attr]
        return 1
    except _StopSignal:
        print("labkit server: stopping", flush=True)
        return 0
    except (PostgresNotFoundError, PermissionError, ValueError, RuntimeError) as exc:
        print(f"labkit server: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the clean-up short (it is bounded: ~15 s + pg_ctl)
            signal.signal(sig, signal.SIG_IGN)
        try:
            if server is not None:
                server.stop()
            if cluster is not None and cluster.started_here:
                cluster.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _StopSignal(BaseException):
    """Ctrl-C or SIGTERM arrived: stop the server and the cluster, exit 0."""


if __name__ == "__main__":
    raise SystemExit(main())
