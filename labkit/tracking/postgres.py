"""A private PostgreSQL cluster for a team's MLflow store (or to try one), and PostgreSQL URI helpers.

The cluster listens on 127.0.0.1 only (no Unix socket), with password authentication
(scram-sha-256); the generated password is kept in ``DIR/pgpass`` (mode 0600), which libpq
reads through ``PGPASSFILE``, so no password appears in a URI, a command line or a log.
PostgreSQL refuses to run as root: when root, initdb and pg_ctl run as the ``postgres`` user
(``runuser -u postgres --``) and DIR is handed to that user. ``labkit/tracking/server.py``
runs the MLflow server on it.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

POSTGRES_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/bin")
INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: `sudo apt-get install postgresql`; Fedora: `sudo dnf install "
    "postgresql-server`; macOS: `brew install postgresql`; conda: `conda install -c conda-forge postgresql`)"
)
DRIVER_HINT = "install the PostgreSQL driver: pip install 'labkit[team]' (or pip install psycopg2-binary)"
CLUSTER_FILE = "labkit-postgres.json"


class PostgresNotFoundError(FileNotFoundError):
    """PostgreSQL's server programs (initdb, pg_ctl) are not installed where labkit looks."""


# ---- URIs and hosts -----------------------------------------------------------------------


