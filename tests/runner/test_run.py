"""run(cfg) end to end on the toy task with a MemoryTracker: results, determinism, resume, failures, signals."""

from __future__ import annotations

import math
import os
import signal

import pytest

from labkit.data import DatasetNotFoundError
from labkit.runner import NonFiniteLossError, TargetNotAllowedError, TrainingInterrupted, allow_packages, run
from labkit.runner.checkpointing import CheckpointStore
from labkit.tracking import MemoryTracker
from tests.runner import toy
from tests.runner.helpers import AtStep, final_metrics, series, sigint_at, toy_config


@pytest.fixture(autouse=True)
def _allow_toy():
    with allow_packages("tests.runner.toy"):
        yield


def _steps(tracker: MemoryTracker, key: str) -> list[int]:
    return [s for s, _ in tracker.metrics[key]]


def test_run_trains_evaluates_and_logs(tmp_path):
    tracker = MemoryTracker("r1")
    result = run(toy_config(tmp_path), tracker=tracker)
    assert tracker.status == "FINISHED"
    assert result["run_id"] == "r1" and result["epoch"] == 3 and result["step"] == 12
    assert result["checkpoint_dir"] == str(tmp_path / "checkpoints" / "labkit" / "r1")
    assert 0.0 <= result["test/accuracy"] <= 1.0 and "val/accuracy_best" in result
    assert _steps(tracker, "train/loss") == list(range(1, 13))
    assert _steps(tracker, "val/accuracy") == [4, 8, 12] and _steps(tracker, "epoch") == [4, 8, 12]
    assert tracker.metrics["test/artifact_calls"] == [(12, 1.0)]  # the task's artifacts() metrics, prefixed
    for name in ("config.yaml", "overrides.yaml", "model_summary.txt", "requirements.txt", "plots/curves.png",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt", "test/toy.txt"):  # fmt: skip
        assert name in tracker.artifacts, name
    assert "ToyMLP" in tracker.artifacts["model_summary.txt"]
    assert tracker.params["optim.lr"] == "0.001" and "trainer.resume" not in tracker.params
    assert tracker.tags["labkit.monitor"] == "val/accuracy" and tracker.tags["labkit.monitor_mode"] == "max"
    store = CheckpointStore(tmp_path / "checkpoints", "labkit", "r1")
    assert store.exists("last") and store.exists("best")
    assert store.load("last")["progress"]["done"] is True


def test_two_runs_with_one_config_are_identical(tmp_path):
    a, b = MemoryTracker("a"), MemoryTracker("b")
    ra = run(toy_config(tmp_path / "a"), tracker=a)
    rb = run(toy_config(tmp_path / "b"), tracker=b)
    assert final_metrics(ra) == final_metrics(rb)
    assert series(a.metrics) == series(b.metrics)
    rc = run(toy_config(tmp_path / "c", "seed=1"), tracker=MemoryTracker("c"))
    assert rc["val/loss"] != ra["val/loss"]  # the seed matters


@pytest.mark.parametrize("stop_at", [6, 8])  # mid-epoch, and right at an epoch's end
def test_sigint_kills_with_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, stop_at):
    plain = MemoryTracker("plain")
    expected = run(toy_config(tmp_path / "plain"), tracker=plain)

    tracker = MemoryTracker("r")
    with pytest.raises(TrainingInterrupted) as info:
        run(toy_config(tmp_path / "r"), tracker=tracker, callbacks=[sigint_at(stop_at)])
    assert tracker.status == "KILLED" and info.value.signal_name == "SIGINT"
    store = CheckpointStore(tmp_path / "r" / "checkpoints", "labkit", "r")
    assert store.load("last")["progress"]["step"] == stop_at
    assert _steps(tracker, "train/loss") == list(range(1, stop_at + 1))

    resumed = run(toy_config(tmp_path / "r", "trainer.resume=r"), tracker=tracker)
    assert tracker.status == "FINISHED"
    assert final_metrics(resumed) == final_metrics(expected)
    assert series(tracker.metrics) == series(plain.metrics)  # every step once, same values


def test_resume_after_a_crash_skips_steps_already_logged(tmp_path):
    plain = MemoryTracker("plain")
    expected = run(toy_config(tmp_path / "plain"), tracker=plain)
    overrides = ("trainer.checkpoint_interval=step", "trainer.checkpoint_every=4")

    def crash() -> None:
        raise RuntimeError("worker lost")

    tracker = MemoryTracker("c")
    with pytest.raises(RuntimeError, match="worker lost"):
        run(toy_config(tmp_path / "c", *overrides), tracker=tracker, callbacks=[AtStep(7, crash)])
    assert tracker.status == "FAILED" and tracker.tags["labkit.error_type"] == "RuntimeError"
    assert "error.txt" in tracker.artifacts and "worker lost" in tracker.artifacts["error.txt"]
    assert _steps(tracker, "train/loss") == list(range(1, 8))  # released up to the crash, past the checkpoint at 4

    resumed = run(toy_config(tmp_path / "c", *overrides, "trainer.resume=last"), tracker=tracker)
    assert resumed["test/accuracy"] == expected["test/accuracy"] and resumed["val/loss"] == expected["val/loss"]
    assert series(tracker.metrics) == series(plain.metrics)


def test_nan_loss_stops_the_run_as_failed(tmp_path):
    tracker = MemoryTracker("nan")
    with pytest.raises(NonFiniteLossError, match=r"train/loss became nan at step 3"):
        run(toy_config(tmp_path, "task.poison_at=3"), tracker=tracker)
    assert tracker.status == "FAILED" and tracker.tags["labkit.error_type"] == "NonFiniteLossError"
    assert _steps(tracker, "train/loss") == [1, 2]  # logged before the failure, nothing after
    assert all(math.isfinite(v) for _, v in tracker.metrics["train/loss"])


