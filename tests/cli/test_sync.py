"""``labkit sync`` after a run done entirely offline (tracking=offline) through the runner, to a SQLite store."""

from __future__ import annotations

import json

import pytest

from labkit.cli.sync import main as sync_main
from labkit.runner import allow_packages, run
from labkit.tracking.spool import Journal, peek
from tests.runner.helpers import toy_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _allow_toy():
    from labkit.tracking import pyfunc

    added = "tests" not in pyfunc._ALLOWED_PACKAGES
    pyfunc.allow_package("tests")
    with allow_packages("tests.runner.toy"):
        yield
    if added:
        pyfunc._ALLOWED_PACKAGES.discard("tests")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """A toy run with tracking=offline: ``(work_dir, result)``; nothing was sent anywhere."""
    work = tmp_path_factory.mktemp("offline")
    result = run(toy_config(work, "tracking.experiment=offline-toy", "run_name=offline-1", tracking="offline"))
    return work, result


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_offline_run_touches_no_store_and_keeps_a_local_key(offline_run):
    work, result = offline_run
    key = result["run_id"]
    assert key.startswith("local-") and not (work / "mlflow.db").exists()
    records, state = peek(work / "mlflow-spool" / key)
    assert state["acked"] == 0 and records[0]["op"] == "create" and records[-1] == {**records[-1], "op": "end"}
    assert records[-1]["status"] == "FINISHED"
    assert (work / "checkpoints" / "offline-toy" / key / "last.ckpt").is_file()  # checkpoints use the key


def test_sync_sends_everything_once_and_twice_sends_nothing(offline_run, capsys):
    from labkit.tracking.store import make_client

    work, result = offline_run
    key, spool = result["run_id"], work / "mlflow-spool"
    assert sync_main(["--spool", str(spool), "--list"]) == 0
    assert "not created in a store yet; ended" in capsys.readouterr().out

    assert sync_main(["--spool", str(spool)]) == 0
    out = capsys.readouterr().out
    assert key in out and "sent 1 create" in out and "end FINISHED" in out
    records, state = peek(spool / key)
    run_id = state["run_id"]
    client = make_client(f"sqlite:///{work}/mlflow.db")
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED" and stored.info.run_name == "offline-1"
    assert stored.info.start_time == records[0]["start_time"]  # the run's own start, not the sync's
    assert stored.data.tags["labkit.spool_key"] == key and stored.data.tags["labkit.monitor"] == "val/accuracy"
    assert stored.data.params["optim.lr"] == "0.001" and stored.data.params["trainer.max_epochs"] == "3"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "train/loss"))
    assert steps == list(range(1, 13))  # 3 epochs x 4 steps, each exactly once
    assert len(client.get_metric_history(run_id, "val/accuracy")) == 3
    assert stored.data.metrics["test/accuracy"] == result["test/accuracy"]
    files = _artifacts(client, run_id)
    assert {"config.yaml", "overrides.yaml", "plots/curves.png", "checkpoints/last.ckpt", "model/MLmodel"} <= files
    assert not list((spool / key / "files").glob("*/*"))  # the copies go once sent

    assert sync_main(["--spool", str(spool)]) == 0  # idempotent
    assert "up to date" in capsys.readouterr().out
    assert len(client.get_metric_history(run_id, "train/loss")) == 12

    other = f"sqlite:///{work}/other.db"
    assert sync_main(["--spool", str(spool), "--tracking-uri", other]) == 1
    assert f"expected --tracking-uri sqlite:///{work}/mlflow.db (or none), got {other}" in capsys.readouterr().out

    assert sync_main(["--spool", str(spool), "--prune"]) == 0
    assert "spool deleted" in capsys.readouterr().out and not (spool / key).exists()


def test_spool_in_use_is_skipped_and_missing_folder_is_an_error(tmp_path, capsys):
    held = Journal.create(tmp_path / "spool", "local-held", {"op": "create", "run_name": "r", "experiment": "e"})
    try:
        assert sync_main(["--spool", str(tmp_path / "spool")]) == 0
        assert "local-held: skipped, in use by another process" in capsys.readouterr().out
    finally:
        held.close()
    assert json.loads((tmp_path / "spool" / "local-held" / "acked.json").read_text())["acked"] == 0
    assert sync_main(["--spool", str(tmp_path / "nowhere")]) == 2
    assert "no spool folder at" in capsys.readouterr().err
