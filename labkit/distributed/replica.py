"""What ranks other than 0 record: nothing. Rank 0 alone logs the run and writes its checkpoints.

``ReplicaTracker`` stands in for the tracker on ranks > 0 (it carries rank 0's run id, so
checkpoint folders and messages name the same run) and ``ReplicaCheckpointStore`` for the
checkpoint store: it knows the same paths and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.runner.checkpointing import CheckpointStore


class ReplicaTracker:
    """A tracker that drops everything: the run of a rank > 0 is recorded by rank 0."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.status: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        self.status = status


class ReplicaCheckpointStore(CheckpointStore):
    """Rank 0's checkpoint folder, seen from a rank > 0: same paths, no writes, no local files."""

    def exists(self, name: str = "last") -> bool:
        self.path(name)  # the name check
        return False

    def save(self, name: str, state: dict[str, Any]) -> Path:
        return self.path(name)

    def mark_logged(self, seq: int) -> None:
        pass

    def _write_meta(self, **values: Any) -> None:
        pass