def test_early_stopping_and_max_steps(tmp_path):
    tracker = MemoryTracker("es")
    result = run(
        toy_config(tmp_path, "optim.lr=0.0", "trainer.max_epochs=10", "trainer.early_stopping.patience=2"),
        tracker=tracker,
    )
    assert result["epoch"] == 3  # best at epoch 1, no improvement at 2 and 3
    result = run(toy_config(tmp_path, "trainer.max_steps=5"), tracker=MemoryTracker("ms"))
    assert result["step"] == 5 and result["epoch"] == 1


@pytest.mark.parametrize(
    ("scheduler", "varies_within_epoch"), [("onecycle", True), ("cosine", False), ("step", False), ("plateau", False)]
)
def test_schedulers(tmp_path, scheduler, varies_within_epoch):
    tracker = MemoryTracker(scheduler)
    run(toy_config(tmp_path, f"scheduler={scheduler}"), tracker=tracker)
    lrs = [v for _, v in tracker.metrics["train/lr"]]
    assert len(set(lrs[:4])) == (4 if varies_within_epoch else 1)
    if scheduler == "cosine":
        assert lrs[4] < lrs[0]  # stepped once per epoch


def test_eval_every_steps_clipping_and_progress_bar(tmp_path, capsys):
    tracker = MemoryTracker("ev")
    overrides = ("trainer.eval_every_steps=3", "trainer.grad_clip=0.5", "trainer.progress_bar=true")
    run(toy_config(tmp_path, *overrides), tracker=tracker)
    assert _steps(tracker, "val/accuracy") == [3, 6, 9, 12]
    assert "12/12" in capsys.readouterr().err  # the tqdm bar
    clipped = run(
        toy_config(tmp_path / "v", "trainer.grad_clip=1e-6", "trainer.grad_clip_algorithm=value"),
        tracker=MemoryTracker("v"),
    )
    free = run(toy_config(tmp_path / "f"), tracker=MemoryTracker("f"))
    assert clipped["val/loss"] != free["val/loss"]


def test_missing_data_fails_before_any_model_is_built(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(toy.ToyMLP, "__init__", lambda self, *a, **k: built.append(1))

    def missing(self, generator):
        raise DatasetNotFoundError("toy: looked in /nowhere; get it with labkit data get toy")

    monkeypatch.setattr(toy.ToyTask, "setup", missing)
    with pytest.raises(DatasetNotFoundError, match="looked in /nowhere"):
        run(toy_config(tmp_path), tracker=MemoryTracker("x"))
    assert built == []


def test_refused_target_is_reported_before_anything_is_imported(tmp_path):
    cfg = toy_config(tmp_path)
    cfg.model._target_ = "os.system"
    with pytest.raises(TargetNotAllowedError, match=r"'model._target_'.*refused target 'os.system'"):
        run(cfg, tracker=MemoryTracker("x"))


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(ValueError, match=r"trainer.resume=last: expected a checkpointed run of experiment 'labkit'"):
        run(toy_config(tmp_path, "trainer.resume=last"), tracker=MemoryTracker("x"))


def test_backend_num_threads_limits_blas_threads(tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    original = threadpoolctl.threadpool_info()
    try:
        run(toy_config(tmp_path, "backend.num_threads=1"), tracker=MemoryTracker("t"))
        assert all(pool["num_threads"] == 1 for pool in threadpoolctl.threadpool_info())
    finally:
        for pool in original:  # restore what the process had, for the tests after this one
            threadpoolctl.threadpool_limits(limits=pool["num_threads"], user_api=pool["user_api"])
    with pytest.raises(ValueError, match=r"backend\.num_threads"):
        run(toy_config(tmp_path, "backend.num_threads=0"), tracker=MemoryTracker("u"))


def test_sigusr2_in_a_slurm_job_stops_like_sigterm(tmp_path, monkeypatch):
    """Slurm sends SIGUSR2 before the time limit (submitit's signal_delay_s): a clean stop with a checkpoint."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    missed: list[int] = []  # if labkit did not take SIGUSR2, this handler would (instead of killing pytest)
    previous = signal.signal(signal.SIGUSR2, lambda *_: missed.append(1))
    try:
        tracker = MemoryTracker("slurm")
        usr2 = AtStep(5, lambda: os.kill(os.getpid(), signal.SIGUSR2))
        with pytest.raises(TrainingInterrupted) as info:
            run(toy_config(tmp_path), tracker=tracker, callbacks=[usr2])
        assert info.value.signal_name == "SIGUSR2" and tracker.status == "KILLED"
        assert CheckpointStore(tmp_path / "checkpoints", "labkit", "slurm").load("last")["progress"]["step"] == 5
        assert missed == []
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_sigusr2_is_left_alone_outside_slurm(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SUBMITIT_LOCAL_JOB_ID", raising=False)
    seen = []
    before = signal.getsignal(signal.SIGUSR2)
    run(
        toy_config(tmp_path),
        tracker=MemoryTracker("plain"),
        callbacks=[AtStep(3, lambda: seen.append(signal.getsignal(signal.SIGUSR2)))],
    )
    assert seen == [before]  # no handler of labkit's on SIGUSR2 while training


def test_stop_signals_take_sigusr2_only_in_slurm_or_submitit_jobs(monkeypatch):
    from labkit.runner.callbacks import stop_signals

    for name in ("SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert stop_signals() == (signal.SIGINT, signal.SIGTERM)
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "17")
    assert stop_signals() == (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
