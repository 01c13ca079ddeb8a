"""The training loop: epochs and steps, evaluation, LR schedules, clipping, checkpoints, metric logging.

``TrainLoop.fit()`` trains until ``trainer.max_epochs`` / ``trainer.max_steps``, early stopping
or a signal. Metrics go through ``MetricLog``: they are held until the next ``last``
checkpoint and sent to the tracker right after it is written, so a resumed run (which
restarts from that checkpoint) never logs a step twice and never misses one. Each batch of
metrics has a sequence number (``progress.metric_seq``, saved in checkpoints); a resumed run
does not send again the batches an earlier attempt sent (a failed run sends what it held).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labkit.core.mode import no_grad
from labkit.data.loader import move_to
from labkit.distributed.strategy import Strategy
from labkit.optim.clip import clip_grad_norm_, clip_grad_value_
from labkit.runner.callbacks import Callback, InterruptHandler, TrainingInterrupted
from labkit.runner.checkpointing import Progress
from labkit.tasks.base import Loaders, Task

log = logging.getLogger("labkit.runner")


class MetricLog:
    """Metrics on their way to the tracker, and their history (for the curves figure).

    ``log`` holds values; ``release`` sends everything held and flushes. Metric batches
    numbered below ``skip_below`` were sent by the attempt this run resumes: they are not sent again.
    """

    def __init__(
        self,
        tracker: Any,
        progress: Progress,
        history: dict[str, list[tuple[int, float]]] | None = None,
        skip_below: int = 0,
    ) -> None:
        self.tracker = tracker
        self.progress = progress
        self.history: dict[str, list[tuple[int, float]]] = history if history is not None else {}
        self.skip_below = skip_below
        self.pending: list[tuple[dict[str, float], int]] = []

    def log(self, metrics: dict[str, float], step: int) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        for key, value in values.items():
            self.history.setdefault(key, []).append((step, value))
        seq = self.progress.metric_seq
        self.progress.metric_seq += 1
        if seq >= self.skip_below:
            self.pending.append((values, step))

    def release(self) -> None:
        for values, step in self.pending:
            self.tracker.log_metrics(values, step)
        self.pending.clear()
        self.tracker.flush()


class TrainLoop:
    """One run's training: the task, model and optimizer it drives and the state it keeps.

    Args:
        trainer: the validated ``trainer`` config node.
        monitor, monitor_mode: the metric that picks the best checkpoint ("val/accuracy", "max").
        checkpoint: ``checkpoint(name)`` writes ``last``/``best`` and returns its path.
        scheduler_interval: ``"epoch"`` or ``"step"``; metric-driven schedulers step after each evaluation.
        strategy: ``trainer.strategy`` (labkit.distributed.strategy); None: one process.
    """

    def __init__(
        self,
        *,
        task: Task,
        model: Any,
        optimizer: Any,
        loaders: Loaders,
        trainer: Any,
        metric_log: MetricLog,
        progress: Progress,
        checkpoint: Callable[[str], Path],
        monitor: str,
        monitor_mode: str,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        callbacks: Sequence[Callback] = (),
        device: Any = None,
        interrupt: InterruptHandler | None = None,
        strategy: Strategy | None = None,
    ) -> None:
        self.task, self.model, self.optimizer, self.loaders = task, model, optimizer, loaders
        self.trainer = trainer
        self.metrics = metric_log
        self.progress = progress
        self.checkpoint = checkpoint
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.callbacks = list(callbacks)
        self.device = device
        self.interrupt = interrupt or InterruptHandler()
        self.strategy = strategy if strategy is not None else Strategy(device)
        self.log_every = int(trainer.log_every)
        self.should_stop = False
        self.stop_reason: str | None = None
        self.throughput: float | None = None
        self.last_epoch_metrics: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self._tick = time.perf_counter()  # the end of the last training work (steps only count toward throughput)
        self._window_time = 0.0
        self._window_examples = 0
        self._empty_epochs = 0

    # ---- control -------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self.should_stop:
            log.info("stopping: %s", reason)
        self.should_stop, self.stop_reason = True, reason

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _limits_reached(self) -> bool:
        p, max_steps = self.progress, self.trainer.max_steps
        return p.epoch >= self.trainer.max_epochs or (max_steps is not None and p.step >= max_steps)

    def save_last(self) -> Path:
        """Write ``last.ckpt`` (counting every metric held so far as logged), then send those metrics."""
        self.progress.logged_seq = self.progress.metric_seq
        self.last_checkpoint = self.checkpoint("last")
        self.metrics.release()
        return self.last_checkpoint

    def _check_interrupt(self) -> None:
        received = self.strategy.interrupted(self.interrupt.received)  # under ddp: agreed by every rank
        if received is not None:
            path = self.save_last()
            raise TrainingInterrupted(received, getattr(self.metrics.tracker, "run_id", "?"), str(path))

    # ---- the loop ------------------------------------------------------------------------

    def fit(self) -> None:
        """Train until a limit, early stopping or a signal; evaluates once more at the end if needed."""
        self._emit("on_fit_start")
        self._tick = time.perf_counter()
        try:
            while not self.should_stop and not self._limits_reached():
                self._run_epoch()
                self._check_interrupt()
            if self.loaders.val is not None and self.progress.last_eval_step != self.progress.step:
                self._evaluate_and_track()
        finally:
            self._emit("on_fit_end")

    def _run_epoch(self) -> None:
        p, trainer = self.progress, self.trainer
        stateless = not hasattr(self.loaders.train, "load_state_dict")
        skip = p.batches_in_epoch if stateless else 0
        seen = 0
        self.model.train()
        for batch in self.loaders.train:
            seen += 1
            if skip:
                skip -= 1
                continue
            self._train_step(batch)
            if trainer.eval_every_steps is not None and p.step % trainer.eval_every_steps == 0:
                self._evaluate_and_track()
            if trainer.checkpoint_interval == "step" and p.step % trainer.checkpoint_every == 0:
                self.save_last()
            self._check_interrupt()
            self._tick = time.perf_counter()  # evaluation and checkpoints are not training time
            if self.should_stop or self._limits_reached():
                break
        else:
            if seen == 0 and p.batches_in_epoch == 0:
                # a loader resumed right after its last batch only closes that epoch; twice means no data
                self._empty_epochs += 1
                if self._empty_epochs > 1:
                    raise ValueError("train loader: expected batches, got an empty epoch (no training data?)")
                return
            self._empty_epochs = 0
            self._end_epoch()
            self._tick = time.perf_counter()
            return
        length = _length(self.loaders.train)
        if length is not None and p.batches_in_epoch >= length:
            self._end_epoch()

    def _train_step(self, batch: Any) -> None:
        p, trainer = self.progress, self.trainer
        if self.device is not None and self.device.type != "cpu":
            batch = move_to(batch, self.device)
        loss, count = self.task.training_loss(self.model, batch)
        # under ddp: the mean loss and the example count of the global batch (every rank's shard)
        value, count = self.strategy.begin_step(float(loss.item()), count, self.interrupt.received)
        self._emit("on_loss", value)
        self.optimizer.zero_grad()
        loss.backward()
        self.strategy.reduce_gradients()
        if trainer.grad_clip is not None:
            clip = clip_grad_norm_ if trainer.grad_clip_algorithm == "norm" else clip_grad_value_
            clip(self.model.parameters(), trainer.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step" and not _metric_driven(self.scheduler):
            self.scheduler.step()
        p.step += 1
        p.batches_in_epoch += 1
        p.epoch_loss_sum += value * count
        p.epoch_examples += count
        p.window_loss_sum += value * count
        p.window_examples += count
        now = time.perf_counter()
        self._window_time += now - self._tick
        self._tick = now
        self._window_examples += count
        if p.step % self.log_every == 0:
            elapsed = self._window_time
            self.throughput = self._window_examples / elapsed if elapsed > 0 else None
            metrics = {
                "train/loss": p.window_loss_sum / max(p.window_examples, 1),
                "train/lr": float(self.optimizer.param_groups[0]["lr"]),
            }
            if self.throughput is not None:
                metrics["train/throughput"] = self.throughput
            self.metrics.log(metrics, p.step)
            p.window_loss_sum, p.window_examples = 0.0, 0
            self._window_time, self._window_examples = 0.0, 0
        self._emit("on_step_end", value)
        self._tick = time.perf_counter()

    def _end_epoch(self) -> None:
        p, trainer = self.progress, self.trainer
        p.epoch += 1
        p.batches_in_epoch = 0
        self.last_epoch_metrics = {"epoch": float(p.epoch)}
        if p.epoch_examples:
            self.last_epoch_metrics["train/epoch_loss"] = p.epoch_loss_sum / p.epoch_examples
        p.epoch_loss_sum, p.epoch_examples = 0.0, 0
        self.metrics.log(self.last_epoch_metrics, p.step)
        if trainer.eval_every_steps is None:
            self.last_epoch_metrics.update(self._evaluate_and_track())
        if self.scheduler is not None and self.scheduler_interval == "epoch" and not _metric_driven(self.scheduler):
            self.scheduler.step()
        task_epoch_end = getattr(self.task, "on_epoch_end", None)
        if (
            task_epoch_end is not None and self.strategy.is_main
        ):  # per-epoch task artifacts (language-model samples ...)
            task_epoch_end(self.model, self.metrics.tracker, p.epoch)
        self._emit("on_epoch_end")
        if trainer.checkpoint_interval == "epoch" and p.epoch % trainer.checkpoint_every == 0:
            self.save_last()

    # ---- evaluation ----------------------------------------------------------------------

    def evaluate(self, split: str) -> dict[str, float]:
        """The task's metrics on ``split`` ("val"/"test"), prefixed: ``{"val/accuracy": 0.97}``; {} without data."""
        loader = getattr(self.loaders, split)
        if loader is None:
            return {}
        # under ddp rank 0 evaluates and every rank receives its metrics, so all take the same decisions
        return self.strategy.on_main(lambda: self._evaluate_on(split, loader))

    def _evaluate_on(self, split: str, loader: Any) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                raw = self.task.evaluate(self.model, loader)
        finally:
            self.model.train(was_training)
        return {f"{split}/{k}": float(v) for k, v in raw.items()}

    def _evaluate_and_track(self) -> dict[str, float]:
        p = self.progress
        metrics = self.evaluate("val")
        p.last_eval_step = p.step
        if not metrics:
            return {}
        self.last_eval = metrics
        self.metrics.log(metrics, p.step)
        if self.monitor in metrics:
            value = metrics[self.monitor]
            if p.best is None or (value < p.best if self.monitor_mode == "min" else value > p.best):
                p.best, p.best_step = value, p.step
                self.checkpoint("best")
            if self.scheduler is not None and _metric_driven(self.scheduler):
                self.scheduler.step(value)
        else:
            log.warning("monitor %r is not among the evaluated metrics %s", self.monitor, sorted(metrics))
        self._emit("on_evaluate", metrics)
        return metrics


def _metric_driven(scheduler: Any) -> bool:
    return bool(getattr(scheduler, "metric_driven", False))


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
