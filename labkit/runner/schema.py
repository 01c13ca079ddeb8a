"""Typed schemas for the runner's config groups, and up-front validation of a composed config.

``trainer``, ``tracking`` and ``backend`` are dataclasses registered in Hydra's ConfigStore as
``schema/<group>/base``; every YAML option of those groups starts with
``defaults: [optional /schema/<group>@_here_: base, _self_]``, so once ``register_configs()``
ran (``labkit train`` and ``labkit.runner.compose`` do it) Hydra checks types and keys while
composing. Plain ``hydra.compose`` without it still works (``optional``). ``validate_config``
repeats the checks before every run, for configs from anywhere (``run(dict)``, ``labkit rerun``),
and turns OmegaConf's errors into ``ValueError``/``TypeError`` that name the full key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

#: top-level keys of a composed config (groups first, then plain settings)
ROOT_KEYS = (
    "task",
    "model",
    "data",
    "optim",
    "scheduler",
    "trainer",
    "tracking",
    "backend",
    "seed",
    "run_name",
    "work_dir",
    "tags",
    "optimized_metric",
)
REQUIRED_KEYS = ("task", "model", "data", "optim", "trainer", "tracking", "backend", "seed")


@dataclass
class EarlyStoppingConfig:
    """Stop when ``trainer.monitor`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    patience: int | None = None  # None: no early stopping
    min_delta: float = 0.0


@dataclass
class TrainerConfig:
    """The training loop (``trainer.*``)."""

    max_epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps in all (None: no limit)
    eval_every_steps: int | None = None  # None: evaluate at the end of every epoch
    log_every: int = 10  # log train/loss (mean over the window), train/lr, train/throughput every N steps
    grad_clip: float | None = None  # None: no clipping
    grad_clip_algorithm: str = "norm"  # "norm" (clip_grad_norm_) | "value" (clip_grad_value_)
    checkpoint_every: int = 1  # write last.ckpt every N epochs or steps (and always at the end)
    checkpoint_interval: str = "epoch"  # "epoch" | "step"
    checkpoint_dir: str | None = None  # None: <work_dir>/checkpoints
    resume: str | None = None  # a run id, or "last" (the latest run of tracking.experiment)
    monitor: str | None = None  # None: "val/" + the task's monitor
    monitor_mode: str | None = None  # "min" | "max"; None: the task's
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    nan_guard: bool = True  # stop with an error when the loss is NaN or infinite
    progress_bar: bool | None = None  # None: when stderr is a terminal
    test: bool = True  # evaluate the test split at the end
    test_weights: str = "best"  # "best" | "last"
    log_model: bool = True  # log the model as an MLflow pyfunc model
    log_checkpoints: bool = True  # log best.ckpt / last.ckpt as run artifacts
    strategy: str = "single"  # "single" | "ddp" (data-parallel over MPI: mpirun -n N; docs/distributed.md)


@dataclass
class SpoolConfig:
    """``tracking.spool.*``: journal tracking writes on local disk and send them when the store answers.

    See labkit/tracking/spool_settings.py (``SpoolSettings``, which checks the ranges) and docs/tracking.md.
    """

    enabled: bool = False  # off: an unreachable tracking server fails the run at its start, naming the URI
    dir: str | None = None  # None: mlflow-spool/ next to a SQLite store, else in the launch directory
    offline: bool = False  # never contact the store during the run; `labkit sync` sends it later
    max_wait_s: float = 30.0  # at the end of a run, wait at most this long for the backlog to be sent
    request_timeout_s: int = 5  # the bound on one HTTP request to the store (no MLflow retries)
    backoff_min_s: float = 1.0  # after a failure, retry after min, 2 min, 4 min ... up to max
    backoff_max_s: float = 60.0


@dataclass
class TrackingConfig:
    """Where runs are recorded (``tracking.*``): a tracker class and its settings.

    The runner calls ``_target_`` with the keys its signature accepts, plus ``run_name``,
    ``run_id`` (resume), ``parent_run_id`` (sweeps) and ``tags``.
    """

    _target_: str = "labkit.tracking.mlflow_tracker.MLflowTracker"
    uri: str | None = None  # None: sqlite:///<work_dir>/mlflow.db, artifacts in <work_dir>/mlruns
    experiment: str = "labkit"
    artifact_location: str | None = None
    flush_every_s: float = 5.0
    flush_every_n: int = 1000
    spool: SpoolConfig = field(default_factory=SpoolConfig)


@dataclass
class BackendConfig:
    """Where the arrays live (``backend.*``)."""

    device: str = "cpu"  # "cpu" | "cuda" | "cuda:1"
    reuse_freed_memory: bool = True  # keep freed large host buffers for reuse (glibc)
    num_threads: int | None = None  # BLAS/OpenMP threads for the process; null: the libraries' default
    # plugin kernels for this run: plugin names (all their kernels) or kernel names ("fastkernels.maxpool2d@numpy")
    kernels: list[str] = field(default_factory=list)


SCHEMAS: dict[str, type] = {"trainer": TrainerConfig, "tracking": TrackingConfig, "backend": BackendConfig}
_CHOICES = {
    "trainer.grad_clip_algorithm": ("norm", "value"),
    "trainer.checkpoint_interval": ("epoch", "step"),
    "trainer.monitor_mode": ("min", "max", None),
    "trainer.test_weights": ("best", "last"),
    "trainer.strategy": ("single", "ddp"),
}
_POSITIVE = ("trainer.max_epochs", "trainer.log_every", "trainer.checkpoint_every")
_POSITIVE_OR_NONE = (
    "backend.num_threads",
    "trainer.max_steps",
    "trainer.eval_every_steps",
    "trainer.early_stopping.patience",
)


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore as ``schema/trainer/base``, ``schema/tracking/base`` ..."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=f"schema/{group}", name="base", node=schema)


def _error(key: str, exc: OmegaConfBaseException) -> Exception:
    """OmegaConf's error as a ValueError/TypeError naming ``key``."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ValidationError):
        return TypeError(f"config key {key!r}: {message}")
    return ValueError(f"config key {key!r}: {message}")


def validate_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """The composed config, checked: required groups present, nothing missing, typed groups valid.

    Returns a resolved copy in which ``trainer``, ``tracking`` and ``backend`` carry every
    schema field (defaults filled in).

    Raises:
        ValueError: a missing (``???``) value, an unknown key, or a value outside its choices,
            naming the full key (``trainer.max_epochs``).
        TypeError: a value of the wrong type.
    """
    if isinstance(cfg, dict):
        cfg = OmegaConf.create(cfg)
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"run: expected a DictConfig or dict config, got {type(cfg).__name__}")
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        raise ValueError(f"config key {exc.full_key!r}: expected a value, got '???' (missing)") from None
    except OmegaConfBaseException as exc:
        raise ValueError(f"config: {str(exc).splitlines()[0]}") from None
    if not isinstance(plain, dict):
        raise TypeError(f"run: expected a mapping at the top of the config, got {type(plain).__name__}")
    unknown = sorted(set(plain) - set(ROOT_KEYS))
    if unknown:
        raise ValueError(f"config: unknown top-level key(s) {unknown}; expected keys among {list(ROOT_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if plain.get(k) is None]
    if missing:
        raise ValueError(f"config: expected the keys {missing} to be set (a group option or a value), got none")
    if isinstance(plain["seed"], bool) or not isinstance(plain["seed"], int):
        raise TypeError(f"config key 'seed': expected an integer, got {plain['seed']!r}")
    for group, schema in SCHEMAS.items():
        node = plain[group]
        if not isinstance(node, dict):
            raise TypeError(f"config key {group!r}: expected a mapping of settings, got {node!r}")
        try:
            typed = OmegaConf.merge(OmegaConf.structured(schema), node)
        except (ConfigKeyError, ValidationError) as exc:
            raise _error(f"{group}.{exc.full_key}" if exc.full_key else group, exc) from None
        plain[group] = OmegaConf.to_container(typed)
    _check_values(plain)
    return OmegaConf.create(plain)


def _get(plain: dict[str, Any], dotted: str) -> Any:
    node: Any = plain
    for part in dotted.split("."):
        node = node[part]
    return node


def _check_values(plain: dict[str, Any]) -> None:
    for key, choices in _CHOICES.items():
        value = _get(plain, key)
        if value not in choices:
            raise ValueError(f"config key {key!r}: expected one of {list(choices)}, got {value!r}")
    for key in _POSITIVE + _POSITIVE_OR_NONE:
        value = _get(plain, key)
        if value is None and key in _POSITIVE_OR_NONE:
            continue
        if value is None or value <= 0:
            raise ValueError(f"config key {key!r}: expected a positive integer, got {value!r}")
    clip = plain["trainer"]["grad_clip"]
    if clip is not None and clip <= 0:
        raise ValueError(f"config key 'trainer.grad_clip': expected a positive number or null, got {clip!r}")
    tracking = plain.get("tracking")
    if isinstance(tracking, dict) and tracking.get("spool") is not None:
        from labkit.tracking.spool_settings import SpoolSettings

        SpoolSettings.parse(tracking["spool"])  # out-of-range spool settings fail before any work
    for group in ("task", "model", "optim"):
        node = plain[group]
        if not isinstance(node, dict) or "_target_" not in node:
            raise ValueError(f"config key {group!r}: expected a node with a '_target_', got {node!r}")
