"""``MLflowTracker``: the Tracker protocol on an MLflow store (with store.py, where labkit imports mlflow).

mlflow is imported when a tracker (or client) is created, never at module import: it
costs about 2 s and ``labkit --help`` must stay fast. The tracker talks to
``MlflowClient`` directly, never to MLflow's global "active run", so several trackers
(a sweep's parent and its trials) can live in one process.

    tracker = MLflowTracker(experiment="digits", run_name="lr=0.01")
    tracker.log_params(flatten_config(cfg))
    for step in ...:
        tracker.log_metrics({"train/loss": loss}, step)   # buffered, sent by log_batch
    tracker.finish("FINISHED")

Stores: ``None`` means ``sqlite:///<abs cwd>/mlflow.db`` with artifacts in ``<abs cwd>/mlruns``;
relative SQLite paths are made absolute (Hydra jobs run in other directories);
``http(s)://`` servers are health-checked with a short timeout first (``store.py``): an
unreachable server fails fast, naming the URI, unless spooling is on.

Spooling (``spool={"enabled": True, ...}``, ``tracking.spool.*``): every write is journaled in a
local folder and sent by a background thread (``spooled.py``), so a tracking outage never stops
training and loses nothing; ``labkit sync`` sends what a run left behind. See docs/tracking.md.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from pathlib import Path
from typing import Any

from labkit.tracking.params import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
    batched,
    default_run_name,
    flatten_config,
    sanitize_key,
    shorten_name,
    system_tags,
    truncate_value,
)
from labkit.tracking.spool_settings import SpoolSettings
from labkit.tracking.store import ensure_experiment, make_client, resolve_tracking_uri, store_lock

log = logging.getLogger(__name__)

STATUSES = ("FINISHED", "FAILED", "KILLED")
PARENT_TAG = "mlflow.parentRunId"


# ---- the tracker -------------------------------------------------------------------------

_ACTIVE: dict[int, MLflowTracker] = {}
_ATEXIT_REGISTERED = False


def _end_active_runs() -> None:
    """atexit: a run still open when the process exits ended by an exception (FAILED) or not (KILLED)."""
    last = getattr(sys, "last_value", None)
    status = "KILLED" if last is None or isinstance(last, KeyboardInterrupt) else "FAILED"
    for tracker in list(_ACTIVE.values()):
        try:
            tracker.finish(status)
        except Exception as exc:  # the process is exiting: report, never raise
            log.warning("could not end MLflow run %s as %s: %s", tracker.run_id, status, exc)


class MLflowTracker:
    """One MLflow run behind the Tracker protocol, with buffered metrics.

    Args:
        uri: tracking URI; None -> ``sqlite:///<abs cwd>/mlflow.db`` (see :func:`resolve_tracking_uri`).
        experiment: experiment name, created if missing.
        run_name: the run's name; None -> ``run-YYYYmmdd-HHMMSS-xxxx`` (not MLflow's random
            names, which repeat once the runner has seeded Python's ``random``).
        run_id: reopen this run (resume): metrics append, params may be re-logged only
            with the values they already have.
        parent_run_id: nest the new run under this one (a sweep's parent).
        artifact_location: where a new experiment keeps artifacts; None -> ``mlruns/<experiment>``
            next to the SQLite file (the server's default for http stores).
        tags: extra tags (``labkit.device`` ...), added to the system tags
            (:func:`labkit.tracking.params.system_tags`).
        flush_every_s, flush_every_n: send buffered metrics once this many seconds have
            passed or this many values are waiting (and always at ``flush``/``finish``).
        spool: spooling settings (:class:`~labkit.tracking.spool.SpoolSettings`, a mapping of them,
            True, or None/False for none). With spooling, ``run_id`` is the MLflow run id when the
            store answered at the start, else the local key ``local-<hex>`` (``mlflow_run_id`` is the
            store's id once the run exists there); flushes never wait for the network.
    """

    def __init__(
        self,
        uri: str | None = None,
        experiment: str = "labkit",
        run_name: str | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        artifact_location: str | None = None,
        tags: dict[str, Any] | None = None,
        flush_every_s: float = 5.0,
        flush_every_n: int = 1000,
        spool: SpoolSettings | dict[str, Any] | bool | None = None,
    ) -> None:
        if flush_every_n <= 0 or flush_every_s < 0:
            raise ValueError(
                f"MLflowTracker: expected flush_every_n > 0 and flush_every_s >= 0, got {flush_every_n}, {flush_every_s}"
            )
        self.uri = resolve_tracking_uri(uri)
        settings = SpoolSettings.parse(spool)
        self.flush_every_s = float(flush_every_s)
        self.flush_every_n = int(flush_every_n)
        self._buffer: list[tuple[str, float, int, int]] = []
        self._keys: dict[str, str] = {}
        self._last_flush = time.monotonic()
        self._finished = False
        extra = {str(k): str(v) for k, v in (tags or {}).items()}
        self._spool: Any = None
        if settings is not None:
            self._start_spooled(settings, experiment, run_name, run_id, parent_run_id, artifact_location, extra)
            return
        self.client = make_client(self.uri)
        if run_id is not None:
            run = self._reopen(run_id)
            extra["labkit.resumed"] = "true"
        else:
            with store_lock(self.uri):
                self.experiment_id = ensure_experiment(self.client, experiment, artifact_location)
            all_tags = {**system_tags(), **extra}
            if parent_run_id is not None:
                all_tags[PARENT_TAG] = str(parent_run_id)
            run = self.client.create_run(
                self.experiment_id,
                tags={k: truncate_value(v, MAX_TAG_VAL_LENGTH) for k, v in all_tags.items()},
                run_name=shorten_name(run_name or default_run_name()),
            )
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        self.artifact_uri: str = run.info.artifact_uri
        self._params: dict[str, str] = dict(run.data.params)
        if run_id is not None:
            self.set_tags(extra)
        _register(self)
        log.info("MLflow run %s (%s) in %s", self.run_name, self.run_id, self.uri)

    def _start_spooled(
        self,
        settings: SpoolSettings,
        experiment: str,
        run_name: str | None,
        run_id: str | None,
        parent_run_id: str | None,
        artifact_location: str | None,
        extra: dict[str, str],
    ) -> None:
        from labkit.tracking.spooled import SpoolClient, SpooledRun

        all_tags = {**system_tags(), **extra}
        if parent_run_id is not None:
            all_tags[PARENT_TAG] = str(parent_run_id)
        self._spool = SpooledRun.start(
            settings,
            self.uri,
            experiment=experiment,
            run_name=shorten_name(run_name or default_run_name()),
            run_id=run_id,
            tags={k: truncate_value(v, MAX_TAG_VAL_LENGTH) for k, v in all_tags.items()},
            artifact_location=artifact_location,
        )
        self.client = SpoolClient(self._spool)
        self.run_id = self._spool.run_id
        self.run_name = self._spool.run_name or self.run_id
        self.artifact_uri = self._spool.artifact_uri
        self.experiment_id = self._spool.experiment_id
        self._params = dict(self._spool.params)
        if run_id is not None:
            self.set_tags({**extra, "labkit.resumed": "true"})
        _register(self)
        log.info("MLflow run %s (%s) for %s, spooled in %s", self.run_name, self.run_id, self.uri, self.spool_dir)

    @property
    def mlflow_run_id(self) -> str | None:
        """The store's id of the run: ``run_id``, or for a spooled run None until the store has created it."""
        return self.run_id if self._spool is None else self._spool.mlflow_run_id

    @property
    def spool_dir(self) -> Path | None:
        """The run's spool folder (None without spooling)."""
        return None if self._spool is None else self._spool.journal.folder

    def _reopen(self, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            raise ValueError(
                f"MLflowTracker: no run with run_id {run_id!r} in {self.uri}; expected an existing run"
            ) from exc
        self.experiment_id = run.info.experiment_id
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        return run

    # ---- params, metrics, tags ------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (nested dicts are flattened: ``{"optim": {"lr": 1e-3}} -> optim.lr=0.001``).

        Raises:
            ValueError: a param already logged in this run with another value.
        """
        from mlflow.entities import Param

        new: dict[str, str] = {}
        for key, value in flatten_config(params).items():
            old = self._params.get(key)
            if old is None:
                new[key] = value
            elif old != value:
                raise ValueError(
                    f"MLflowTracker: param {key!r} of run {self.run_id} was logged as {old!r}; params cannot "
                    f"change, expected {old!r}, got {value!r} (start a new run instead of resuming this one)"
                )
        for chunk in batched(new.items(), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in chunk])
        self._params.update(new)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step``; sent by ``log_batch`` when a flush threshold is hit."""
        timestamp = int(time.time() * 1000)
        step = int(step)
        for key, value in metrics.items():
            name = self._keys.get(key)
            if name is None:
                name = self._keys[key] = sanitize_key(key)
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"MLflowTracker.log_metrics: metric {key!r} expected a number, got {value!r}") from exc
            self._buffer.append((name, number, timestamp, step))
        if len(self._buffer) >= self.flush_every_n or time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics, at most ``MAX_METRICS_PER_BATCH`` per call."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            if self._spool is not None and not self._spool.closed:
                self._spool.sync()
            return
        from mlflow.entities import Metric

        pending, self._buffer = self._buffer, []
        sent = 0
        try:
            for chunk in batched(pending, MAX_METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in chunk])
                sent += len(chunk)
        except BaseException:
            self._buffer = pending[sent:] + self._buffer  # keep what did not go, for the next try
            raise
        if self._spool is not None:
            self._spool.sync()  # a flush point: fsync the journal, wake the sender

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [(sanitize_key(str(k)), truncate_value(str(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        for chunk in batched(items, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in chunk])

    # ---- artifacts ------------------------------------------------------------------------

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file (or a whole directory) under ``artifact_path``."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"MLflowTracker.log_artifact: expected an existing file or directory, got {path}")
        if path.is_dir():
            sub = path.name if artifact_path is None else f"{artifact_path}/{path.name}"
            self.client.log_artifacts(self.run_id, str(path), sub)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure as PNG (or the format ``artifact_file``'s suffix names)."""
        import tempfile

        if not hasattr(figure, "savefig"):
            raise TypeError(f"MLflowTracker.log_figure: expected a matplotlib Figure, got {type(figure).__name__}")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(artifact_file).name
            if not local.suffix:
                local = local.with_suffix(".png")
            figure.savefig(local, dpi=100, bbox_inches="tight")
            parent = str(Path(artifact_file).parent)
            self.client.log_artifact(self.run_id, str(local), None if parent in ("", ".") else parent)

    def log_dict_yaml(self, data: dict[str, Any], artifact_file: str) -> None:
        """Write plain data (dicts, lists, numbers, strings) as a YAML artifact, keys in order."""
        import yaml

        self.log_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), artifact_file)

    # ---- ending ---------------------------------------------------------------------------

    def finish(self, status: str = "FINISHED") -> None:
        """Flush and end the run as ``FINISHED``, ``FAILED`` or ``KILLED`` (a second call does nothing)."""
        if status not in STATUSES:
            raise ValueError(f"MLflowTracker.finish: expected status in {list(STATUSES)}, got {status!r}")
        if self._finished:
            return
        self._finished = True
        _ACTIVE.pop(id(self), None)
        try:
            self.flush()
        finally:
            if self._spool is not None:
                self._spool.finish(status)
            else:
                self.client.set_terminated(self.run_id, status)

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> MLflowTracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        else:
            self.finish("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def __repr__(self) -> str:
        return f"MLflowTracker(run_id={self.run_id!r}, run_name={self.run_name!r}, uri={self.uri!r})"


def _register(tracker: MLflowTracker) -> None:
    global _ATEXIT_REGISTERED
    _ACTIVE[id(tracker)] = tracker
    if not _ATEXIT_REGISTERED:
        # registered after mlflow's own handlers, so it runs before them (atexit is LIFO)
        atexit.register(_end_active_runs)
        _ATEXIT_REGISTERED = True


def record_failure(tracker: Any, error: BaseException, status: str = "FAILED") -> None:
    """End ``tracker``'s run after ``error``: tags ``labkit.error`` / ``labkit.error_type``, ``error.txt``.

    Works on any Tracker (MemoryTracker too). The runner calls it in its ``except``
    branch, so a failed trial is recorded and a sweep goes on.
    """
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for action in (
        lambda: tracker.set_tags({"labkit.error_type": type(error).__name__, "labkit.error": str(error)[:1000]}),
        lambda: tracker.log_text(text, "error.txt"),
    ):
        try:
            action()
        except Exception as exc:  # recording the failure must not hide the original error
            log.warning("could not record the failure of run %s: %s", getattr(tracker, "run_id", "?"), exc)
    tracker.finish(status)
