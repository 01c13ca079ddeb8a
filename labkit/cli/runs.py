"""``labkit runs``: the runs of an MLflow store as a terminal table, sweeps nested under their parent.

    labkit runs                                   # every experiment in ./mlflow.db, newest first
    labkit runs --experiment digits --sort val/accuracy --columns optim.lr,val/accuracy
    labkit runs --tracking-uri http://127.0.0.1:5000 --limit 20

Columns: status, run name (children indented under their sweep's parent), start time,
duration, then the key params (those that differ between the listed runs) and key metrics
(``val/*``, ``test/*``), or exactly the ``--columns`` given: ``metrics.NAME``, ``params.NAME``
and ``tags.NAME`` say which; a bare name is a metric if a listed run has one by that name,
else a param if one has it, else a tag if one has it, else a (missing) metric.
``--sort`` takes the same prefixes (``--sort tags.labkit.model``; a bare name is a metric).

    labkit runs --columns tags.labkit.model,data.name,test/accuracy --sort tags.labkit.model
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

PARENT_TAG = "mlflow.parentRunId"
LOWER_IS_BETTER = ("loss", "error", "perplexity", "mse", "mae", "time")
MAX_KEY_COLUMNS = 4
MAX_CELL = 28
#: explicit column/sort prefixes, in the order metric, param, tag
PREFIXES = ("metrics.", "params.", "tags.")


def parse_sort(sort: str | None) -> tuple[str, list[str]]:
    """``(label, order_by)`` for MLflow.

    ``val/loss`` (and other lower-is-better names) ascends, other metrics and params descend,
    tags ascend (text order); ``:asc``/``:desc`` override. ``metrics.``, ``params.``, ``tags.``
    and ``attributes.`` prefixes choose the kind; a bare name is a metric (or a run attribute
    such as ``start_time``).
    """
    if not sort:
        return "start_time", ["attributes.start_time DESC"]
    name, _, direction = sort.rpartition(":") if sort.endswith((":asc", ":desc")) else (sort, "", "")
    if ":" in name or direction not in ("", "asc", "desc"):
        raise ValueError(f"--sort: expected NAME, NAME:asc or NAME:desc, got {sort!r}")
    if name.startswith((*PREFIXES, "attributes.")):
        kind, _, key = name.partition(".")
        if not key:
            raise ValueError(f"--sort: expected {kind}.NAME with a name after the dot, got {sort!r}")
    elif name in ("start_time", "end_time", "run_name", "status"):
        kind, key = "attributes", name
    else:
        kind, key = "metrics", name
    if not direction:
        if kind == "tags":
            direction = "asc"
        else:
            direction = "asc" if any(word in key.lower() for word in LOWER_IS_BETTER) else "desc"
    return name, [f"{kind}.`{key}` {direction.upper()}", "attributes.start_time DESC"]


def parse_column(name: str, metric_names: set[str], param_names: set[str], tag_names: set[str]) -> tuple[str, str]:
    """``(kind, key)`` of one ``--columns`` entry; kind is ``metric``, ``param`` or ``tag``.

    Raises:
        ValueError: a prefix with nothing after it (``tags.``).
    """
    for prefix, kind in zip(PREFIXES, ("metric", "param", "tag")):
        if name.startswith(prefix):
            key = name[len(prefix) :]
            if not key:
                raise ValueError(f"--columns: expected {prefix}NAME with a name after the dot, got {name!r}")
            return kind, key
    if name in metric_names:
        return "metric", name
    if name in param_names:
        return "param", name
    if name in tag_names:
        return "tag", name
    return "metric", name  # shown empty: a metric no listed run has logged (yet)


def format_duration(run: Any, now_ms: int) -> str:
    start, end = run.info.start_time, run.info.end_time
    if not start:
        return ""
    if run.info.status == "RUNNING" or not end:
        end = now_ms
    seconds = max(0.0, (end - start) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def pick_columns(runs: list[Any], requested: Sequence[str] | None, sort_label: str) -> list[tuple[str, str]]:
    """``[(kind, key)]`` with kind ``param``, ``metric`` or ``tag``: the requested ones, or the key ones
    (the sort key first when it is a param or tag, which the key columns would not show)."""
    metric_names = {k for r in runs for k in r.data.metrics}
    param_names = {k for r in runs for k in r.data.params}
    if requested:
        tag_names = {k for r in runs for k in r.data.tags}
        return [parse_column(name, metric_names, param_names, tag_names) for name in requested]
    sort_column = [parse_column(sort_label, set(), set(), set())] if sort_label.startswith(PREFIXES[1:]) else []
    varying = sorted(
        k
        for k in param_names
        if len({r.data.params[k] for r in runs if k in r.data.params}) > 1
        and not k.endswith("_target_")
        and k != "run_name"  # the run column shows it
    )
    params = [("param", k) for k in varying[:MAX_KEY_COLUMNS]]
    # the monitored metric first, then val/ and test/ summaries (per-class ones like test/f1/3 last)
    monitors = [r.data.tags["labkit.monitor"] for r in runs if r.data.tags.get("labkit.monitor") in metric_names]
    ranked = sorted(
        (k for k in metric_names if k.startswith(("val/", "test/"))),
        key=lambda k: (k.count("/") > 1, not k.startswith("val/"), k),
    )
    key_metrics = list(dict.fromkeys(([sort_label] if sort_label in metric_names else []) + monitors + ranked))
    if not key_metrics:
        key_metrics = sorted(metric_names)
    metrics = [("metric", k) for k in key_metrics[:MAX_KEY_COLUMNS]]
    return sort_column + [c for c in params + metrics if c not in sort_column]


def nest(runs: list[Any]) -> list[tuple[int, Any]]:
    """``(depth, run)`` in display order: each run followed by its children (kept in sort order)."""
    ids = {r.info.run_id for r in runs}
    children: dict[str, list[Any]] = {}
    roots = []
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent in ids:
            children.setdefault(parent, []).append(run)
        else:
            roots.append(run)
    ordered: list[tuple[int, Any]] = []
    stack = [(0, r) for r in reversed(roots)]
    while stack:  # iterative: sweeps of sweeps nest without recursion limits
        depth, run = stack.pop()
        ordered.append((depth, run))
        stack.extend((depth + 1, c) for c in reversed(children.get(run.info.run_id, [])))
    return ordered


def render(runs: list[Any], columns: list[tuple[str, str]], experiments: dict[str, str] | None = None) -> str:
    """The table as text: one line per run, children indented under their parent."""
    now_ms = int(time.time() * 1000)
    branch = "└─ " if (sys.stdout.encoding or "").lower().startswith("utf") else "- "
    header = ["status", "run"] + (["experiment"] if experiments else []) + ["start", "duration"]
    header += [f"tags.{key}" if kind == "tag" else key for kind, key in columns]
    rows = []
    for depth, run in nest(runs):
        name = ("   " * (depth - 1) + branch if depth else "") + (run.info.run_name or run.info.run_id[:8])
        start = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000)) if run.info.start_time else ""
        )
        row = [run.info.status, name] + ([experiments.get(run.info.experiment_id, "")] if experiments else [])
        row += [start, format_duration(run, now_ms)]
        for kind, key in columns:
            source = {"metric": run.data.metrics, "param": run.data.params, "tag": run.data.tags}[kind]
            row.append(format_value(source.get(key)))
        rows.append(row)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit runs", description="List MLflow runs as a table.")
    parser.add_argument("--experiment", help="experiment name (default: every active experiment)")
    parser.add_argument(
        "--sort",
        help="metric (or params.X, tags.X) to sort by, e.g. val/accuracy, val/loss:asc, tags.labkit.model "
        "(default: newest first)",
    )
    parser.add_argument(
        "--columns", help="comma-separated metrics/params/tags to show, e.g. optim.lr,val/accuracy,tags.labkit.model"
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many runs (default 100)")
    return parser


def main_runs(argv: list[str] | None = None) -> int:
    """``labkit runs``: print the table; 0 on success, 1 when the store is missing, 2 on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit <= 0:
        parser.error(f"--limit: expected a positive number, got {args.limit}")
    requested = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    try:
        sort_label, order_by = parse_sort(args.sort)
        for name in requested or ():
            parse_column(name, set(), set(), set())  # a bad prefix fails before the store is opened
    except ValueError as exc:
        parser.error(str(exc))
    from labkit.tracking.store import resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(args.tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        print(f"labkit runs: no MLflow store at {db}; expected a mlflow.db (train first, or pass --tracking-uri)")
        return 1
    from labkit.tracking.store import make_client

    try:
        client = make_client(uri)
    except ConnectionError as exc:
        print(f"labkit runs: {exc}", file=sys.stderr)
        return 1
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    if args.experiment is not None:
        matches = [i for i, name in experiments.items() if name == args.experiment]
        if not matches:
            print(
                f"labkit runs: no experiment named {args.experiment!r} in {uri}; expected one of {sorted(experiments.values())}",
                file=sys.stderr,
            )
            return 2
        ids = matches
    else:
        ids = list(experiments)
    runs = client.search_runs(ids, order_by=order_by, max_results=args.limit) if ids else []
    if not runs:
        print(f"no runs in {uri}" + (f" (experiment {args.experiment!r})" if args.experiment else ""))
        return 0
    columns = pick_columns(runs, requested, sort_label)
    shown = {i: experiments[i] for i in ids} if len({r.info.experiment_id for r in runs}) > 1 else None
    print(render(runs, columns, shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_runs())
