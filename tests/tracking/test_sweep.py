"""The Hydra sweep callback: a parent run with one child per trial, failures recorded, best trial tagged."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from labkit.runner import sweep
from labkit.tracking.store import make_client

APP = """
import hydra

from labkit.runner.sweep import sweep_context
from labkit.tracking.mlflow_tracker import MLflowTracker, record_failure


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg):
    # what the runner's entry point does in a sweep: open the child under the parent, catch, record, return
    ctx = sweep_context()
    tracker = MLflowTracker(
        uri=ctx["tracking_uri"], experiment=ctx["experiment"], parent_run_id=ctx["parent_run_id"],
        run_name=ctx["run_name"],
        tags={"labkit.overrides": ctx["overrides"], "labkit.monitor": "val/loss", "labkit.monitor_mode": "min"},
    )
    try:
        tracker.log_params({"lr": cfg.lr, "fail": cfg.fail})
        if cfg.fail:
            raise RuntimeError(f"diverged at lr={cfg.lr}")
        tracker.log_metrics({"val/loss": (cfg.lr - 0.1) ** 2 + 1.0 + 0.01 * cfg.seed}, step=0)
        tracker.finish()
    except Exception as exc:
        record_failure(tracker, exc)


if __name__ == "__main__":
    main()
"""

CONFIG = """
lr: 0.1
fail: false
seed: 0
tracking:
  _target_: labkit.tracking.mlflow_tracker.MLflowTracker
  _partial_: true
  uri: sqlite:///{root}/mlflow.db
  experiment: sweeps
hydra:
  callbacks:
    mlflow_sweep:
      _target_: labkit.runner.sweep.MLflowSweepCallback
  sweep:
    dir: {root}/multirun/${{now:%H-%M-%S}}
"""


def test_multirun_creates_parent_with_children(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "config.yaml").write_text(CONFIG.format(root=tmp_path))
    done = subprocess.run(
        [sys.executable, "app.py", "--multirun", "lr=0.05,0.3", "fail=false,true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    client = make_client(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == [
        "fail=False,lr=0.05",
        "fail=False,lr=0.3",
        "fail=True,lr=0.05",
        "fail=True,lr=0.3",
    ]
    statuses = {c.info.run_name: c.info.status for c in children}
    assert statuses["fail=True,lr=0.3"] == "FAILED" and statuses["fail=False,lr=0.3"] == "FINISHED"
    failed = next(c for c in children if c.info.run_name == "fail=True,lr=0.3")
    assert failed.data.tags["labkit.error"] == "diverged at lr=0.3"

    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["labkit.best.run_name"] == "fail=False,lr=0.05"
    assert tags["labkit.sweep.trials"] == "4" and tags["labkit.sweep.failed"] == "2"
    assert parent.data.metrics["best/val/loss"] == pytest.approx(1.0025)

    table = client.download_artifacts(parent.info.run_id, "sweep/trials.csv", str(tmp_path / "dl"))
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"FINISHED", "FAILED"}
    assert {r["overrides"] for r in rows if r["status"] == "FAILED"} == {"fail=True,lr=0.05", "fail=True,lr=0.3"}
    md = client.download_artifacts(parent.info.run_id, "sweep/trials.md", str(tmp_path / "dl"))
    assert "fail=False,lr=0.05 **(best)**" in open(md).read()
    assert list((tmp_path / "multirun").glob("*/trials.csv")) and list(
        (tmp_path / "multirun").glob("*/labkit_sweep.json")
    )


def test_a_sweep_over_seeds_reports_each_configuration_s_mean(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "config.yaml").write_text(CONFIG.format(root=tmp_path))
    command = [sys.executable, "app.py", "--multirun", "lr=0.05,0.3", "seed=0,1,2"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    client = make_client(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["labkit.best_config.overrides"] == "lr=0.05"
    expected = {lr: (lr - 0.1) ** 2 + 1.0 + 0.01 for lr in (0.05, 0.3)}  # mean over seeds 0, 1, 2: + 0.01 * 1
    assert float(parent.data.tags["labkit.best_config.mean"]) == pytest.approx(expected[0.05])
    table = client.download_artifacts(parent.info.run_id, "sweep/by_config.csv", str(tmp_path / "dl"))
    rows = {r["config"]: r for r in csv.DictReader(open(table))}
    assert set(rows) == {"lr=0.05", "lr=0.3"}
    for lr, row in ((0.05, rows["lr=0.05"]), (0.3, rows["lr=0.3"])):
        assert row["finished"] == row["trials"] == "3" and row["seeds"] == "0,1,2"
        assert float(row["mean"]) == pytest.approx(expected[lr]) and float(row["std"]) == pytest.approx(0.01)
    md = client.download_artifacts(parent.info.run_id, "sweep/by_config.md", str(tmp_path / "dl"))
    assert "lr=0.05 **(best mean)**" in open(md).read()
    assert "sweep/by_config.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}


def _run(name, status, value, start, monitor="val/acc"):
    return SimpleNamespace(
        info=SimpleNamespace(run_name=name, status=status, run_id=f"id-{name}", start_time=start),
        data=SimpleNamespace(metrics={} if value is None else {monitor: value}, tags={"labkit.overrides": name}),
    )


def test_trials_table_and_best_trial():
    runs = [_run("b", "FINISHED", 0.9, 2), _run("a", "FINISHED", 0.7, 1), _run("c", "FAILED", None, 3)]
    rows = sweep.trials_table(runs, "val/acc")
    assert [r["run_name"] for r in rows] == ["a", "b", "c"]
    assert sweep.best_trial(rows, "max")["run_name"] == "b"
    assert sweep.best_trial(rows, "min")["run_name"] == "a"
    assert sweep.best_trial([rows[2]], "max") is None
    with pytest.raises(ValueError, match="expected mode 'min' or 'max'"):
        sweep.best_trial(rows, "best")
    parsed = list(csv.DictReader(io.StringIO(sweep.to_csv(rows))))
    assert [r["value"] for r in parsed] == ["0.7", "0.9", ""]
    markdown = sweep.to_markdown(rows, rows[1]).splitlines()
    assert len(markdown) == 5 and "b **(best)**" in markdown[3]


def test_sweep_monitor_from_children_or_name():
    runs = [_run("a", "FINISHED", 0.5, 1), _run("b", "FINISHED", 0.6, 2)]
    assert sweep.sweep_monitor(runs) == (None, "min")
    for run in runs:
        run.data.tags.update({"labkit.monitor": "val/acc", "labkit.monitor_mode": "max"})
    assert sweep.sweep_monitor(runs) == ("val/acc", "max")
    assert sweep.sweep_monitor(runs, "val/loss") == ("val/loss", "min")  # e.g. optimized_metric: val/loss
    assert sweep.sweep_monitor(runs, "val/f1") == ("val/f1", "max")
    assert sweep.sweep_monitor(runs, "val/acc", "min") == ("val/acc", "min")


def test_sweep_context_is_none_outside_a_multirun():
    assert sweep.sweep_context() is None


def test_callback_rejects_bad_mode():
    with pytest.raises(ValueError, match="expected mode 'min', 'max' or null, got 'up'"):
        sweep.MLflowSweepCallback(mode="up")
