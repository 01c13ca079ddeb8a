"""``mpirun -n 2 labkit train trainer.strategy=ddp`` through the real runner, Hydra and MLflow (SQLite):
one MLflow run (rank 0's), one checkpoint set, and a run interrupted on one rank resumes on both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.runner.checkpointing import CheckpointStore
from tests.distributed.mpi import mpi_env, mpirun, require_mpi

pytestmark = pytest.mark.slow

TRAIN = [
    "model=mlp",
    "model.hidden_sizes=[32]",
    "trainer.strategy=ddp",
    "trainer.log_every=1",
    "trainer.checkpoint_interval=step",
    "trainer.checkpoint_every=5",
    "trainer.log_model=false",
    "scheduler=none",
    "data.batch_size=8",  # 81 steps an epoch: the signal comes long before the end
    "trainer.max_epochs=8",  # params are immutable in MLflow: the resumed run keeps every setting
]


def _labkit() -> str:
    return str(Path(sys.executable).with_name("labkit"))


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the rank started with ``LABKIT_TEST_MARK=marker`` (found in /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LABKIT_TEST_MARK={marker}".encode() in env and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def _interrupt_rank_1_after_first_checkpoint(tmp_path: Path) -> None:
    env = {**mpi_env(), "LABKIT_TEST_MARK": str(tmp_path)}
    command = [require_mpi(), "-n", "2", "--oversubscribe", _labkit(), "train", *TRAIN]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("checkpoints/labkit/*/last.ckpt")):
            assert proc.poll() is None, f"the run ended before its first checkpoint:\n{proc.stdout.read()[-4000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        pid = _rank_pid(str(tmp_path), 1)
        assert pid is not None, "rank 1's process not found"
        os.kill(pid, signal.SIGINT)  # one rank only: the ranks must agree to stop at the same step
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "interrupted (SIGINT)" in output, output[-4000:]


def test_labkit_train_ddp_logs_one_run_and_resumes_every_rank(tmp_path):
    import mlflow

    _interrupt_rank_1_after_first_checkpoint(tmp_path)
    (run_dir,) = (tmp_path / "checkpoints" / "labkit").iterdir()  # one checkpoint set: rank 0's
    store = CheckpointStore(tmp_path / "checkpoints", "labkit", run_dir.name)
    stopped = store.load("last")["progress"]
    assert not stopped["done"] and stopped["step"] > 0

    final_step = 8 * 81
    assert stopped["step"] < final_step
    done = mpirun(2, [_labkit(), "train", *TRAIN, "trainer.resume=last"], tmp_path)
    assert f"resumed run {run_dir.name} at epoch" in done.stdout + done.stderr
    state = store.load("last")
    assert state["progress"]["done"] and state["progress"]["step"] == final_step
    assert state["ddp"]["world_size"] == 2 and len(state["ddp"]["ranks"]) == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "labkit").iterdir()) == [run_dir.name]

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [run_dir.name]  # rank 1 created no run
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.strategy"] == "ddp" and run.data.tags["labkit.world_size"] == "2"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == list(range(1, final_step + 1))  # every step once, across the interruption
