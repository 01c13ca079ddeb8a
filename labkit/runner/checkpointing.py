"""Run checkpoints: everything needed to continue a run exactly where it stopped.

A run checkpoint is one ``labkit.save`` file (atomic, no pickle) holding::

    {"kind": "labkit-run", "version": 1,
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict | None,
     "loader": the train loader's state_dict | None, "generators": Seeds.state_dict(),
     "progress": Progress fields, "callbacks": {name: state}, "history": {metric: [[step, value], ...]},
     "config": the resolved config (to warn when a resume changes it)}

Files live in ``<checkpoint_dir>/<experiment>/<run_id>/`` as ``last.ckpt`` and ``best.ckpt``,
next to ``run.json`` (run id, experiment, time) that ``resume=last`` uses to find the
latest run. The tracker also receives both files as artifacts (``checkpoints/``), so a run
can be resumed on another machine when the tracker can download them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from labkit.io import load, save
from labkit.io.checkpoint import atomic_write

log = logging.getLogger(__name__)

KIND = "labkit-run"
VERSION = 1
CHECKPOINT_NAMES = ("last", "best")


@dataclass
class Progress:
    """Counters of a run: what was trained, evaluated and logged so far."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    batches_in_epoch: int = 0  # batches of the current (unfinished) epoch already trained on
    best: float | None = None  # best value of the monitored metric
    best_step: int | None = None
    epoch_loss_sum: float = 0.0  # sum of loss * examples over the current epoch (for train/epoch_loss)
    epoch_examples: int = 0
    window_loss_sum: float = 0.0  # the same since train/loss was last logged
    window_examples: int = 0
    metric_seq: int = 0  # how many metric batches the run has produced (MetricLog.log calls)
    logged_seq: int = 0  # the first metric_seq not yet sent to the tracker when this checkpoint was written
    last_eval_step: int | None = None
    done: bool = False  # training ended (max_epochs, max_steps or early stopping)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Progress:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(state) - names)
        if unknown:
            raise ValueError(f"Progress: unknown checkpoint keys {unknown}; expected keys among {sorted(names)}")
        return cls(**dict(state))


class CheckpointStore:
    """The checkpoint folder of one run: ``<root>/<experiment>/<run_id>/``."""

    def __init__(self, root: str | Path, experiment: str, run_id: str) -> None:
        self.root = Path(root).resolve()
        self.experiment = experiment
        self.run_id = run_id
        self.dir = self.root / _safe(experiment) / _safe(run_id)

    def path(self, name: str) -> Path:
        if name not in CHECKPOINT_NAMES:
            raise ValueError(f"checkpoint name: expected one of {list(CHECKPOINT_NAMES)}, got {name!r}")
        return self.dir / f"{name}.ckpt"

    def exists(self, name: str = "last") -> bool:
        return self.path(name).is_file()

    def save(self, name: str, state: dict[str, Any]) -> Path:
        """Write ``<name>.ckpt`` atomically and refresh ``run.json``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        save(state, target)
        self._write_meta(updated=time.time())
        return target

    def meta(self) -> dict[str, Any]:
        """``run.json``: ``run_id``, ``experiment``, ``updated`` and, after a failure, ``logged_seq``."""
        try:
            return dict(json.loads((self.dir / "run.json").read_text()))
        except (OSError, ValueError):
            return {}

    def mark_logged(self, seq: int) -> None:
        """Record that the first ``seq`` metric batches reached the tracker (a failed run logs past its checkpoint)."""
        self._write_meta(logged_seq=max(int(seq), int(self.meta().get("logged_seq", 0))))

    def _write_meta(self, **values: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta(), "run_id": self.run_id, "experiment": self.experiment, **values}
        meta.setdefault("updated", time.time())
        with atomic_write(self.dir / "run.json") as f:
            f.write(json.dumps(meta).encode())

    def load(self, name: str = "last") -> dict[str, Any]:
        path = self.path(name)
        state = load(path)
        if not isinstance(state, dict) or state.get("kind") != KIND:
            raise ValueError(f"checkpoint {path}: expected a labkit run checkpoint (kind {KIND!r}), got another file")
        if state.get("version") != VERSION:
            raise ValueError(f"checkpoint {path}: expected format version {VERSION}, got {state.get('version')!r}")
        return state


def _safe(name: str) -> str:
    """A path component from an experiment name or run id (no separators, no dot-dot)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)).strip(".")
    return cleaned or "_"