def is_postgres_uri(uri: str) -> bool:
    """True for ``postgresql://`` and ``postgresql+<driver>://`` (and the ``postgres://`` alias)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return scheme.split("+", 1)[0] in ("postgresql", "postgres")


def postgres_uri(
    user: str, host: str, port: int, database: str, password: str | None = None, driver: str = "psycopg2"
) -> str:
    """A SQLAlchemy URI ``postgresql+psycopg2://user[:password]@host:port/database`` (parts quoted)."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"postgres_uri: expected a port in 1..65535, got {port}")
    quote = urllib.parse.quote
    auth = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
    where = f"[{host}]" if ":" in host else host
    scheme = "postgresql" if not driver else f"postgresql+{driver}"
    return f"{scheme}://{auth}@{where}:{int(port)}/{quote(database, safe='')}"


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for logs and messages)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_postgres_driver(uri: str) -> None:
    """For a PostgreSQL URI, fail with the install command when psycopg2 is missing."""
    if not is_postgres_uri(uri):
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"{redact_uri(uri)}: the PostgreSQL driver psycopg2 is not installed; {DRIVER_HINT}") from exc


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now (the OS's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` now (connections of a stopped one in TIME_WAIT
    do not count: servers, PostgreSQL and uvicorn included, bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# ---- PostgreSQL ---------------------------------------------------------------------------


def find_postgres_bin(candidates: Sequence[str | os.PathLike[str]] | None = None) -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest of ``candidates`` (default: the usual
    install folders, then ``PATH``).

    Raises:
        PostgresNotFoundError: none has both programs; the message says how to install PostgreSQL.
    """
    if candidates is None:
        found = [Path(p) for pattern in POSTGRES_BIN_GLOBS for p in glob.glob(pattern)]
        on_path = shutil.which("initdb")
        found += [Path(on_path).parent] if on_path else []
    else:
        found = [Path(p) for p in candidates]

    def version(folder: Path) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in str(folder)).split()
        return tuple(int(d) for d in digits)

    usable = [f for f in found if (f / "initdb").is_file() and (f / "pg_ctl").is_file()]
    if not usable:
        where = ", ".join(str(f) for f in found) or ", ".join(POSTGRES_BIN_GLOBS) + " or PATH"
        raise PostgresNotFoundError(f"PostgreSQL: expected initdb and pg_ctl in {where}, found none; {INSTALL_HINT}")
    return max(usable, key=version)


class PostgresCluster:
    """A private PostgreSQL cluster in ``folder``, on 127.0.0.1 only, made for one MLflow database.

    Layout: ``folder/data`` (PGDATA), ``folder/postgres.log``, ``folder/pgpass`` (0600),
    ``folder/labkit-postgres.json`` (user, database, port). ``start()`` initialises a new or
    empty ``folder`` first; an existing cluster is reused, on its previous port when free.

    Args:
        folder: the cluster's folder; must be new, empty, or made by this class.
        port: None -> the previous port if free, else a free one.
        user, database: the superuser labkit creates and the database MLflow uses (None: the
            cluster's own, else ``labkit`` and ``mlflow``).
        bin_dir: where initdb/pg_ctl are (default: :func:`find_postgres_bin`).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        port: int | None = None,
        user: str | None = None,
        database: str | None = None,
        bin_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.data = self.folder / "data"
        self.pgpass = self.folder / "pgpass"
        self.logfile = self.folder / "postgres.log"
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_postgres_bin()
        saved = self._saved()
        self.user = user or str(saved.get("user", "labkit"))
        self.database = database or str(saved.get("database", "mlflow"))
        self.port = int(port) if port is not None else int(saved.get("port", 0)) or None
        self.started_here = False

    # -- running programs as the right user

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PermissionError(
                "PostgreSQL refuses to run as root and `runuser` is not available to run it as the postgres "
                "user; expected a non-root user: run `labkit server --postgres DIR` as one"
            )
        return [runuser, "-u", "postgres", "--", *command]

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = self._as_owner([str(self.bin_dir / args[0]), *args[1:]])
        done = subprocess.run(
            command, cwd=self.folder, capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL: `{' '.join(args)}` failed (exit {done.returncode}):\n{done.stderr.strip()}\n"
                f"{self._log_tail()}"
            )
        return done

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return "postgres.log:\n" + self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _saved(self) -> dict[str, object]:
        try:
            return dict(json.loads((self.folder / CLUSTER_FILE).read_text()))
        except (OSError, ValueError):
            return {}

    # -- life cycle

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file() and self.pgpass.is_file()

    def init(self) -> None:
        """initdb in ``folder/data`` with a generated password for ``user`` (scram-sha-256, 127.0.0.1 only)."""
        if self.initialised:
            return
        if self.folder.exists() and any(self.folder.iterdir()):
            raise ValueError(
                f"--postgres {self.folder}: expected a new or empty folder, or one made by `labkit server "
                f"--postgres`; got a folder holding {sorted(p.name for p in self.folder.iterdir())[:5]}"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            reach = subprocess.run(self._as_owner(["test", "-w", str(self.folder)]), capture_output=True)
            if reach.returncode != 0:
                raise PermissionError(
                    f"--postgres {self.folder}: the postgres user cannot write there (a parent folder is closed "
                    f"to it, e.g. /root); expected a folder it can reach, such as /srv/labkit-pg or /tmp/labkit-pg"
                )
        password = secrets.token_urlsafe(24)
        pwfile = self.folder / "initdb.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                "-E", "UTF8", "--no-locale", "--no-instructions",
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.data, ignore_errors=True)  # a half-made cluster would block the next try
            raise
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# labkit server --postgres: TCP on loopback only, no Unix socket\n")
            conf.write("listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
        fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"127.0.0.1:*:*:{self.user}:{password}\n")
        self._save()
        log.info("initialised a PostgreSQL cluster in %s (superuser %s)", self.data, self.user)

    def _save(self) -> None:
        info = {"user": self.user, "database": self.database, "port": self.port}
        (self.folder / CLUSTER_FILE).write_text(json.dumps(info, indent=1) + "\n")

    def running(self) -> bool:
        """True when a postmaster serves ``folder/data`` (``pg_ctl status``)."""
        return self.initialised and self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self, timeout_s: int = 60) -> str:
        """Initialise if needed, start on ``port`` (or a free one), create the database; its URI."""
        check_postgres_driver("postgresql://")  # before anything starts: the database is created through it
        self.init()
        if self.running():
            raise RuntimeError(
                f"PostgreSQL in {self.data} is already running (another `labkit server --postgres` on it?); "
                f"expected it stopped: stop the other server, or `pg_ctl stop -D {self.data}`"
            )
        if self.port is None or not port_is_free("127.0.0.1", self.port):
            self.port = free_port()
        self._save()
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", str(timeout_s),
            "-o", f"-p {self.port}",
        )  # fmt: skip
        self.started_here = True
        self.create_database()
        log.info("PostgreSQL on 127.0.0.1:%d (data %s)", self.port, self.data)
        return self.uri

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (sessions are closed, committed data is on disk); no-op when not running."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
        self.started_here = False

    def client_env(self) -> dict[str, str]:
        """What a PostgreSQL client (the MLflow server) needs in its environment: ``PGPASSFILE``."""
        return {"PGPASSFILE": str(self.pgpass)}

    @property
    def uri(self) -> str:
        """``postgresql+psycopg2://<user>@127.0.0.1:<port>/<database>`` (the password comes from pgpass)."""
        if self.port is None:
            raise RuntimeError(f"PostgreSQL in {self.folder}: no port yet; expected start() first")
        return postgres_uri(self.user, "127.0.0.1", self.port, self.database)

    def create_database(self) -> None:
        """Create ``database`` if missing (through psycopg2, as ``user``)."""
        check_postgres_driver(self.uri)
        import psycopg2

        with _environ(self.client_env()):
            connection = psycopg2.connect(
                host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", connect_timeout=10
            )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cursor.fetchone() is None:
                    name = self.database.replace('"', '""')
                    cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block (this process's libpq reads PGPASSFILE on connect)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---- the MLflow server --------------------------------------------------------------------
