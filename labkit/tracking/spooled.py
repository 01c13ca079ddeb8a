"""The spooled side of ``MLflowTracker`` (``tracking.spool.enabled``): every write goes through a journal.

``SpooledRun.start`` opens the run: online, it creates (or reopens) the MLflow run at once, with
every request bounded by ``request_timeout_s``, and names the spool after the MLflow run id;
when the store does not answer (or ``offline``), the run gets a local key ``local-<hex>`` that
stays its ``run_id`` for the whole run (checkpoint folders and ``trainer.resume`` use it), and the
MLflow run is created later, by the sender thread when the server answers or by ``labkit sync``,
with its original start time; ``mlflow_run_id`` then gives the store's id. The training loop only
appends to the journal; a :class:`~labkit.tracking.sender.Sender` thread sends.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from labkit.tracking.sender import Backoff, Sender, create_run
from labkit.tracking.spool import JOURNAL, Journal, new_key
from labkit.tracking.spool_settings import SpoolSettings, default_spool_dir

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class SpooledRun:
    """One run's journal, its sender thread and what the tracker knows about the run."""

    def __init__(self, settings: SpoolSettings, uri: str, journal: Journal, client: Any, limits: ExitStack) -> None:
        self.settings, self.uri, self.journal = settings, uri, journal
        self._client = client
        self._limits = limits
        self.sender: Sender | None = None
        self.run_id = journal.key
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.artifact_uri: str | None = None
        self.params: dict[str, str] = {}
        self.closed = False

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        settings: SpoolSettings,
        uri: str,
        *,
        experiment: str,
        run_name: str,
        run_id: str | None,
        tags: dict[str, str],
        artifact_location: str | None,
    ) -> SpooledRun:
        """Open a new run (``run_id=None``) or continue ``run_id`` (its spool, else the store's run)."""
        from labkit.tracking.store import http_limits, is_reachable, make_client

        if not isinstance(experiment, str) or not experiment:  # checked now: an offline run meets the store late
            raise ValueError(f"MLflowTracker: expected a non-empty experiment name, got {experiment!r}")
        root = Path(settings.dir).expanduser().resolve() if settings.dir else default_spool_dir(uri)
        limits = ExitStack()
        limits.enter_context(http_limits(settings.request_timeout_s))
        try:
            online = not settings.offline and is_reachable(uri, settings.request_timeout_s)
            client = None if settings.offline else make_client(uri, check=False)
            if run_id is None:
                run, in_doubt = cls._new(
                    settings, uri, root, client, online, experiment, run_name, tags, artifact_location
                )
            else:
                run, in_doubt = cls._continue(settings, uri, root, client, online, run_id)
            run._limits = limits
        except BaseException:
            limits.close()
            raise
        if not settings.offline:
            run.sender = Sender(
                run.journal,
                client,
                uri,
                backoff=Backoff(settings.backoff_min_s, settings.backoff_max_s),
                request_timeout_s=settings.request_timeout_s,
                in_doubt=in_doubt,
            )
            if not online:
                run.sender.mark_failing(ConnectionError(f"{uri} did not answer when the run started"))
            run.sender.start()
        return run

    @classmethod
    def _new(
        cls,
        settings: SpoolSettings,
        uri: str,
        root: Path,
        client: Any,
        online: bool,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        artifact_location: str | None,
    ) -> tuple[SpooledRun, bool]:
        key = new_key()
        first = {
            "op": "create",
            "uri": uri,
            "experiment": experiment,
            "run_name": run_name,
            "tags": tags,
            "start_time": _now_ms(),
            "artifact_location": artifact_location,
        }
        store_run = None
        in_doubt = False
        if online:
            try:
                store_run = client.get_run(create_run(client, key, first))
            except Exception as exc:
                from labkit.tracking.sender import is_permanent

                if is_permanent(exc):
                    raise  # a deleted experiment, a refused name: the user's to fix, now
                in_doubt = True  # the store may have created it: the sender looks before creating again
                log.warning("tracking store %s failed while creating the run (%s): spooling it", uri, exc)
        if store_run is not None:
            journal = Journal.create(root, store_run.info.run_id, first, uri=uri)
            journal.ack(1, run_id=store_run.info.run_id, store_uri=uri)
        else:
            journal = Journal.create(root, key, first, uri=uri)
        run = cls(settings, uri, journal, client, ExitStack())
        run.run_name = run_name
        if store_run is not None:
            run.experiment_id = store_run.info.experiment_id
            run.artifact_uri = store_run.info.artifact_uri
        elif settings.offline:
            log.info("run %s (%s) is recorded offline in %s", run_name, key, journal.folder)
        else:
            log.warning("run %s (%s) starts in spool %s: %s did not answer", run_name, key, journal.folder, uri)
        return run, in_doubt

    @classmethod
    def _continue(
        cls, settings: SpoolSettings, uri: str, root: Path, client: Any, online: bool, run_id: str
    ) -> tuple[SpooledRun, bool]:
        folder = root / run_id
        if (folder / JOURNAL).is_file():
            journal = Journal.open(folder)
            params: dict[str, str] = {}
            run_name = None
            for record in journal.records():
                if record["op"] == "params":
                    params.update(record["params"])
                elif record["op"] == "create":
                    run_name = record["run_name"]
            journal.append({"op": "resume", "run_id": journal.run_id, "uri": uri})
            run = cls(settings, uri, journal, client, ExitStack())
            run.params, run.run_name = params, run_name or run_id
            return run, True  # a process may have died half-way through sending: check before resending
        if run_id.startswith("local-"):
            raise ValueError(
                f"MLflowTracker: no spool for run {run_id!r} in {root}; expected the spool folder of that offline run "
                "(set tracking.spool.dir to where the run was spooled)"
            )
        store_run = None
        if online:
            from mlflow.exceptions import MlflowException

            try:
                store_run = client.get_run(run_id)
            except MlflowException as exc:
                if exc.get_http_status_code() == 404 or "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
                    raise ValueError(
                        f"MLflowTracker: no run with run_id {run_id!r} in {uri}; expected an existing run"
                    ) from exc
                log.warning("could not read run %s from %s (%s): params are checked when it is sent", run_id, uri, exc)
        first = {"op": "resume", "run_id": run_id, "uri": uri}
        journal = Journal.create(root, run_id, first, run_id=run_id, uri=uri, store_uri=uri)
        run = cls(settings, uri, journal, client, ExitStack())
        if store_run is not None:
            run.params = dict(store_run.data.params)
            run.run_name = store_run.info.run_name
            run.experiment_id = store_run.info.experiment_id
            run.artifact_uri = store_run.info.artifact_uri
        else:
            run.run_name = run_id
        return run, False

    # ---- the store's view ----------------------------------------------------------------------

    @property
    def mlflow_run_id(self) -> str | None:
        """The store's id of this run, once it exists there (None while only spooled)."""
        return self.journal.run_id

    def store_client(self) -> Any:
        """An MLflow client on the store (made on first use for offline runs)."""
        if self._client is None:
            from labkit.tracking.store import make_client

            self._client = make_client(self.uri, check=False)
        return self._client

    # ---- writing -----------------------------------------------------------------------------

    def append(self, op: dict[str, Any]) -> None:
        if self.closed:
            raise RuntimeError(f"run {self.run_id} has finished; its spool {self.journal.folder} takes no more writes")
        self.journal.append(op)
        self.wake()

    def artifact(self, path: str | Path, artifact_path: str | None) -> None:
        if self.closed:
            raise RuntimeError(f"run {self.run_id} has finished; its spool {self.journal.folder} takes no more writes")
        self.journal.add_artifact(path, artifact_path)
        self.wake()

    def text(self, text: str, artifact_file: str) -> None:
        if self.closed:
            raise RuntimeError(f"run {self.run_id} has finished; its spool {self.journal.folder} takes no more writes")
        self.journal.add_text(text, artifact_file)
        self.wake()

    def wake(self) -> None:
        if self.sender is not None:
            self.sender.notify()

    def sync(self) -> None:
        """A flush point: fsync the journal and wake the sender."""
        self.journal.sync()
        self.wake()

    def finish(self, status: str) -> int:
        """Append ``end``, wait up to ``max_wait_s`` for the backlog; the number of operations left spooled."""
        self.append({"op": "end", "status": status, "end_time": _now_ms()})
        self.journal.sync()
        self.closed = True
        stopped = True
        if self.sender is not None:
            self.sender.drain(self.settings.max_wait_s)
            stopped = self.sender.stop()
        left = self.journal.pending_count()
        folder, root = self.journal.folder, self.journal.folder.parent
        if self.sender is not None and self.sender.blocked:
            log.error("run %s: %s; fix it, then `labkit sync --spool %s`", self.run_id, self.sender.blocked, root)
        elif left and self.settings.offline:
            log.info(
                "run %s was recorded offline in %s: send it with `labkit sync --spool %s`", self.run_id, folder, root
            )
        elif left:
            log.warning(
                "run %s: %d operations could not be sent to %s within %.0f s (%s); they stay in %s: send them "
                "with `labkit sync --spool %s`",
                self.run_id,
                left,
                self.uri,
                self.settings.max_wait_s,
                self.sender.last_error if self.sender is not None else "",
                folder,
                root,
            )
        if stopped:  # a request still in flight keeps the lock until the process ends
            self.journal.close()
            self._limits.close()
        return left


