"""Hydra sweeps as MLflow parent/child runs: ``MLflowSweepCallback`` and ``sweep_context``.

Register the callback in the config (``hydra.callbacks``)::

    hydra:
      callbacks:
        mlflow_sweep:
          _target_: labkit.runner.sweep.MLflowSweepCallback

With ``--multirun`` it then

1. ``on_multirun_start``: creates the store, its schema and the experiment before any job
   runs (parallel jobs on one SQLite file race otherwise), opens the parent run and writes
   ``<sweep dir>/labkit_sweep.json`` (parent run id, absolute tracking URI, experiment);
2. each job's runner calls :func:`sweep_context` and opens its tracker with
   ``parent_run_id``, ``run_name`` (from ``hydra.job.override_dirname``) and the tags it
   returns; a job that raised ends its run FAILED (``record_failure``) and returns normally;
3. ``on_multirun_end``: reads the children back from MLflow, logs the trials table
   (``sweep/trials.csv``, ``sweep/trials.md``; also written to the sweep dir), tags the
   parent with the best trial (``labkit.best.*``, metric ``best/<monitor>``) and ends it FINISHED.

SIGINT or SIGTERM to the launching process stops the sweep (``labkit.runner.sweep_stop``): the
running trials end KILLED with a checkpoint, no new trial starts, and the parent ends KILLED
(tag ``labkit.sweep.stopped_by``) with the trials table; the command exits with 128 + the signal.

The id travels in a file, not in ``MLFLOW_RUN_ID`` (which would override ``parent_run_id``
in MLflow's fluent API) and not through any environment variable.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import signal
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from labkit.runner.sweep_seeds import (
    best_config,
    by_config,
    by_config_csv,
    by_config_figure,
    by_config_markdown,
    csv_table,
    markdown_cell,
)
from labkit.runner.sweep_stop import SweepStop, stop_requested

log = logging.getLogger(__name__)

SWEEP_FILE = "labkit_sweep.json"
LOWER_IS_BETTER = ("loss", "error", "perplexity", "mse", "mae")
COLUMNS = ("trial", "run_name", "status", "overrides", "monitor", "value", "error", "run_id")


def _tracking_node(config: DictConfig) -> dict[str, Any]:
    node = config.get("tracking") if isinstance(config, DictConfig) else None
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) or {}  # type: ignore[return-value]


def _hydra_value(config: DictConfig, path: str, default: Any = None) -> Any:
    try:
        value = OmegaConf.select(config, path, default=default)
    except Exception:  # an interpolation that cannot resolve outside a job
        return default
    return default if value is None else value


def sweep_context() -> dict[str, Any] | None:
    """What a multirun job needs to open its tracker under the sweep's parent run, else None.

    Returns ``{"parent_run_id", "tracking_uri", "experiment", "run_name", "overrides",
    "monitor", "mode", "sweep_dir"}`` inside a Hydra multirun job whose sweep the callback opened;
    ``None`` in a single run, outside Hydra, or when the callback is not registered.
    ``run_name`` is ``hydra.job.override_dirname`` (``job<N>`` when there are no overrides).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    path = Path(str(hydra.sweep.dir))
    if not path.is_absolute():
        path = Path(str(hydra.runtime.cwd)) / path
    sweep_dir, path = path, path / SWEEP_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    overrides = str(hydra.job.override_dirname or "")
    return {
        **info,
        "sweep_dir": str(sweep_dir),
        "run_name": overrides or f"job{hydra.job.num}",
        "overrides": overrides,
    }


def _trial_value(run: Any, monitor: str | None) -> float | None:
    if not monitor:
        return None
    value = run.data.metrics.get(monitor)
    return None if value is None or math.isnan(value) else float(value)


def sweep_monitor(runs: list[Any], monitor: str | None = None, mode: str | None = None) -> tuple[str | None, str]:
    """The metric that ranks the trials and its direction.

    ``monitor`` None -> the ``labkit.monitor`` tag most children carry; ``mode`` None -> the
    ``labkit.monitor_mode`` tag of a child monitoring that metric, else ``min`` for loss-like
    names (loss, error, perplexity ...) and ``max`` otherwise.
    """
    if monitor is None:
        tagged = [r.data.tags["labkit.monitor"] for r in runs if r.data.tags.get("labkit.monitor")]
        monitor = max(set(tagged), key=tagged.count) if tagged else None
    if mode is None and monitor is not None:
        modes = [
            r.data.tags.get("labkit.monitor_mode")
            for r in runs
            if r.data.tags.get("labkit.monitor") == monitor and r.data.tags.get("labkit.monitor_mode") in ("min", "max")
        ]
        mode = modes[0] if modes else ("min" if any(w in monitor.lower() for w in LOWER_IS_BETTER) else "max")
    return monitor, mode or "min"


