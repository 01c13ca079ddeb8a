"""``run(cfg) -> dict``: one training run from a composed config, recorded by a tracker.

Order: validate the config and every ``_target_`` (nothing is imported before), seed, build
the task (which finds its data or raises ``DatasetNotFoundError``), open the tracker run,
build model / optimizer / scheduler, restore a checkpoint when resuming, train, evaluate
the test split, log artifacts, end the run. The run always ends ``FINISHED``, ``FAILED``
(error tags + ``error.txt``) or ``KILLED`` (SIGINT/SIGTERM, SIGUSR2 in a Slurm job; after a final checkpoint).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from labkit.backends.allocator import reuse_freed_memory
from labkit.core.mode import no_grad
from labkit.distributed.strategy import Strategy, build_strategy
from labkit.plugins.kernels import selected_kernels, use_kernels
from labkit.plugins.registry import registry
from labkit.runner.artifacts import log_checkpoints, log_model, log_run_files
from labkit.runner.build import (
    build_callbacks,
    build_model,
    build_optimizer,
    build_scheduler,
    build_task,
    build_tracker,
    resolve_device,
)
from labkit.runner.callbacks import Callback, InterruptHandler, ProgressReporter
from labkit.runner.checkpointing import (
    CheckpointStore,
    Progress,
    collect_state,
    config_changes,
    fetch_from_tracker,
    latest_run,
    restore_state,
)
from labkit.runner.instantiate import check_targets
from labkit.runner.loop import MetricLog, TrainLoop
from labkit.runner.schema import validate_config
from labkit.runner.seed import seed_everything
from labkit.tracking.base import MemoryTracker, Tracker

log = logging.getLogger("labkit.runner")

#: config keys left out of the run's params (they change between attempts of one run)
# keys that may differ when a run is resumed (a sweep trial resumed alone: its name and store come back)
VOLATILE_KEYS = ("trainer.resume", "run_name", "tracking.uri")


def run(
    cfg: DictConfig | dict[str, Any],
    tracker: Tracker | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    overrides: Sequence[str] = (),
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate what ``cfg`` describes; return the final metrics and ``run_id``.

    Args:
        cfg: the composed config (``labkit/conf/config.yaml`` and its groups), as DictConfig or dict.
        tracker: record into this tracker instead of building one from ``cfg.tracking``.
        callbacks: extra loop callbacks (see ``labkit.runner.callbacks``).
        overrides: the command-line overrides, logged as ``overrides.yaml``.
        parent_run_id: nest the run under this one (a sweep's parent run).
        tags: extra tags for the run.

    Returns:
        ``{"run_id", "epoch", "step", "val/<metric>", "test/<metric>", "<monitor>_best", ...}``
        (the last logged value of every val/test metric), ``checkpoint_dir``, and ``tracking_uri``
        for trackers with a store (MLflow).

    Raises:
        ValueError, TypeError: an invalid config (the message names the key) or a refused ``_target_``.
        labkit.runner.callbacks.TrainingInterrupted: stopped by a stop signal (SIGINT, SIGTERM; SIGUSR2 in a Slurm job): run KILLED, checkpoint written.
        Any error from training (run FAILED, error recorded).
    """
    cfg = validate_config(cfg)
    registry.load_plugins()  # installed plugins' datasets, tasks and kernels, before anything is built
    kernel_names = [str(k) for k in cfg.backend.kernels]
    selected_kernels(kernel_names)  # an unknown or clashing backend.kernels name fails here, before training
    plain = OmegaConf.to_container(cfg)
    check_targets(plain)
    trainer = cfg.trainer
    work_dir = Path(cfg.work_dir).expanduser().resolve() if cfg.work_dir else Path.cwd()
    plain["work_dir"] = str(work_dir)
    if cfg.backend.reuse_freed_memory:
        reuse_freed_memory()
    if cfg.backend.num_threads is not None:  # process-wide, like the allocator setting
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(cfg.backend.num_threads))
    device = resolve_device(cfg.backend.device)
    strategy = build_strategy(str(trainer.strategy), device)
    device = strategy.device  # ddp on cuda: cuda:<local rank>, one GPU per process
    seeds = seed_everything(cfg.seed)
    experiment = str(cfg.tracking.experiment)
    ckpt_root = _under(work_dir, trainer.checkpoint_dir or "checkpoints")
    resume_id = trainer.resume
    if resume_id == "last":
        resume_id = strategy.on_main(lambda: latest_run(ckpt_root, experiment))
        log.info("trainer.resume=last: resuming run %s", resume_id)
    if resume_id is not None and tracker is not None and tracker.run_id != resume_id:
        raise ValueError(
            f"trainer.resume: expected the given tracker to hold run {resume_id!r}, got {tracker.run_id!r}"
        )

    task = build_task(cfg, seeds)
    loaders = task.setup(seeds.data)
    strategy.shard(loaders.train)  # ddp: this rank's shard of every global batch
    monitor = trainer.monitor or _prefixed(task.monitor, "val")
    monitor_mode = trainer.monitor_mode or task.monitor_mode

    def open_run() -> str:  # under ddp on rank 0 only: the other ranks record nothing
        nonlocal tracker
        if tracker is None:
            tracker = build_tracker(
                cfg.tracking,
                work_dir=work_dir,
                run_name=run_name_for(cfg),
                run_id=resume_id,
                parent_run_id=parent_run_id,
            )
            if resume_id is None and isinstance(tracker, MemoryTracker) and tracker.run_id == "memory":
                tracker.run_id = f"memory-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        return str(tracker.run_id)

    run_id = strategy.on_main(open_run)
    tracker, store = strategy.replicas(tracker, CheckpointStore(ckpt_root, experiment, run_id))
    metric_log: MetricLog | None = None
    kernels = ExitStack()
    try:
        active_kernels = kernels.enter_context(use_kernels(kernel_names))  # restored when the run ends
        run_tags = {
            "labkit.task": str(cfg.task._target_),
            "labkit.model": str(cfg.model._target_),
            "labkit.device": str(device),
            "labkit.monitor": monitor,
            "labkit.monitor_mode": monitor_mode,
            "labkit.checkpoints": str(store.dir),
            "labkit.kernels": ",".join(active_kernels) or "none",
            "labkit.world_size": str(strategy.world_size),
            **({"labkit.overrides": " ".join(overrides)} if overrides else {}),
            **{str(k): str(v) for k, v in (cfg.get("tags") or {}).items()},
            **dict(tags or {}),
        }
        tracker.set_tags(run_tags)
        tracker.log_params(_params(plain))
        model = build_model(cfg, task.model_kwargs(), seeds, device)
        prepare = getattr(task, "prepare_model", None)
        if callable(prepare):  # statistics of the training data the model keeps (term weights ...)
            prepare(model)
        optimizer = build_optimizer(cfg, model)
        strategy.setup(model, optimizer, seeds, loaders.train)  # ddp: equal replicas, per-rank random streams
        scheduler, interval = build_scheduler(cfg, optimizer, loaders.train, monitor_mode)
        loop_callbacks = build_callbacks(trainer, monitor, monitor_mode, loaders.train, callbacks)
        if not strategy.is_main:  # one progress bar / epoch log line: rank 0's
            loop_callbacks = [cb for cb in loop_callbacks if not isinstance(cb, ProgressReporter)]
        named = {cb.name: cb for cb in loop_callbacks if cb.name}
        pieces = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "loader": loaders.train}

        progress, history, skip_below = Progress(), {}, 0
        if resume_id is not None:
            progress, history, skip_below = _resume(store, tracker, plain, pieces, seeds, named, strategy)
        metric_log = MetricLog(tracker, progress, history, skip_below)

        def checkpoint(name: str) -> Path:
            state = collect_state(
                **pieces, seeds=seeds, progress=progress, callbacks=named, history=metric_log.history, config=plain
            )
            state.update(strategy.rank_state(seeds, loaders.train))  # ddp: every rank's random streams
            return store.save(name, state)

        interrupt = InterruptHandler()
        loop = TrainLoop(
            task=task,
            model=model,
            optimizer=optimizer,
            loaders=loaders,
            trainer=trainer,
            metric_log=metric_log,
            progress=progress,
            checkpoint=checkpoint,
            monitor=monitor,
            monitor_mode=monitor_mode,
            scheduler=scheduler,
            scheduler_interval=interval,
            callbacks=loop_callbacks,
            device=device,
            interrupt=interrupt,
            strategy=strategy,
        )
        if not progress.done:
            with interrupt.installed():
                loop.fit()
            _final_evaluation(loop, store, task, loaders, tracker)
            progress.done = True
            loop.save_last()
        if strategy.is_main:
            _log_artifacts(tracker, plain, overrides, metric_log, model, task, loaders, store)
        tracker.finish("FINISHED")
    except BaseException as exc:
        _record_end(tracker, exc, metric_log, store, trainer.log_checkpoints)
        strategy.on_error(exc)  # ddp: a rank failing alone ends every rank (the others would wait for it)
        raise
    finally:
        kernels.close()
    strategy.finish()
    result: dict[str, Any] = {"run_id": tracker.run_id, "epoch": progress.epoch, "step": progress.step}
    for key, points in sorted(metric_log.history.items()):
        if key.startswith(("val/", "test/")) and points:
            result[key] = points[-1][1]
    if hasattr(tracker, "uri"):
        result["tracking_uri"] = str(tracker.uri)
    if getattr(tracker, "spool_dir", None) is not None:  # a spooled run: what the store has yet
        result["spool_dir"] = str(tracker.spool_dir)
        result["mlflow_run_id"] = tracker.mlflow_run_id
    result["checkpoint_dir"] = str(store.dir)
    if strategy.world_size > 1:  # ddp: which rank returned this (rank 0 holds the tracked run)
        result["rank"] = strategy.rank
    return result


