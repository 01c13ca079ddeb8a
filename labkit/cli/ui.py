"""``labkit ui``: the MLflow UI on the local store, bound to 127.0.0.1.

    labkit ui                                # sqlite:///<cwd>/mlflow.db, http://127.0.0.1:5000
    labkit ui --tracking-uri sqlite:////abs/path/mlflow.db --port 5001

Runs ``python -m mlflow server`` with the absolute store URI and the store's artifact
directory (``mlruns/`` next to the SQLite file), prints the URL and waits until Ctrl-C.
MLflow 3 opens in "GenAI" mode: switch to "Model training" at the top left.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time

log = logging.getLogger(__name__)


def server_command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow server`` command line for store ``uri`` (absolute) on ``host:port``."""
    from labkit.tracking.store import default_artifact_root

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    root = default_artifact_root(uri)
    if root is not None:
        # new experiments created from the UI keep their artifacts next to the store too
        command += ["--artifacts-destination", root]
    return [*command, "--host", host, "--port", str(port)]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit ui", description="Start the MLflow UI on the local store.")
    parser.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--print-command", action="store_true", help="print the server command and exit")
    return parser


def main_ui(argv: list[str] | None = None) -> int:
    """``labkit ui``: run the MLflow server in the foreground; its exit code (0 after Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port: expected a port in 1..65535, got {args.port}")
    from labkit.tracking.store import resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        parser.error(f"--tracking-uri: {uri} is already a server; open it in a browser instead")
    command = server_command(uri, args.host, args.port)
    if args.print_command:
        print(" ".join(command))
        return 0
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        log.warning("no MLflow store at %s yet: the UI will show an empty store until a run is logged", db)
    if not _is_loopback(args.host):
        log.warning("binding the MLflow UI to %s exposes every run and artifact to the network", args.host)
    if not port_is_free(args.host, args.port):
        print(
            f"labkit ui: port {args.port} on {args.host} is in use; expected a free port (try --port {args.port + 1})"
        )
        return 1
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"MLflow UI for {uri}\n  http://{where}:{args.port}  (Ctrl-C to stop; choose 'Model training' at the top left)"
    )
    server = subprocess.Popen(command, start_new_session=True)
    # SIGTERM to `labkit ui` must stop the server it started (with its workers), not orphan
    # it. The handler only signals; the loop below waits (Popen.wait is not reentrant).
    term_at: list[float] = []

    def on_term(*_: object) -> None:
        term_at.append(time.monotonic())
        _signal_group(server, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            try:
                code = server.wait(timeout=0.5)
                return 0 if term_at else code
            except subprocess.TimeoutExpired:
                if term_at and time.monotonic() - term_at[0] > 10:
                    _signal_group(server, signal.SIGKILL)
    except KeyboardInterrupt:
        _stop(server)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            _stop(server)


def _signal_group(server: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:
        pass


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after 10 s."""
    _signal_group(server, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(server, signal.SIGKILL)
        server.wait()


if __name__ == "__main__":
    raise SystemExit(main_ui())