def trials_table(runs: list[Any], monitor: str | None) -> list[dict[str, Any]]:
    """One row per child run (oldest first): run name, status, overrides, the ``monitor`` value, error."""
    rows = []
    for index, run in enumerate(sorted(runs, key=lambda r: r.info.start_time or 0)):
        tags = run.data.tags
        rows.append(
            {
                "trial": index,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "overrides": tags.get("labkit.overrides", run.info.run_name),
                "monitor": monitor or "",
                "value": _trial_value(run, monitor),
                "error": tags.get("labkit.error", ""),
                "run_id": run.info.run_id,
            }
        )
    return rows


def best_trial(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The FINISHED row with the lowest (``mode="min"``) or highest (``"max"``) value, or None."""
    if mode not in ("min", "max"):
        raise ValueError(f"sweep: expected mode 'min' or 'max', got {mode!r}")
    done = [r for r in rows if r["status"] == "FINISHED" and r["value"] is not None]
    if not done:
        return None
    return (min if mode == "min" else max)(done, key=lambda r: r["value"])


def to_csv(rows: list[dict[str, Any]]) -> str:
    return csv_table(rows, COLUMNS)


def to_markdown(rows: list[dict[str, Any]], best: dict[str, Any] | None) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        mark = " **(best)**" if best is not None and row["run_id"] == best["run_id"] else ""
        cells = (markdown_cell(row[c]) + (mark if c == "run_name" else "") for c in COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class MLflowSweepCallback(Callback):
    """Open an MLflow parent run for a Hydra multirun and summarise its trials at the end.

    Args:
        uri: tracking URI; None -> ``tracking.uri`` of the config, else ``sqlite:///<cwd>/mlflow.db``.
        experiment: None -> ``tracking.experiment`` of the config, else ``"labkit"``.
        name: the parent run's name; None -> ``sweep-<date>-<time>`` from the sweep dir.
        monitor: the metric that ranks trials; None -> the config's ``optimized_metric``, else
            the children's ``labkit.monitor`` tag (see :func:`sweep_monitor`).
        mode: ``"min"`` or ``"max"``; None -> from the children's tags or the metric's name.
    """

    def __init__(
        self,
        uri: str | None = None,
        experiment: str | None = None,
        name: str | None = None,
        monitor: str | None = None,
        mode: str | None = None,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"MLflowSweepCallback: expected mode 'min', 'max' or null, got {mode!r}")
        self.uri, self.experiment, self.name, self.monitor, self.mode = uri, experiment, name, monitor, mode
        self.tracker: Any = None
        self.sweep_dir: Path | None = None
        self._monitor = monitor
        self._stop: SweepStop | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the parent run's tracker: it belongs to the launching process.

        Process launchers (submitit, joblib) pickle Hydra's callbacks into every job after
        ``on_multirun_start`` opened the parent. A spooled tracker holds a lock and a thread
        (unpicklable); any copy would be a second handle on the parent run. Jobs find the parent
        through the sweep file (:func:`sweep_context`), never through this object.
        """
        state = self.__dict__.copy()
        state["tracker"] = None
        state["_stop"] = None  # the launching process's signal handler
        return state

    def _sweep_dir(self, config: DictConfig) -> Path:
        cwd = Path(str(_hydra_value(config, "hydra.runtime.cwd", os.getcwd())))
        path = Path(str(_hydra_value(config, "hydra.sweep.dir", "multirun")))
        return path if path.is_absolute() else cwd / path

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from labkit.tracking.mlflow_tracker import MLflowTracker
        from labkit.tracking.store import resolve_tracking_uri

        tracking = _tracking_node(config)
        if tracking and "MLflowTracker" not in str(tracking.get("_target_", "MLflowTracker")):
            log.info("sweep: tracking is %s, not MLflow: no parent run", tracking.get("_target_"))
            return
        # the runner keeps the embedded store in work_dir (default: the launch directory)
        cwd = str(_hydra_value(config, "hydra.runtime.cwd", os.getcwd()))
        work_dir = _hydra_value(config, "work_dir")
        uri = resolve_tracking_uri(self.uri or tracking.get("uri"), cwd=work_dir or cwd)
        self._monitor = self.monitor or _hydra_value(config, "optimized_metric")
        experiment = self.experiment or tracking.get("experiment") or "labkit"
        self.sweep_dir = self._sweep_dir(config)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = " ".join(str(o) for o in _hydra_value(config, "hydra.overrides.task", []))
        self.tracker = MLflowTracker(
            uri=uri,
            experiment=experiment,
            run_name=self.name or f"sweep-{self.sweep_dir.parent.name}-{self.sweep_dir.name}",
            artifact_location=tracking.get("artifact_location"),
            tags={"labkit.sweep.dir": str(self.sweep_dir), "labkit.sweep.overrides": overrides},
        )
        info = {
            "parent_run_id": self.tracker.run_id,
            "tracking_uri": uri,
            "experiment": experiment,
            "monitor": self._monitor,
            "mode": self.mode,
        }
        (self.sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=2))
        log.info("sweep: parent run %s (%s) in %s", self.tracker.run_name, self.tracker.run_id, uri)
        # Hydra skips on_multirun_end when the sweeper raises: never leave the parent RUNNING
        atexit.register(self._end_unfinished, self.tracker)
        launcher = str(_hydra_value(config, "hydra.launcher._target_", ""))
        # SIGINT/SIGTERM: stop every trial cleanly, start no new one
        self._stop = SweepStop(self.sweep_dir, in_process=launcher.endswith(".BasicLauncher"))
        self._stop.install()

    def _end_unfinished(self, tracker: Any) -> None:
        if self.tracker is tracker and not tracker.finished:
            self.tracker = None
            stopped = stop_requested(self.sweep_dir)
            try:  # the trials that ran, and no child left RUNNING
                self._summarise(tracker, orphan_status="KILLED" if stopped else "FAILED")
            except Exception as exc:
                log.error("sweep: could not summarise the trials: %s: %s", type(exc).__name__, exc)
            if stopped:
                tracker.set_tags({"labkit.sweep.stopped_by": stopped})
                tracker.finish("KILLED")
                return
            tracker.set_tags({"labkit.error": "the sweep stopped before its end (see the launch's log)"})
            tracker.finish("FAILED")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._stop is not None:
            self._stop.restore()
        if self.tracker is None:
            return
        tracker, self.tracker = self.tracker, None
        stopped = stop_requested(self.sweep_dir)
        try:
            self._summarise(tracker, orphan_status="KILLED" if stopped else "FAILED")
        except BaseException:
            tracker.finish("FAILED")
            raise
        if not stopped:
            tracker.finish("FINISHED")
            return
        tracker.set_tags({"labkit.sweep.stopped_by": stopped})
        tracker.finish("KILLED")
        log.warning("sweep stopped (%s): parent run %s KILLED; the stopped trials resume with trainer.resume=RUN_ID",
                    stopped, tracker.run_id)  # fmt: skip
        signum = getattr(signal.Signals, stopped, signal.SIGINT)
        raise SystemExit(128 + int(signum))

    def _summarise(self, tracker: Any, orphan_status: str = "FAILED") -> None:
        from labkit.tracking.mlflow_tracker import PARENT_TAG

        def children() -> list[Any]:
            query = f"tags.`{PARENT_TAG}` = '{tracker.run_id}'"
            return tracker.client.search_runs([tracker.experiment_id], filter_string=query, max_results=50000)

        runs = children()
        orphans = [run for run in runs if run.info.status == "RUNNING"]
        for run in orphans:  # a job that died without ending its run (a killed worker) leaves it RUNNING
            tracker.client.set_tag(run.info.run_id, "labkit.error", "the job ended without ending its run")
            tracker.client.set_terminated(run.info.run_id, orphan_status)
        if orphans:
            runs = children()
        monitor, mode = sweep_monitor(runs, self._monitor, self.mode)
        rows = trials_table(runs, monitor)
        best = best_trial(rows, mode) if monitor else None
        csv_text, md_text = to_csv(rows), to_markdown(rows, best)
        tracker.log_text(csv_text, "sweep/trials.csv")
        tracker.log_text(md_text, "sweep/trials.md")
        if self.sweep_dir is not None:
            (self.sweep_dir / "trials.csv").write_text(csv_text)
            (self.sweep_dir / "trials.md").write_text(md_text)
        failed = sum(r["status"] != "FINISHED" for r in rows)
        tags = {"labkit.sweep.trials": str(len(rows)), "labkit.sweep.failed": str(failed)}
        if monitor:
            tags.update({"labkit.monitor": monitor, "labkit.monitor_mode": mode})
        groups = by_config(rows) if monitor else []
        if groups:  # the same configurations over several seeds: their means
            top = best_config(groups, mode)
            by_csv, by_md = by_config_csv(groups), by_config_markdown(groups, top, monitor)
            tracker.log_text(by_csv, "sweep/by_config.csv")
            tracker.log_text(by_md, "sweep/by_config.md")
            tracker.log_figure(by_config_figure(groups, top, monitor), "sweep/by_config.png")
            if self.sweep_dir is not None:
                (self.sweep_dir / "by_config.csv").write_text(by_csv)
                (self.sweep_dir / "by_config.md").write_text(by_md)
            if top is not None:
                tags.update(
                    {"labkit.best_config.overrides": top["config"], "labkit.best_config.mean": repr(top["mean"])}
                )
        if best is not None:
            tags.update(
                {
                    "labkit.best.run_id": best["run_id"],
                    "labkit.best.run_name": best["run_name"],
                    "labkit.best.overrides": best["overrides"],
                    "labkit.best.value": repr(best["value"]),
                }
            )
            tracker.log_metrics({f"best/{monitor}": best["value"]}, step=0)
        tracker.set_tags(tags)
        log.info("sweep: %d trials, %d not finished, best %s", len(rows), failed, best and best["run_name"])