def run_name_for(cfg: Any) -> str | None:
    """The MLflow run name: ``cfg.run_name`` when set (a sweep job: its overrides), else
    ``<experiment>-<YYYYmmdd>-<HHMMSS>-<hex4>`` when an experiment config was chosen
    (``labkit train experiment=digits_cnn`` -> ``digits_cnn-20261126-101500-ab12``), else None
    (the tracker's own ``run-<date>-<time>-<hex4>``). The clock and the OS's randomness name it, never a
    seeded stream (seeded names would repeat)."""
    if cfg.get("run_name"):
        return str(cfg.run_name)
    # Which experiment a config came from is known to Hydra alone: it records the option it composed
    # for each group in hydra.runtime.choices. Reading it there needs no experiment file to repeat its
    # own name in a key (which a copied file would carry over wrongly). It is set only inside a Hydra job
    # (labkit train, sweeps); run(cfg) called on compose()'s config or by labkit rerun gets the plain name.
    # hydra is not imported for this: if nothing imported it, no Hydra job is running.
    import sys

    hydra_config = sys.modules.get("hydra.core.hydra_config")
    if hydra_config is None or not hydra_config.HydraConfig.initialized():
        return None
    experiment = hydra_config.HydraConfig.get().runtime.choices.get("experiment")
    if experiment in (None, "null"):
        return None
    return f"{str(experiment).replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