class SpoolClient:
    """``tracker.client`` of a spooled tracker: artifact writes about its own run go to the spool,
    reads about it go to the store under the store's run id; everything else goes to the store as is.

    (``log_pyfunc_model`` and checkpoint fetching use ``tracker.client`` directly.)
    """

    def __init__(self, run: SpooledRun) -> None:
        self._run = run

    @property
    def tracking_uri(self) -> str:
        return self._run.uri

    def _own(self, run_id: str) -> bool:
        return run_id == self._run.run_id

    def _store_id(self, run_id: str) -> str:
        if not self._own(run_id):
            return run_id
        store_id = self._run.mlflow_run_id
        if store_id is None:
            raise LookupError(
                f"run {run_id} exists only in the spool {self._run.journal.folder} so far; the store "
                f"{self._run.uri} has not been reached (`labkit sync` creates it)"
            )
        return store_id

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kwargs: Any) -> None:
        """Journal params, tags and metrics (MLflow entities) as one operation each."""
        if not self._own(run_id):
            return self._run.store_client().log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)
        if params:
            self._run.append({"op": "params", "params": {p.key: p.value for p in params}})
        if tags:
            self._run.append({"op": "tags", "tags": {t.key: t.value for t in tags}})
        if metrics:
            rows = [[m.key, m.value, m.timestamp, m.step] for m in metrics]
            self._run.append({"op": "metrics", "metrics": rows})

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        if not self._own(run_id):
            return self._run.store_client().log_artifact(run_id, local_path, artifact_path)
        self._run.artifact(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        """Like MLflow's: the *contents* of ``local_dir`` land under ``artifact_path``."""
        if not self._own(run_id):
            return self._run.store_client().log_artifacts(run_id, local_dir, artifact_path)
        for item in sorted(Path(local_dir).iterdir()):
            self._run.artifact(item, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if not self._own(run_id):
            return self._run.store_client().log_text(run_id, text, artifact_file)
        self._run.text(text, artifact_file)

    # the id first: an offline run must not make (and so create) the store just to be told it is not there

    def get_run(self, run_id: str) -> Any:
        store_id = self._store_id(run_id)
        return self._run.store_client().get_run(store_id)

    def get_metric_history(self, run_id: str, key: str) -> Any:
        store_id = self._store_id(run_id)
        return self._run.store_client().get_metric_history(store_id, key)

    def list_artifacts(self, run_id: str, path: str | None = None) -> Any:
        store_id = self._store_id(run_id)
        return self._run.store_client().list_artifacts(store_id, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        store_id = self._store_id(run_id)
        return self._run.store_client().download_artifacts(store_id, path, dst_path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run.store_client(), name)
