"""The tracker interface the runner logs through. MLflow lives behind it (mlflow_tracker.py).

Nothing else in labkit imports mlflow: tests and the core use ``MemoryTracker``,
the runner uses whatever ``tracking.*`` in the config builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """One run's sink for params, metrics, tags and artifacts.

    ``log_metrics`` is called every step: implementations buffer and send in batches,
    so logging costs under 2% of training time. ``flush()`` sends what is buffered;
    ``finish(status)`` flushes and ends the run with status ``FINISHED``, ``FAILED``
    or ``KILLED``.
    """

    run_id: str

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_figure(self, figure: Any, artifact_file: str) -> None: ...

    def flush(self) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class MemoryTracker:
    """A tracker that keeps everything in memory (tests, dry runs)."""

    def __init__(self, run_id: str = "memory") -> None:
        self.run_id = run_id
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.tags: dict[str, str] = {}
        self.artifacts: dict[str, Any] = {}
        self.status: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        for k, v in params.items():
            if k in self.params and self.params[k] != v:
                raise ValueError(f"param {k!r} was logged as {self.params[k]!r}, cannot change it to {v!r}")
            self.params[k] = v

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((int(step), float(v)))

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(path).name if artifact_path is None else f"{artifact_path}/{Path(path).name}"
        self.artifacts[name] = Path(path).read_bytes() if Path(path).is_file() else str(path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.artifacts[artifact_file] = text

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.artifacts[artifact_file] = figure

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        self.status = status