# ---- pieces -----------------------------------------------------------------------------------


def _resume(
    store: CheckpointStore,
    tracker: Any,
    plain: Mapping[str, Any],
    pieces: Mapping[str, Any],
    seeds: Any,
    named: Mapping[str, Callback],
    strategy: Strategy,
) -> tuple[Progress, dict[str, list[tuple[int, float]]], int]:
    """Load ``last.ckpt`` (local, else from the run's artifacts) into the freshly built pieces.

    Under ddp rank 0 finds the checkpoint and sends it to every rank.
    Returns the progress, the metric history and the first metric batch not yet sent to the tracker.
    """

    def locate() -> None:
        if not store.exists("last") and not fetch_from_tracker(tracker, store):
            raise ValueError(
                f"trainer.resume={store.run_id}: expected a checkpoint at {store.path('last')} or "
                "checkpoints/last.ckpt in the run's artifacts, found neither"
            )

    state = strategy.load_checkpoint(store, locate)
    changed = [c for c in config_changes(state["config"], plain) if c not in VOLATILE_KEYS]
    if changed:
        log.warning("resuming run %s with a changed config: %s", store.run_id, ", ".join(changed))
    progress, history = restore_state(state, **pieces, seeds=seeds, callbacks=named)
    strategy.restore_rank_state(state, seeds, pieces["loader"])  # ddp: this rank's own random streams
    skip_below = max(progress.logged_seq, int(store.meta().get("logged_seq", 0)))
    log.info("resumed run %s at epoch %d, step %d", store.run_id, progress.epoch, progress.step)
    return progress, history, skip_below


