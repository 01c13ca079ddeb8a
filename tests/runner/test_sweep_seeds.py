"""Trials grouped by configuration over seeds: split_override, by_config, best_config, the tables."""

from __future__ import annotations

import csv
import io
import statistics

import pytest

from labkit.runner.sweep_seeds import (
    best_config,
    by_config,
    by_config_csv,
    by_config_figure,
    by_config_markdown,
    split_override,
)
from labkit.tasks.plots import figure_png


def row(overrides: str, value: float | None, status: str = "FINISHED") -> dict:
    return {"overrides": overrides, "value": value, "status": status}


def test_split_override_formats() -> None:
    assert split_override("optim.lr=0.01 seed=2", "seed") == ("optim.lr=0.01", "2")
    assert split_override("lr=0.01,seed=2,data=x", "seed") == ("lr=0.01 data=x", "2")  # override_dirname
    assert split_override("+seed=3 model.hidden=8", "seed") == ("model.hidden=8", "3")
    assert split_override("run_name='a b' seed=1", "seed") == ("run_name=a b", "1")
    assert split_override("optim.lr=0.01", "seed") == ("optim.lr=0.01", None)
    assert split_override("", "seed") == ("", None)


def test_groups_means_and_sample_std() -> None:
    rows = [
        row("lr=0.1 seed=0", 0.80),
        row("lr=0.1 seed=1", 0.84),
        row("lr=0.1 seed=2", 0.85),
        row("lr=0.3 seed=0", 0.70),
        row("lr=0.3 seed=1", None, "FAILED"),
        row("lr=0.3 seed=2", float("nan")),
    ]
    groups = by_config(rows)
    assert [g["config"] for g in groups] == ["lr=0.1", "lr=0.3"]
    first, second = groups
    assert first["finished"] == 3 and first["trials"] == 3 and first["seeds"] == "0,1,2"
    assert first["mean"] == pytest.approx(statistics.fmean([0.80, 0.84, 0.85]))
    assert first["std"] == pytest.approx(statistics.stdev([0.80, 0.84, 0.85]))
    assert (first["min"], first["max"]) == (0.80, 0.85)
    assert second["finished"] == 1 and second["trials"] == 3 and second["mean"] == 0.70 and second["std"] is None
    assert best_config(groups, "max") is first and best_config(groups, "min") is second
    with pytest.raises(ValueError, match="expected mode 'min' or 'max'"):
        best_config(groups, "best")
    parsed = list(csv.DictReader(io.StringIO(by_config_csv(groups))))
    assert [p["config"] for p in parsed] == ["lr=0.1", "lr=0.3"] and parsed[1]["std"] == ""
    table = by_config_markdown(groups, first, "val/accuracy")
    assert "`val/accuracy`" in table and "lr=0.1 **(best mean)**" in table and "lr=0.3 **" not in table


def test_no_groups_without_repeated_seeds() -> None:
    assert by_config([row("lr=0.1", 0.8), row("lr=0.3", 0.7)]) == []  # no seed at all
    assert by_config([row("lr=0.1 seed=0", 0.8), row("lr=0.3 seed=0", 0.7)]) == []  # one seed per config
    only_seeds = by_config([row("seed=0", 0.8), row("seed=1", 0.6)])
    assert only_seeds[0]["config"] == "(no other overrides)" and only_seeds[0]["mean"] == pytest.approx(0.7)
    assert best_config([{"mean": None}], "max") is None


def test_figure_shows_every_configuration_and_seed() -> None:
    rows = [row(f"lr={lr} seed={seed}", 0.8 + lr + 0.01 * seed) for lr in (0.1, 0.3) for seed in (0, 1, 2)]
    groups = by_config(rows)
    fig = by_config_figure(groups, best_config(groups, "max"), "val/accuracy")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lr=0.1", "lr=0.3"]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert sorted(len(line.get_xdata()) for line in dots) == [3, 3]
    assert figure_png(fig).startswith(b"\x89PNG")


def test_cross_validation_folds_group_like_seeds() -> None:
    rows = [row(f"model.pooling={p} data.cv_fold={f}", 0.8 + 0.01 * f + (0.05 if p == "sqrtn" else 0.0))
            for p in ("mean", "sqrtn") for f in range(3)]  # fmt: skip
    groups = by_config(rows)
    assert [g["config"] for g in groups] == ["model.pooling=mean", "model.pooling=sqrtn"]
    assert groups[0]["seeds"] == "data.cv_fold=0 data.cv_fold=1 data.cv_fold=2".replace(" data", ",data")
    assert groups[1]["mean"] == pytest.approx(0.86)
    both = by_config([row(f"lr=0.1 seed={s} data.cv_fold={f}", 0.5) for s in (0, 1) for f in (0, 1)])
    assert len(both) == 1 and both[0]["trials"] == 4
    assert both[0]["seeds"].split(",")[1] == "seed=0 data.cv_fold=1"
    assert by_config(rows, keys=("seed",)) == []  # folds not counted as replicates: one trial per config
