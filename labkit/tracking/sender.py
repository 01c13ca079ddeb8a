"""Sending a spool's journal to an MLflow store, in order, each operation once (used by the tracker and ``labkit sync``).

An operation is acked only after the store answered. When an attempt failed with the request
possibly sent (a timeout, a reset connection, a crash of this process), the operation is *in doubt*:
before sending it again the sender asks the store what it already has. ``create`` looks for a run
tagged with the spool's key; ``metrics`` reads the history of the batch's keys and sends only the
``(step, timestamp, value)`` rows that are missing. Params, tags, artifacts, ``resume`` and ``end``
are idempotent (same values, same files, same status). Metrics keep the timestamps they were logged
with, so SQL stores would also drop an exact duplicate; the check makes it hold for every store.

Errors: the store refusing an operation for good (HTTP 4xx other than 429, a missing spooled file)
rejects it (``rejected.jsonl``, logged, never resent); a refused ``create``/``resume`` blocks the spool
(:class:`SpoolBlockedError`); anything else (no connection, timeouts, 5xx) is transient: :class:`SendError`,
and the caller tries again later with exponential backoff (:class:`Backoff`).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.tracking.spool import KEY_TAG, Journal

log = logging.getLogger(__name__)


class SendError(Exception):
    """A transient failure: the operation ``seq`` may or may not have reached the store (it is in doubt)."""

    def __init__(self, seq: int, error: BaseException) -> None:
        super().__init__(f"operation {seq}: {type(error).__name__}: {error}")
        self.seq, self.error = seq, error


class SpoolBlockedError(Exception):
    """The store refused the run itself (``create``/``resume``): nothing after it can be sent."""


@dataclass
class SendReport:
    """What one :func:`send_pending` call sent: operations by kind, metric values, rejections."""

    ops: Counter[str] = field(default_factory=Counter)
    metric_values: int = 0
    rejected: int = 0
    status: str | None = None

    def add(self, other: SendReport) -> None:
        self.ops.update(other.ops)
        self.metric_values += other.metric_values
        self.rejected += other.rejected
        self.status = other.status or self.status

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def describe(self) -> str:
        """``1 create, 2 params, 14 metric batches (1234 values), 5 artifacts, end FINISHED``."""
        names = {"params": "params", "tags": "tags", "metrics": "metric batches", "artifact": "artifacts"}
        parts = []
        for op in ("create", "resume", "params", "tags", "metrics", "artifact"):
            count = self.ops.get(op, 0)
            if count:
                text = f"{count} {names.get(op, op)}"
                parts.append(f"{text} ({self.metric_values} values)" if op == "metrics" else text)
        if self.ops.get("end"):
            parts.append(f"end {self.status}")
        if self.rejected:
            parts.append(f"{self.rejected} rejected by the store")
        return ", ".join(parts) if parts else "nothing"


def is_permanent(error: BaseException) -> bool:
    """True when resending cannot help: the store answered 4xx (not 429), or a spooled file is gone."""
    if isinstance(error, FileNotFoundError):
        return True
    if isinstance(error, (ValueError, TypeError)) and not _is_mlflow_error(error):
        return True  # our own validation (a deleted experiment ...)
    status = getattr(error, "get_http_status_code", None)
    if _is_mlflow_error(error) and callable(status):
        code = int(status())
    else:  # requests' HTTPError from an artifact upload carries the response
        code = getattr(getattr(error, "response", None), "status_code", None) or 0
    return 400 <= int(code) < 500 and int(code) != 429


def _is_mlflow_error(error: BaseException) -> bool:
    return any(cls.__name__ == "MlflowException" for cls in type(error).__mro__)


# ---- applying one operation ---------------------------------------------------------------


def apply(client: Any, journal: Journal, record: Mapping[str, Any], in_doubt: bool = False) -> str | None:
    """Send ``record`` to the store behind ``client``; returns the run id a ``create`` made (or found)."""
    op = record["op"]
    if op == "create":
        return create_run(client, journal.key, record, in_doubt)
    run_id = (record.get("run_id") if op == "resume" else None) or journal.run_id
    if run_id is None:
        raise SpoolBlockedError(f"spool {journal.folder}: operation {record['seq']} ({op}) comes before the run exists")
    if op == "resume":
        client.update_run(run_id, status="RUNNING")
        return str(run_id)
    if op == "params":
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, v) for k, v in record["params"].items()])
    elif op == "tags":
        from mlflow.entities import RunTag

        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in record["tags"].items()])
    elif op == "metrics":
        _metrics(client, run_id, record["metrics"], in_doubt)
    elif op == "artifact":
        path = journal.file_path(record)
        if not path.exists():
            raise FileNotFoundError(
                f"spool {journal.folder}: the artifact of operation {record['seq']} is gone ({path})"
            )
        if record.get("is_dir"):
            sub = path.name if record.get("artifact_path") is None else f"{record['artifact_path']}/{path.name}"
            client.log_artifacts(run_id, str(path), sub)
        else:
            client.log_artifact(run_id, str(path), record.get("artifact_path"))
    elif op == "end":
        client.set_terminated(run_id, record["status"], end_time=record.get("end_time"))
    return None


def create_run(client: Any, key: str, record: Mapping[str, Any], in_doubt: bool = False) -> str:
    """Create the run a ``create`` record describes, tagged ``labkit.spool_key=key``; its id.

    ``in_doubt``: first look for a run with that tag (an earlier try may have created it).
    """
    from labkit.tracking.store import ensure_experiment, store_lock

    with store_lock(client.tracking_uri):
        experiment_id = ensure_experiment(client, record["experiment"], record.get("artifact_location"))
    if in_doubt:  # the last try may have created it before the answer was lost
        query = f"tags.`{KEY_TAG}` = '{key}'"
        found = client.search_runs([experiment_id], filter_string=query, max_results=1)
        if found:
            log.info("spool %s: run %s already exists, not creating it again", key, found[0].info.run_id)
            return str(found[0].info.run_id)
    tags = {**record.get("tags", {}), KEY_TAG: key}
    run = client.create_run(experiment_id, start_time=record.get("start_time"), tags=tags, run_name=record["run_name"])
    return str(run.info.run_id)


def _comparable(value: float) -> float | str:
    """A metric value as the store gives it back: NaN has no equal, infinities are clipped to +-max float."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return math.copysign(sys.float_info.max, value)
    return float(value)


