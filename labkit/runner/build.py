"""Building a run's pieces from the validated config: task, model, optimizer, scheduler, tracker, callbacks.

Every ``_target_`` goes through ``labkit.runner.instantiate`` (the allowlist, the
"Instantiating model <...>" log line). Nodes are built as partials and called with what
only the runner knows: the data config and generators, the task's sizes, the parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from labkit.backends.device import Device
from labkit.backends.registry import backends
from labkit.runner.callbacks import Callback, EarlyStopping, NanGuard, ProgressReporter
from labkit.runner.instantiate import accepts, call_accepting, instantiate, resolve_target
from labkit.runner.seed import Seeds

log = logging.getLogger("labkit.runner")


def as_partial(node: Any) -> dict[str, Any]:
    """A config node as a plain dict with ``_partial_: true`` (the runner supplies the rest)."""
    plain = OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node)
    plain["_partial_"] = True
    return plain


def build_task(cfg: DictConfig, seeds: Seeds) -> Any:
    """``task(data_cfg=cfg.data, generator=seeds.data)`` (each only if the task's signature takes it)."""
    factory = instantiate(as_partial(cfg.task), "task")
    return call_accepting(factory, data_cfg=cfg.data, generator=seeds.data)


def build_model(cfg: DictConfig, model_kwargs: Mapping[str, Any], seeds: Seeds, device: Device) -> Any:
    """``model(**task.model_kwargs(), generator=seeds.model)`` on ``device``."""
    kwargs = dict(model_kwargs)
    factory = instantiate(as_partial(cfg.model), "model")
    if "generator" not in kwargs and "generator" not in cfg.model and accepts(factory, "generator"):
        kwargs["generator"] = seeds.model
    return factory(**kwargs).to(device)


def build_optimizer(cfg: DictConfig, model: Any) -> Any:
    node = as_partial(cfg.optim)
    # YAML has no tuples: list hyper-parameters (betas) go in as the tuples optimizers take
    tuples = {k: tuple(v) for k, v in node.items() if isinstance(v, list)}
    return instantiate(node, "optim")(model.parameters(), **tuples)


def build_scheduler(cfg: DictConfig, optimizer: Any, train_loader: Any, monitor_mode: str) -> tuple[Any, str]:
    """The LR scheduler (or None) and when it steps, ``scheduler.interval``: ``"epoch"`` or ``"step"``.

    ``total_steps: null`` (OneCycleLR) becomes the run's step count; ``mode: null``
    (ReduceLROnPlateau) the monitored metric's direction.
    """
    node = cfg.get("scheduler")
    if node is None or "_target_" not in node:
        return None, "epoch"
    plain = OmegaConf.to_container(node)
    interval = plain.pop("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise ValueError(f"config key 'scheduler.interval': expected 'epoch' or 'step', got {interval!r}")
    if "total_steps" in plain and plain["total_steps"] is None:
        plain["total_steps"] = total_steps(cfg.trainer, train_loader)
    if "mode" in plain and plain["mode"] is None:
        plain["mode"] = monitor_mode
    return instantiate(as_partial(plain), "scheduler")(optimizer), interval


def build_tracker(
    tracking: Mapping[str, Any],
    *,
    work_dir: Path,
    run_name: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """The tracker ``tracking._target_`` names, called with the settings and run arguments it accepts.

    ``uri: null`` means the embedded store ``sqlite:///<work_dir>/mlflow.db``.
    """
    node = dict(OmegaConf.to_container(tracking) if isinstance(tracking, DictConfig) else tracking)
    target = node.pop("_target_")
    node.pop("_partial_", None)
    if node.get("uri") is None:
        node["uri"] = f"sqlite:///{work_dir / 'mlflow.db'}"
    factory = resolve_target(target, "tracking")
    runtime = {"run_name": run_name, "run_id": run_id, "parent_run_id": parent_run_id, "tags": tags}
    log.info("Instantiating tracking <%s>", target)
    return call_accepting(factory, **node, **{k: v for k, v in runtime.items() if v is not None})


def build_callbacks(
    trainer: Any, monitor: str, monitor_mode: str, train_loader: Any, extra: Sequence[Callback] = ()
) -> list[Callback]:
    """The NaN guard, early stopping (when ``trainer.early_stopping.patience`` is set), progress, then ``extra``."""
    callbacks: list[Callback] = []
    if trainer.nan_guard:
        callbacks.append(NanGuard())
    es = trainer.early_stopping
    if es.patience is not None:
        callbacks.append(EarlyStopping(monitor, monitor_mode, es.patience, es.min_delta))
    callbacks.append(ProgressReporter(total_steps(trainer, train_loader), trainer.progress_bar))
    return callbacks + list(extra)


def resolve_device(name: str) -> Device:
    """``backend.device`` parsed and checked to be usable here."""
    try:
        device = Device.parse(name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config key 'backend.device': {exc}") from None
    if device.type != "cpu":
        try:
            available = backends.for_device(device).is_available()
        except Exception:
            available = False
        if not available:
            raise ValueError(
                f"config key 'backend.device': expected an available device, got {name!r} "
                "(no GPU with cupy here; use backend=cpu)"
            )
    return device


def total_steps(trainer: Any, train_loader: Any) -> int | None:
    """Optimizer steps the run will take at most (None when the loader has no length and no max_steps)."""
    try:
        per_epoch = len(train_loader)
    except TypeError:
        per_epoch = None
    total = per_epoch * trainer.max_epochs if per_epoch is not None else None
    if trainer.max_steps is not None:
        total = trainer.max_steps if total is None else min(total, trainer.max_steps)
    return total
