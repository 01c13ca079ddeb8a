"""Training-loop callbacks: early stopping, the NaN/inf guard, progress display, signal handling.

A callback overrides any of the hooks below; the loop calls them in order with itself
as the first argument. Callbacks with ``state_dict()``/``load_state_dict()`` are saved
in checkpoints under their ``name``.

    on_fit_start(loop)            before the first step (after a resume restored the state)
    on_loss(loop, loss)           a batch's loss value, before backward
    on_step_end(loop, loss)       after the optimizer step (loop.progress.step counts it)
    on_evaluate(loop, metrics)    after an evaluation, metrics prefixed ("val/accuracy")
    on_epoch_end(loop)            after an epoch's last batch (and its evaluation)
    on_fit_end(loop)              after the last step, also when stopping early or interrupted
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("labkit.runner")


class Callback:
    """Base class: every hook does nothing."""

    name: str = ""

    def on_fit_start(self, loop: Any) -> None:
        pass

    def on_loss(self, loop: Any, loss: float) -> None:
        pass

    def on_step_end(self, loop: Any, loss: float) -> None:
        pass

    def on_evaluate(self, loop: Any, metrics: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, loop: Any) -> None:
        pass

    def on_fit_end(self, loop: Any) -> None:
        pass


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NanGuard(Callback):
    """Stop with ``NonFiniteLossError`` as soon as a batch loss is NaN or infinite (before it updates anything)."""

    name = "nan_guard"

    def on_loss(self, loop: Any, loss: float) -> None:
        if not math.isfinite(loss):
            p = loop.progress
            raise NonFiniteLossError(
                f"train/loss became {loss} at step {p.step + 1} (epoch {p.epoch}, batch {p.batches_in_epoch + 1}); "
                "stopped before the update. Try a lower optim.lr, trainer.grad_clip=1.0, or check the data "
                "(trainer.nan_guard=false turns this check off)"
            )


class EarlyStopping(Callback):
    """Ask the loop to stop once ``monitor`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    name = "early_stopping"

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: expected mode 'min' or 'max', got {mode!r}")
        if patience <= 0:
            raise ValueError(f"EarlyStopping: expected a positive patience, got {patience}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, abs(min_delta)
        self.best: float | None = None
        self.bad = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_evaluate(self, loop: Any, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            return
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            loop.request_stop(
                f"early stopping: {self.monitor} did not improve on {self.best:.6g} for {self.bad} evaluations"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], int(state["bad"])


class ProgressReporter(Callback):
    """A tqdm bar (step, epoch, loss, throughput, ETA) on a terminal; one log line per epoch otherwise."""

    name = "progress"

    def __init__(self, total_steps: int | None, enabled: bool | None = None) -> None:
        self.total_steps = total_steps
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None
        self._epoch_start = time.perf_counter()

    def on_fit_start(self, loop: Any) -> None:
        self._epoch_start = time.perf_counter()
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total_steps, initial=loop.progress.step, unit="step", dynamic_ncols=True)

    def on_step_end(self, loop: Any, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loop.progress.step % max(1, loop.log_every) == 0:
                postfix = {"epoch": loop.progress.epoch, "loss": f"{loss:.4g}"}
                if loop.throughput is not None:
                    postfix["ex/s"] = f"{loop.throughput:.0f}"
                self.bar.set_postfix(postfix, refresh=False)

    def on_epoch_end(self, loop: Any) -> None:
        elapsed = time.perf_counter() - self._epoch_start
        self._epoch_start = time.perf_counter()
        if self.bar is not None:
            return
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(loop.last_epoch_metrics.items()) if k.count("/") == 1)
        log.info("epoch %d  step %d  %s  (%.1fs)", loop.progress.epoch, loop.progress.step, shown, elapsed)

    def on_fit_end(self, loop: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run cleanly: SIGINT, SIGTERM and, in a Slurm or submitit job, SIGUSR2.

    Slurm (``sbatch --signal=USR2@<s>``, which submitit's ``signal_delay_s`` sets) sends SIGUSR2
    that many seconds before the job's time limit; SIGTERM follows at the limit, with only
    Slurm's ``KillWait`` (30 s by default) before SIGKILL. submitit's local executor
    (``hydra/launcher=slurm_local``) does the same.
    """
    signals = [signal.SIGINT, signal.SIGTERM]
    in_job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    if in_job and hasattr(signal, "SIGUSR2"):
        signals.append(signal.SIGUSR2)
    return tuple(signals)


class InterruptHandler:
    """The ``stop_signals()`` ask the loop to stop after the current step; a second signal stops at once.

    Installed only in the main thread (Python delivers signals there); elsewhere it does nothing.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"second {name}: stopping now")
        self.received = name
        why = " (Slurm: the job's time limit is near)" if name == "SIGUSR2" else ""
        log.warning("%s received%s: finishing the current step, writing a checkpoint, then stopping", name, why)

    @contextmanager
    def installed(self) -> Iterator[InterruptHandler]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in stop_signals()}
        for sig in previous:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on a stop signal (``stop_signals()``) after writing its checkpoint (status KILLED)."""

    def __init__(self, signal_name: str, run_id: str, checkpoint: str | None) -> None:
        super().__init__(f"{signal_name}: run {run_id} stopped; checkpoint {checkpoint}")
        self.signal_name, self.run_id, self.checkpoint = signal_name, run_id, checkpoint
