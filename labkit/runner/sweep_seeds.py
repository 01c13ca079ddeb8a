"""A sweep's trials grouped by configuration: the mean and spread of the monitored metric over seeds.

``labkit train -m optim.lr=1e-3,3e-3 seed=0,1,2`` runs each learning rate three times. One
trial's number says little on small data; the sweep's parent run therefore also logs
``sweep/by_config.md`` (and ``.csv``): one row per configuration (the overrides other than
``seed`` and ``data.cv_fold``, the replicate keys) with the number of finished trials, the mean,
the sample standard deviation, the range, and the best configuration by its mean. A sweep over
``data.cv_fold=0,1,2,3,4`` (cross-validation folds) is grouped the same way: each row is then a
configuration's cross-validated score.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
import statistics
from typing import Any

__all__ = [
    "BY_CONFIG_COLUMNS",
    "best_config",
    "by_config",
    "by_config_csv",
    "by_config_figure",
    "by_config_markdown",
    "csv_table",
    "REPLICATE_KEYS",
    "markdown_cell",
    "split_override",
]

BY_CONFIG_COLUMNS = ("config", "finished", "trials", "seeds", "mean", "std", "min", "max")
#: overrides that repeat one configuration (its trials differ only in these)
REPLICATE_KEYS = ("seed", "data.cv_fold")


def split_override(overrides: str, key: str) -> tuple[str, str | None]:
    """``(the overrides without key=..., the value given to key or None)`` of an override string.

    ``"optim.lr=0.01 seed=2"``, ``"seed"`` -> ``("optim.lr=0.01", "2")``; Hydra's comma-joined
    ``override_dirname`` (``"lr=0.01,seed=2"``) works too (then joined back with spaces). Quoted values (Hydra's
    ``run_name='a b'``) stay one override; prefixes ``+``/``++``/``~`` are ignored when matching ``key``.
    """
    try:
        tokens = shlex.split(overrides)
    except ValueError:  # an unbalanced quote: plain whitespace split
        tokens = overrides.split()
    if len(tokens) == 1 and tokens[0].count("=") > 1:  # Hydra's override_dirname: "lr=0.1,seed=2"
        tokens = tokens[0].split(",")
    kept, value = [], None
    for token in tokens:
        name, _, given = token.partition("=")
        if name.lstrip("+~") == key:
            value = given
        else:
            kept.append(token)
    return " ".join(kept), value


def by_config(rows: list[dict[str, Any]], keys: tuple[str, ...] = REPLICATE_KEYS) -> list[dict[str, Any]]:
    """Trials (``sweep.trials_table`` rows) grouped by their overrides without the replicate ``keys``.

    Returns ``[]`` unless some configuration ran with two or more values of ``keys``. Each row:
    ``config``, ``finished`` (trials FINISHED with a value), ``trials``, ``seeds`` (each trial's
    replicate, in trial order: the value of ``keys[0]`` when only it was given, else
    ``key=value`` pairs such as ``data.cv_fold=2``), ``mean``, ``std`` (sample standard deviation;
    None under 2 values), ``min``, ``max`` (None without a finished trial) and ``values`` (the
    finished trials' values, for ``by_config_figure``). Configurations keep the order
    of their first trial.
    """
    groups: dict[str, list[tuple[str | None, dict[str, Any]]]] = {}
    for row in rows:
        config, given = str(row["overrides"]), []
        for key in keys:
            config, value = split_override(config, key)
            if value is not None:
                given.append((key, value))
        if not given:
            replicate = None
        elif len(given) == 1 and given[0][0] == keys[0]:
            replicate = given[0][1]
        else:
            replicate = " ".join(f"{k}={v}" for k, v in given)
        groups.setdefault(config, []).append((replicate, row))
    if not any(len({v for v, _ in members}) > 1 for members in groups.values()):
        return []
    out = []
    for config, members in groups.items():
        values = [r["value"] for _, r in members if r["status"] == "FINISHED" and r["value"] is not None]
        values = [float(v) for v in values if not math.isnan(float(v))]
        out.append(
            {
                "config": config or "(no other overrides)",
                "finished": len(values),
                "trials": len(members),
                "seeds": ",".join("?" if v is None else v for v, _ in members),
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
                "values": values,  # for the figure; not a table column
            }
        )
    return out


def best_config(groups: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The group with the best mean (``mode`` ``"min"`` or ``"max"``), or None when no group has one."""
    if mode not in ("min", "max"):
        raise ValueError(f"sweep: expected mode 'min' or 'max', got {mode!r}")
    scored = [g for g in groups if g["mean"] is not None]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda g: g["mean"])


def csv_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """``rows`` as CSV text with a header of ``columns`` (other keys of a row are left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def markdown_cell(value: Any) -> str:
    """A value as one markdown table cell: floats to 6 significant digits, ``|`` escaped, one line, <= 200 chars."""
    text = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def by_config_csv(groups: list[dict[str, Any]]) -> str:
    return csv_table(groups, BY_CONFIG_COLUMNS)


def by_config_markdown(groups: list[dict[str, Any]], best: dict[str, Any] | None, monitor: str) -> str:
    lines = [
        f"Trials grouped by their overrides other than the seed and the cross-validation fold; `{monitor}` "
        "over the FINISHED trials (std: sample standard deviation).",
        "",
        "| " + " | ".join(BY_CONFIG_COLUMNS) + " |",
        "|" + "---|" * len(BY_CONFIG_COLUMNS),
    ]
    for group in groups:
        mark = " **(best mean)**" if best is not None and group is best else ""
        cells = (markdown_cell(group[c]) + (mark if c == "config" else "") for c in BY_CONFIG_COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def by_config_figure(groups: list[dict[str, Any]], best: dict[str, Any] | None, monitor: str) -> Any:
    """One row per configuration: every seed's (or fold's) value as a dot, the mean as a bar with +-1 std.

    The best configuration by mean is drawn in another colour. Returns a matplotlib Figure.
    """
    from labkit.tasks.plots import new_figure

    fig = new_figure(8.0, 1.2 + 0.45 * len(groups))
    ax = fig.add_subplot()
    for row, group in enumerate(groups):
        colour = "tab:orange" if group is best else "tab:blue"
        if group["mean"] is not None:
            ax.barh(row, group["mean"], xerr=group["std"] or 0.0, color=colour, alpha=0.35, capsize=4)
        ax.plot(group["values"], [row] * len(group["values"]), "o", color=colour, markersize=5)
    ax.set_yticks(range(len(groups)), [g["config"][:60] for g in groups])
    ax.invert_yaxis()
    finite = [v for g in groups for v in g["values"]]
    if finite:  # zoom on the values: bars from 0 would hide the differences
        low, high = min(finite), max(finite)
        pad = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
        ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel(f"{monitor} (dots: seeds or folds; bar: mean +- std)")
    ax.set_title("trials by configuration")
    return fig
