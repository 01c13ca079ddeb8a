"""Spools: one run's tracking operations journaled on local disk, so a tracking outage loses nothing.

A spool is a folder per run, ``<spool dir>/<key>/``::

    journal.jsonl   append-only, one operation a line, numbered: {"seq": 3, "op": "metrics", "metrics": [...]}
    acked.json      {"acked": N, "run_id": ..., ...}: operations 1..N reached the store (written atomically)
    files/<seq>/    the artifact of operation <seq>, copied when it was logged (removed once sent)
    rejected.jsonl  operations the store refused for good (HTTP 4xx), with the error: kept, never resent
    lock            an exclusive ``flock`` held by the one process appending to or sending the spool

Operations (``op``): ``create`` (experiment, run_name, tags, start_time, artifact_location, uri),
``resume`` (run_id, uri), ``params``, ``tags``, ``metrics`` (rows ``[key, value, timestamp_ms, step]``),
``artifact`` (file, artifact_path, is_dir) and ``end`` (status, end_time). The first one is
``create`` (a new run) or ``resume`` (an existing run id). Sending them in order and acking each
only after the store answered makes a resend after a crash start at the first unacked operation;
:mod:`labkit.tracking.sender` checks what the store already has before resending that one.

A write is flushed to the OS at once (a crash of the process loses nothing appended) and fsynced at
:meth:`Journal.sync` (the tracker's flush points: checkpoints, ``flush()``, ``finish()``). A torn last
line (the machine died mid-write) is dropped when the journal is opened; a bad line before it is an error.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
ACKED = "acked.json"
REJECTED = "rejected.jsonl"
OPS = ("create", "resume", "params", "tags", "metrics", "artifact", "end")
#: the tag that ties an MLflow run to the spool it came from (found again after an in-doubt create)
KEY_TAG = "labkit.spool_key"


class SpoolBusyError(RuntimeError):
    """Another process holds the spool's lock (a running job, or ``labkit sync``)."""


def new_key() -> str:
    """A run key for a run the store has not created yet: ``local-<32 hex>`` (never an MLflow run id)."""
    return f"local-{uuid.uuid4().hex}"


def find_spools(root: str | os.PathLike[str]) -> list[Path]:
    """The spool folders under ``root`` (those holding a journal), oldest first."""
    base = Path(root)
    found = [p.parent for p in base.glob(f"*/{JOURNAL}")] if base.is_dir() else []
    return sorted(found, key=lambda p: ((p / JOURNAL).stat().st_ctime, p.name))