def _metrics(client: Any, run_id: str, rows: list[list[Any]], in_doubt: bool) -> None:
    from mlflow.entities import Metric

    if in_doubt:
        have: set[tuple[str, int, int, float | str]] = set()
        for key in sorted({row[0] for row in rows}):
            have.update(
                (key, m.step, m.timestamp, _comparable(m.value)) for m in client.get_metric_history(run_id, key)
            )
        missing = [r for r in rows if (r[0], int(r[3]), int(r[2]), _comparable(float(r[1]))) not in have]
        if len(missing) < len(rows):
            log.info("run %s: %d of %d metric values were already stored", run_id, len(rows) - len(missing), len(rows))
        rows = missing
    if rows:
        client.log_batch(run_id, metrics=[Metric(k, float(v), int(t), int(s)) for k, v, t, s in rows])


# ---- sending the backlog ------------------------------------------------------------------


def send_pending(
    journal: Journal, client: Any, *, in_doubt: bool = False, should_stop: Callable[[], bool] | None = None
) -> SendReport:
    """Send every pending operation of ``journal`` in order, acking each; ``in_doubt`` for the first one.

    Raises:
        SendError: a transient failure (what was sent before it is acked; that operation is now in doubt).
        SpoolBlockedError: the store refused the run itself.
    """
    report = SendReport()
    while (record := journal.next_pending()) is not None:
        if should_stop is not None and should_stop():
            break
        seq = record["seq"]
        try:
            run_id = apply(client, journal, record, in_doubt)
        except SpoolBlockedError:
            raise
        except Exception as exc:
            if not is_permanent(exc):
                raise SendError(seq, exc) from exc
            if record["op"] in ("create", "resume"):
                raise SpoolBlockedError(
                    f"spool {journal.folder}: the store refused the run ({record['op']}): {exc}"
                ) from exc
            journal.reject(seq, exc)
            report.rejected += 1
            in_doubt = False
            continue
        journal.ack(seq, run_id=run_id, store_uri=client.tracking_uri if record["op"] == "create" else None)
        in_doubt = False
        report.ops[record["op"]] += 1
        if record["op"] == "metrics":
            report.metric_values += len(record["metrics"])
        elif record["op"] == "end":
            report.status = record["status"]
    return report


