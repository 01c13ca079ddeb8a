"""run(cfg) against a temporary MLflow store: statuses, artifacts, resuming the same run, rerun, sweeps.

One SQLite store serves the whole module (creating its schema takes seconds).
"""

from __future__ import annotations

import pytest

from labkit.runner import NonFiniteLossError, TrainingInterrupted, allow_packages, run
from labkit.runner.hydra_app import main as train_main
from labkit.tracking import MemoryTracker
from tests.runner.helpers import TOY, series, sigint_at, toy_config

pytestmark = pytest.mark.slow

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """``(work_dir, client)``: runs started with work_dir=<dir> land in <dir>/mlflow.db."""
    from labkit.tracking.store import make_client

    work = tmp_path_factory.mktemp("store")
    return work, make_client(f"sqlite:///{work}/mlflow.db")


@pytest.fixture(autouse=True)
def _allow_toy():
    from labkit.tracking import pyfunc

    added = "tests" not in pyfunc._ALLOWED_PACKAGES
    pyfunc.allow_package("tests")
    with allow_packages("tests.runner.toy"):
        yield
    if added:
        pyfunc._ALLOWED_PACKAGES.discard("tests")


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_finished_run_with_artifacts_and_model(store):
    work, client = store
    result = run(toy_config(work, "tracking.experiment=toy", "run_name=first", tracking="mlflow"))
    info = client.get_run(result["run_id"])
    assert info.info.status == "FINISHED" and info.info.run_name == "first"
    assert result["tracking_uri"] == f"sqlite:///{work}/mlflow.db"
    assert _steps(client, result["run_id"], "train/loss") == list(range(1, 13))
    assert info.data.metrics["test/accuracy"] == result["test/accuracy"]
    assert info.data.params["optim.lr"] == "0.001" and info.data.tags["labkit.monitor"] == "val/accuracy"
    files = _artifacts(client, result["run_id"])
    expected = {"config.yaml", "overrides.yaml", "plots/curves.png", "model_summary.txt", "requirements.txt",
                "checkpoints/last.ckpt", "checkpoints/best.ckpt", "test/toy.txt", "model/MLmodel"}  # fmt: skip
    assert expected <= files, expected - files
    model = mlflow.pyfunc.load_model(f"{info.info.artifact_uri}/model")
    import numpy as np

    assert model.predict(np.zeros((3, 4), np.float32)).shape == (3, 2)


def test_killed_run_resumes_in_the_same_mlflow_run(store):
    work, client = store
    plain = MemoryTracker("plain")
    expected = run(toy_config(work / "plain"), tracker=plain)
    overrides = ("tracking.experiment=resume", "trainer.log_model=false")
    with pytest.raises(TrainingInterrupted) as info:
        run(toy_config(work, *overrides, tracking="mlflow"), callbacks=[sigint_at(6)])
    run_id = info.value.run_id
    assert client.get_run(run_id).info.status == "KILLED"
    assert _steps(client, run_id, "train/loss") == list(range(1, 7))

    result = run(toy_config(work, *overrides, "trainer.resume=last", tracking="mlflow"))
    assert result["run_id"] == run_id and client.get_run(run_id).info.status == "FINISHED"
    for key, points in series(plain.metrics).items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert [s for s, _ in history] == [s for s, _ in points], key  # every step exactly once
        assert [v for _, v in history] == pytest.approx([v for _, v in points], rel=1e-6), key
    assert result["test/accuracy"] == expected["test/accuracy"]


def test_resume_downloads_the_checkpoint_from_the_run_artifacts(store):
    import shutil

    work, client = store
    overrides = ("tracking.experiment=remote", "trainer.log_model=false")
    with pytest.raises(TrainingInterrupted) as info:
        run(toy_config(work, *overrides, tracking="mlflow"), callbacks=[sigint_at(5)])
    run_id = info.value.run_id
    assert "checkpoints/last.ckpt" in _artifacts(client, run_id)
    shutil.rmtree(work / "checkpoints" / "remote")  # as on another machine
    result = run(toy_config(work, *overrides, f"trainer.resume={run_id}", tracking="mlflow"))
    assert result["run_id"] == run_id and result["step"] == 12
    assert _steps(client, run_id, "train/loss") == list(range(1, 13))