def _safe_key(key: str) -> str:
    if not key or any(c not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_." for c in key):
        raise ValueError(f"spool key: expected letters, digits, '-', '_' or '.', got {key!r}")
    if key.strip(".") == "":
        raise ValueError(f"spool key: expected a name, got {key!r}")
    return key


class Journal:
    """The journal of one spool folder: append, read back, ack, reject. Safe to share between threads.

    Open with :meth:`create` (a new spool) or :meth:`open` (an existing one); :meth:`lock` takes the
    folder's ``flock`` (a second process gets :class:`SpoolBusyError`).
    """

    def __init__(self, folder: Path, records: list[dict[str, Any]], state: dict[str, Any]) -> None:
        self.folder = folder
        self.key = folder.name
        self._mutex = threading.RLock()
        self._state = state
        self._last_seq = records[-1]["seq"] if records else 0
        acked = int(state.get("acked", 0))
        self._pending: deque[dict[str, Any]] = deque(r for r in records if r["seq"] > acked)
        self._first = records[0] if records else None
        self._file = open(folder / JOURNAL, "a", encoding="utf-8")
        self._lock_handle: Any = None
        self._dirty = False

    # ---- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, root: str | os.PathLike[str], key: str, first: Mapping[str, Any], **state: Any) -> Journal:
        """A new spool ``<root>/<key>/``, locked, whose first operation is ``first`` (``create`` or ``resume``).

        Raises:
            FileExistsError: the folder already holds a journal.
        """
        folder = Path(root).expanduser().resolve() / _safe_key(key)
        if (folder / JOURNAL).exists():
            raise FileExistsError(f"spool {folder}: expected a new folder, found a journal there")
        folder.mkdir(parents=True, exist_ok=True)
        handle = _take_lock(folder)
        state = {"key": key, "acked": 0, **state}
        _write_json(folder / ACKED, state)
        journal = cls(folder, [], state)
        journal._lock_handle = handle
        journal.append(first)
        return journal

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Journal:
        """An existing spool, locked for this process; a torn last line is dropped (and cut from the file).

        Raises:
            FileNotFoundError: no journal in ``folder``.
            SpoolBusyError: another process holds the spool.
            ValueError: a damaged record before the last line, or sequence numbers out of order.
        """
        folder = Path(folder).expanduser().resolve()
        if not (folder / JOURNAL).is_file():
            raise FileNotFoundError(f"spool {folder}: expected a {JOURNAL} there, found none")
        handle = _take_lock(folder)  # before reading: a torn line may only be cut when nobody is appending
        try:
            records, state = peek(folder, repair=True)
            journal = cls(folder, records, state)
        except BaseException:
            if handle is not None:
                handle.close()
            raise
        journal._lock_handle = handle
        return journal

    def close(self) -> None:
        with self._mutex:
            if not self._file.closed:
                self.sync()
                self._file.close()
            if self._lock_handle is not None:
                self._lock_handle.close()  # releases the flock
                self._lock_handle = None

    # ---- writing ---------------------------------------------------------------------------

    def append(self, op: Mapping[str, Any]) -> int:
        """Append one operation; returns its sequence number."""
        if op.get("op") not in OPS:
            raise ValueError(f"spool {self.folder}: expected an operation among {list(OPS)}, got {op.get('op')!r}")
        with self._mutex:
            record = {"seq": self._last_seq + 1, **{k: v for k, v in op.items() if k != "seq"}}
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
            self._dirty = True
            self._last_seq = record["seq"]
            self._pending.append(record)
            if self._first is None:
                self._first = record
            return record["seq"]

    def add_artifact(self, path: str | os.PathLike[str], artifact_path: str | None) -> int:
        """Copy a file or folder into ``files/<seq>/`` and append its ``artifact`` operation."""
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"spool: expected an existing file or directory to log, got {source}")
        with self._mutex:
            seq = self._last_seq + 1
            target = self.folder / "files" / str(seq) / source.name
            if target.parent.exists():  # left by a copy that failed half-way
                shutil.rmtree(target.parent)
            target.parent.mkdir(parents=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
            op = {"op": "artifact", "file": target.relative_to(self.folder).as_posix(), "artifact_path": artifact_path}
            return self.append({**op, "is_dir": source.is_dir()})

    def add_text(self, text: str, artifact_file: str) -> int:
        """Write ``text`` as the artifact ``artifact_file`` (``dir/name.txt``) into the spool."""
        with self._mutex:
            seq = self._last_seq + 1
            target = self.folder / "files" / str(seq) / Path(artifact_file).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            parent = Path(artifact_file).parent.as_posix()
            return self.append(
                {
                    "op": "artifact",
                    "file": target.relative_to(self.folder).as_posix(),
                    "artifact_path": None if parent in ("", ".") else parent,
                    "is_dir": False,
                }
            )

    def sync(self) -> None:
        """fsync the journal: what was appended survives a crash of the machine."""
        with self._mutex:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._dirty = False

    # ---- reading and acking ------------------------------------------------------------------

    @property
    def acked(self) -> int:
        return int(self._state.get("acked", 0))

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def run_id(self) -> str | None:
        """The store's run id once known (after ``create`` was sent, or from ``resume``)."""
        return self._state.get("run_id")

    @property
    def state(self) -> dict[str, Any]:
        return dict(self._state)

    @property
    def first(self) -> dict[str, Any] | None:
        """The first operation (``create`` or ``resume``): where the run was meant to go."""
        return self._first

    def last_op(self) -> dict[str, Any] | None:
        """The last operation appended (from disk when it was sent already)."""
        with self._mutex:
            if self._pending:
                return self._pending[-1]
        last = None
        for last in self.records():  # noqa: B007 - only the last one is wanted
            pass
        return last

    def pending_count(self) -> int:
        with self._mutex:
            return len(self._pending)

    def next_pending(self) -> dict[str, Any] | None:
        with self._mutex:
            return self._pending[0] if self._pending else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every operation in the journal, in order (read from disk)."""
        with self._mutex:
            if not self._file.closed:
                self._file.flush()
        yield from _read_records(self.folder / JOURNAL, repair=False)

    def ack(self, seq: int, **state: Any) -> None:
        """Operation ``seq`` (the first pending one) reached the store: record it atomically, drop its files.

        One thread acks (the sender, or ``labkit sync``); the file writes happen outside the mutex so
        that appends from the training loop never wait for them.
        """
        with self._mutex:
            if not self._pending or self._pending[0]["seq"] != seq:
                head = self._pending[0]["seq"] if self._pending else None
                raise ValueError(f"spool {self.folder}: expected to ack the first pending operation {head}, got {seq}")
            new_state = {**self._state, **{k: v for k, v in state.items() if v is not None}, "acked": seq}
            dirty = self._dirty
            if dirty and not self._file.closed:
                self._file.flush()
                self._dirty = False
        if dirty and not self._file.closed:
            # the record goes to disk before its ack: after a crash of the machine, acked never exceeds the journal
            os.fsync(self._file.fileno())
        _write_json(self.folder / ACKED, new_state)
        with self._mutex:
            self._state = new_state
            record = self._pending.popleft()
        if record.get("op") == "artifact":
            shutil.rmtree(self.folder / "files" / str(seq), ignore_errors=True)

    def reject(self, seq: int, error: BaseException) -> None:
        """The store refused operation ``seq`` for good: keep it in ``rejected.jsonl`` and move past it."""
        with self._mutex:
            record = self._pending[0] if self._pending and self._pending[0]["seq"] == seq else {"seq": seq}
            entry = {"time": time.time(), "error": f"{type(error).__name__}: {error}"[:2000], "record": record}
            with open(self.folder / REJECTED, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            rejected = int(self._state.get("rejected", 0)) + 1
        log.error("spool %s: the store refused operation %d (%s): %s", self.folder, seq, record.get("op"), error)
        self.ack(seq, rejected=rejected)

    def rejected(self) -> list[dict[str, Any]]:
        path = self.folder / REJECTED
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def file_path(self, record: Mapping[str, Any]) -> Path:
        return self.folder / str(record["file"])

    def __repr__(self) -> str:
        return f"Journal({str(self.folder)!r}, acked={self.acked}, last={self._last_seq})"


def peek(folder: str | os.PathLike[str], repair: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(records, state)`` of a spool without taking its lock (``repair`` only under the lock)."""
    folder = Path(folder)
    records = _read_records(folder / JOURNAL, repair=repair)
    try:
        state = json.loads((folder / ACKED).read_text())
    except FileNotFoundError:
        state = {"key": folder.name, "acked": 0}
    except ValueError as exc:
        raise ValueError(f"spool {folder / ACKED}: expected a JSON object, got a damaged file ({exc})") from None
    return records, state


def _take_lock(folder: Path) -> Any:
    """An open handle holding the exclusive ``flock`` of ``folder/lock`` (None where flock does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one process per spool is then the user's to ensure
        return None
    handle = open(folder / "lock", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SpoolBusyError(
            f"spool {folder} is in use by another process (a running job or `labkit sync`); expected it to be free"
        ) from None
    return handle


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    from labkit.io.checkpoint import atomic_write

    with atomic_write(path) as handle:
        handle.write(json.dumps(dict(data), indent=1).encode())


def _read_records(path: Path, repair: bool = True) -> list[dict[str, Any]]:
    """The journal's records; a torn last line is cut from the file (``repair``) or skipped."""
    raw = path.read_bytes()
    records: list[dict[str, Any]] = []
    good_end = 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if not line.strip():
            if not is_last:
                good_end += len(line) + 1
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("seq"), int) or record.get("op") not in OPS:
                raise ValueError("not an operation record")
        except ValueError as exc:
            if is_last or (number == len(lines) - 1 and lines[-1] == b""):
                # the last line: written when the machine died; everything before it is intact
                if repair:
                    log.warning("spool %s: dropping a torn last record (%d bytes)", path, len(line))
                    with open(path, "r+b") as handle:
                        handle.truncate(good_end)
                break
            raise ValueError(
                f"spool journal {path}:{number}: expected a JSON operation record, got {line[:80]!r} ({exc})"
            ) from None
        if is_last and repair:  # complete JSON but no newline: finish the line so the next append starts fresh
            with open(path, "ab") as handle:
                handle.write(b"\n")
        expected = records[-1]["seq"] + 1 if records else 1
        if record["seq"] != expected:
            raise ValueError(f"spool journal {path}:{number}: expected sequence number {expected}, got {record['seq']}")
        records.append(record)
        good_end += len(line) + 1
    return records