class Backoff:
    """Waits between tries after failures: ``min_s``, ``2 min_s``, ``4 min_s`` ... capped at ``max_s``."""

    def __init__(self, min_s: float = 1.0, max_s: float = 60.0) -> None:
        self.min_s, self.max_s = float(min_s), float(max_s)
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure; the wait before the next try."""
        delay = min(self.max_s, self.min_s * (2.0**self.failures))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Sender:
    """A background thread that sends a journal's pending operations whenever the store answers.

    The training loop only appends to the journal (no network wait); :meth:`notify` wakes the
    thread. After a failure it waits per :class:`Backoff`, and before each retry it checks
    the server's ``/health`` (bounded by ``request_timeout_s``) so a dead server costs one short probe.
    """

    def __init__(
        self,
        journal: Journal,
        client: Any,
        uri: str,
        *,
        backoff: Backoff,
        request_timeout_s: float,
        in_doubt: bool = False,
    ) -> None:
        self.journal, self.client, self.uri = journal, client, uri
        self.backoff = backoff
        self.request_timeout_s = float(request_timeout_s)
        self.in_doubt = in_doubt
        self.report = SendReport()
        self.blocked: str | None = None
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._next_try = 0.0
        self._thread = threading.Thread(target=self._run, name=f"labkit-spool-{journal.key[:14]}", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _idle(self) -> bool:
        return self.journal.pending_count() == 0 or self.blocked is not None

    def drain(self, timeout: float) -> bool:
        """Try now (backoff reset) and wait up to ``timeout`` s for the backlog to go; True when it went."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self.backoff.reset()
            self._next_try = 0.0
            self._cond.notify_all()
            while not (self._idle() and not self._busy):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._cond.wait(min(left, 0.5))
        return self.journal.pending_count() == 0

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the thread after its current request; True when it ended within ``timeout``."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(self.request_timeout_s + 1.0 if timeout is None else timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (self._idle() or time.monotonic() < self._next_try):
                    wait = None if self._idle() else max(0.01, self._next_try - time.monotonic())
                    self._cond.wait(wait)
                if self._stop:
                    return
                self._busy = True
            try:
                self._attempt()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _attempt(self) -> None:
        from labkit.tracking.store import is_reachable

        try:
            if self.failing_since is not None and not is_reachable(self.uri, self.request_timeout_s):
                raise ConnectionError(f"{self.uri} does not answer /health")
            sent = send_pending(self.journal, self.client, in_doubt=self.in_doubt, should_stop=lambda: self._stop)
        except SendError as exc:
            self.in_doubt = True
            self._failed(exc.error)
            return
        except ConnectionError as exc:  # the probe failed: nothing was sent, nothing is in doubt
            self._failed(exc)
            return
        except SpoolBlockedError as exc:
            self.blocked = str(exc)
            log.error("%s; the run's operations stay in %s", exc, self.journal.folder)
            return
        except Exception as exc:  # a bug must not kill the thread silently: keep the spool, report
            self.blocked = f"{type(exc).__name__}: {exc}"
            log.exception("spool %s: sending stopped", self.journal.folder)
            return
        self.in_doubt = False
        self.report.add(sent)
        if self.failing_since is not None:
            log.warning(
                "tracking store %s answers again after %.0f s: sent %d spooled operations of run %s",
                self.uri,
                time.monotonic() - self.failing_since,
                sent.total,
                self.journal.run_id or self.journal.key,
            )
        self.failing_since, self.last_error = None, None
        self.backoff.reset()

    def mark_failing(self, error: BaseException) -> None:
        """The store did not answer before the thread started: first try after the backoff, with a probe."""
        with self._cond:
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        delay = self.backoff.next_delay()
        self._next_try = time.monotonic() + delay
        self.last_error = f"{type(error).__name__}: {str(error)[:300]}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning(
                "tracking store %s is not answering (%s): training goes on, %d operations wait in %s; "
                "retrying in %.1f s (backoff up to %.0f s)",
                self.uri,
                self.last_error,
                self.journal.pending_count(),
                self.journal.folder,
                delay,
                self.backoff.max_s,
            )
        else:
            log.debug("tracking store %s still not answering (%s); next try in %.1f s", self.uri, error, delay)
