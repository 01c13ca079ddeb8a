"""Reading a study's sweep back from MLflow: the helpers the analysis scripts in experiments/ share.

A study's trials are the child runs of a sweep, tagged ``study=<name>`` by its hparams_search
config; an analysis script opens the store, picks the newest sweep (or the one it is given) and
builds its table and figure from those runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit.tracking.mlflow_tracker import PARENT_TAG


def open_store(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``; a SQLite file that does not exist is an error (MLflow would create it)."""
    from labkit.tracking.store import make_client, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ValueError(f"--tracking-uri: expected an existing MLflow store, got {uri} (no file {db})")
    return make_client(uri)


def study_children(client: Any, study: str, parent: str | None) -> tuple[str, list[Any]]:
    """``(parent run id, child runs)`` of the newest sweep of ``study``, or of sweep ``parent``."""
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiment_ids, filter_string=f"tags.study = '{study}'", max_results=50000)
    by_parent: dict[str, list[Any]] = {}
    for run in runs:
        if PARENT_TAG in run.data.tags:
            by_parent.setdefault(run.data.tags[PARENT_TAG], []).append(run)
    if not by_parent:
        raise ValueError(f"no sweep of study {study!r} in the store: expected child runs tagged study={study}")
    if parent is None:  # the sweep whose first trial started last
        parent = max(by_parent, key=lambda p: min(r.info.start_time or 0 for r in by_parent[p]))
    elif parent not in by_parent:
        raise ValueError(f"--parent: expected one of the sweeps of {study!r} {sorted(by_parent)}, got {parent!r}")
    return parent, by_parent[parent]


def study_main(
    analyze: Callable[[str, str | None, Path], Any], description: str, out_dir: Path, argv: list[str] | None = None
) -> int:
    """The command line of a study's ``analyze.py``: ``--tracking-uri URI [--parent RUN_ID] [--out-dir DIR]``.

    Calls ``analyze(tracking_uri, parent, out_dir)``; a ``ValueError`` (no such store, no sweep of the
    study) is printed as one line and exits 1.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tracking-uri", required=True, help="the sweep's MLflow store, e.g. sqlite:////abs/mlflow.db")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the newest sweep of the study)")
    parser.add_argument("--out-dir", type=Path, default=out_dir, help=f"where results.md/.png go (default: {out_dir})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        analyze(args.tracking_uri, args.parent, args.out_dir)
    except ValueError as exc:
        print(f"analyze.py: {exc}", file=sys.stderr)
        return 1
    return 0