def test_failed_run_records_the_error(store):
    work, client = store
    with pytest.raises(NonFiniteLossError):
        run(toy_config(work, "tracking.experiment=fail", "task.poison_at=2", tracking="mlflow"))
    (failed,) = client.search_runs([client.get_experiment_by_name("fail").experiment_id])
    assert failed.info.status == "FAILED" and failed.data.tags["labkit.error_type"] == "NonFiniteLossError"
    assert "error.txt" in _artifacts(client, failed.info.run_id)


def test_rerun_runs_the_logged_config_again(store, capsys):
    from labkit.cli.rerun import main as rerun_main

    work, client = store
    first = run(toy_config(work, "tracking.experiment=rerun", "trainer.log_model=false", tracking="mlflow"))
    assert rerun_main([first["run_id"], "seed=1", "--tracking-uri", first["tracking_uri"]]) == 0
    assert "a rerun of" in capsys.readouterr().out
    runs = client.search_runs([client.get_experiment_by_name("rerun").experiment_id])
    (again,) = [r for r in runs if r.info.run_id != first["run_id"]]
    assert again.info.status == "FINISHED" and again.data.tags["labkit.rerun_of"] == first["run_id"]
    assert again.data.params["seed"] == "1" and again.data.params["optim.lr"] == "0.001"
    assert rerun_main([first["run_id"], "optim.nope=1", "--tracking-uri", first["tracking_uri"]]) == 1
    assert "optim.nope" in capsys.readouterr().err


def test_sweep_nests_trials_under_a_parent_run(store, capsys):
    work, client = store
    settings = [f"work_dir={work}", f"tracking.uri=sqlite:///{work}/mlflow.db", "tracking.experiment=sweep"]
    settings += ["trainer.max_epochs=1", "trainer.log_model=false", f"hydra.sweep.dir={work}/multirun"]
    quiet = ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    train_main(["-m", *TOY, *settings, *quiet, "optim.lr=0.001,0.01"])
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    names = sorted(r.info.run_name for r in children)  # hydra.job.override_dirname
    assert "optim.lr=0.001," in names[0] and "optim.lr=0.01," in names[1]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_trial_reaching_its_slurm_time_limit_is_killed_and_the_sweep_goes_on(store, monkeypatch):
    """In a Slurm job, SIGUSR2 (the time-limit warning) ends that trial KILLED with a checkpoint, not the sweep."""
    import signal

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    work, client = store
    settings = [f"work_dir={work}", f"tracking.uri=sqlite:///{work}/mlflow.db", "tracking.experiment=slurm-limit"]
    settings += ["trainer.max_epochs=1", "trainer.log_model=false", f"hydra.sweep.dir={work}/multirun-limit"]
    quiet = ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # outside training, a stray SIGUSR2 must not kill pytest
    try:
        train_main(["-m", *TOY, *settings, *quiet, "task.signal_at=2,null"])
    finally:
        signal.signal(signal.SIGUSR2, previous)
    runs = client.search_runs([client.get_experiment_by_name("slurm-limit").experiment_id])
    children = {r.data.tags["labkit.overrides"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    limited = next(r for k, r in children.items() if "signal_at=2" in k)
    other = next(r for k, r in children.items() if "signal_at=null" in k)
    assert limited.info.status == "KILLED" and other.info.status == "FINISHED"
    assert parent.info.status == "FINISHED" and parent.data.tags["labkit.sweep.trials"] == "2"
    from labkit.runner.checkpointing import CheckpointStore

    last = CheckpointStore(work / "checkpoints", "slurm-limit", limited.info.run_id).load("last")
    assert last["progress"]["step"] == 2  # stopped after the signalled step, with a checkpoint to resume from