def _final_evaluation(loop: TrainLoop, store: CheckpointStore, task: Any, loaders: Any, tracker: Any) -> None:
    """Test metrics (with the best weights unless ``trainer.test_weights=last``) and the task's artifacts."""
    trainer, step = loop.trainer, loop.progress.step
    split = "test" if trainer.test and loaders.test is not None else "val"
    use_best = trainer.test_weights == "best" and store.exists("best")
    with _weights(loop.model, store if use_best else None):
        metrics = loop.evaluate("test") if split == "test" else {}
        extra = {}
        if loop.strategy.is_main:  # the task's figures and extra metrics are rank 0's to log
            loop.model.eval()
            with no_grad():
                extra = task.artifacts(loop.model, loaders, tracker, split=split) or {}
            loop.model.train()
    metrics.update({_prefixed(k, split): float(v) for k, v in extra.items()})
    if loop.progress.best is not None:
        metrics[f"{loop.monitor}_best"] = loop.progress.best
    if metrics:
        loop.metrics.log(metrics, step)


@contextmanager
def _weights(model: Any, store: CheckpointStore | None) -> Iterator[None]:
    """Swap the best checkpoint's weights into ``model`` for the block (no-op when ``store`` is None)."""
    if store is None:
        yield
        return
    current = {k: v.data.copy() for k, v in model.state_dict().items()}
    model.load_state_dict(store.load("best")["model"])
    try:
        yield
    finally:
        model.load_state_dict(current)


def _log_artifacts(
    tracker: Any,
    plain: Mapping[str, Any],
    overrides: Sequence[str],
    metric_log: MetricLog,
    model: Any,
    task: Any,
    loaders: Any,
    store: CheckpointStore,
) -> None:
    """Config, overrides, curves, summary, environment, checkpoints and the pyfunc model."""
    log_run_files(
        tracker,
        config_yaml=OmegaConf.to_yaml(OmegaConf.create(dict(plain))),
        overrides=overrides,
        history=metric_log.history,
        model=model,
    )
    trainer = plain["trainer"]
    if trainer["log_checkpoints"]:
        log_checkpoints(tracker, [store.path("last"), store.path("best")])
    if trainer["log_model"]:
        model_config = {k: v for k, v in plain["model"].items() if k != "_partial_"}
        model_config.update({k: v for k, v in task.model_kwargs().items() if k != "generator"})
        log_model(tracker, model, model_config, task, loaders)


def _record_end(
    tracker: Any, exc: BaseException, metric_log: MetricLog | None, store: CheckpointStore, upload: bool
) -> None:
    """End the run KILLED (interrupts) or FAILED, keeping what it logged and checkpointed."""
    from labkit.tracking.mlflow_tracker import record_failure

    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    try:
        if metric_log is not None and metric_log.pending:
            metric_log.release()  # show the curves up to the failure; a resume will not send these again
            store.mark_logged(metric_log.progress.metric_seq)
        if upload:
            log_checkpoints(tracker, [store.path("last"), store.path("best")])
    except Exception as inner:  # recording must not hide the original error
        log.warning("while ending run %s: %s", getattr(tracker, "run_id", "?"), inner)
    if status == "KILLED":
        log.warning("run %s KILLED (%s); resume with trainer.resume=%s", tracker.run_id, exc, tracker.run_id)
    record_failure(tracker, exc, status)


def _params(plain: Mapping[str, Any]) -> dict[str, str]:
    from labkit.tracking.params import flatten_config

    return {k: v for k, v in flatten_config(plain).items() if k not in VOLATILE_KEYS}


def _prefixed(name: str, split: str) -> str:
    return name if "/" in name else f"{split}/{name}"


def _under(base: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p