def latest_run(root: str | Path, experiment: str) -> str:
    """The id of the most recently checkpointed run of ``experiment`` under ``root``.

    Raises:
        ValueError: no run of that experiment has a checkpoint there (the message says where it looked).
    """
    folder = Path(root).resolve() / _safe(experiment)
    best: tuple[float, str] | None = None
    for meta_path in folder.glob("*/run.json") if folder.is_dir() else ():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (meta_path.parent / "last.ckpt").is_file() and (best is None or meta["updated"] > best[0]):
            best = (float(meta["updated"]), str(meta["run_id"]))
    if best is None:
        raise ValueError(
            f"trainer.resume=last: expected a checkpointed run of experiment {experiment!r} in {folder}, found none "
            "(pass trainer.resume=RUN_ID, or set trainer.checkpoint_dir to where the run saved its checkpoints)"
        )
    return best[1]


def fetch_from_tracker(tracker: Any, store: CheckpointStore) -> bool:
    """Download ``checkpoints/last.ckpt`` from the run's artifacts into ``store`` when the tracker can.

    Trackers offer this with ``download_artifact(artifact_path, dst_dir) -> path``, or (MLflow)
    through their ``client.download_artifacts(run_id, artifact_path, dst_dir)``.
    """
    download = getattr(tracker, "download_artifact", None)
    client = getattr(tracker, "client", None)
    if download is None and hasattr(client, "download_artifacts"):

        def download(path: str, dst: str) -> str:
            return client.download_artifacts(store.run_id, path, dst)

    if download is None:
        return False
    store.dir.mkdir(parents=True, exist_ok=True)
    try:
        got = Path(download("checkpoints/last.ckpt", str(store.dir)))
    except Exception as exc:  # no such artifact: the caller reports where it looked
        log.debug("no checkpoint artifact in run %s: %s", store.run_id, exc)
        return False
    if got.resolve() != store.path("last"):
        got.replace(store.path("last"))
    return store.exists("last")


def collect_state(
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    loader: Any,
    seeds: Any,
    progress: Progress,
    callbacks: Mapping[str, Any],
    history: Mapping[str, list[tuple[int, float]]],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The checkpoint dict of a run (see the module docstring)."""
    return {
        "kind": KIND,
        "version": VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        "generators": seeds.state_dict(),
        "progress": asdict(progress),
        "callbacks": {name: cb.state_dict() for name, cb in callbacks.items() if hasattr(cb, "state_dict")},
        "history": {k: [[int(s), float(v)] for s, v in points] for k, points in history.items()},
        "config": dict(config),
    }


def restore_state(
    state: Mapping[str, Any],
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    loader: Any,
    seeds: Any,
    callbacks: Mapping[str, Any],
) -> tuple[Progress, dict[str, list[tuple[int, float]]]]:
    """Load a checkpoint into freshly built objects; returns the progress counters and metric history."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if (scheduler is None) != (state["scheduler"] is None):
        raise ValueError(
            "resume: the checkpoint was written "
            + ("without a scheduler, expected none" if state["scheduler"] is None else "with a scheduler, expected one")
            + " (resume with the run's own scheduler config)"
        )
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    progress = Progress.from_dict(state["progress"])
    if state["loader"] is not None and hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state["loader"])
    elif progress.batches_in_epoch:
        log.warning(
            "the train loader has no load_state_dict(): skipping %d batches to continue epoch %d",
            progress.batches_in_epoch,
            progress.epoch,
        )
    seeds.load_state_dict(state["generators"])
    for name, cb_state in state["callbacks"].items():
        if name in callbacks and hasattr(callbacks[name], "load_state_dict"):
            callbacks[name].load_state_dict(cb_state)
    history = {k: [(int(s), float(v)) for s, v in points] for k, points in state["history"].items()}
    return progress, history


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        where = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += config_changes(a, b, where + ".")
        elif a != b:
            changes.append(where)
    return changes
