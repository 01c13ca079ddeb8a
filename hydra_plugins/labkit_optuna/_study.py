"""The Optuna side of the sweeper: storage URLs, samplers, opening/resuming a study, trial counts, results.

Imported when a sweep starts (the leading underscore keeps Hydra's plugin scan away from optuna).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.labkit_optuna.config import SweeperConfigError

log = logging.getLogger(__name__)

#: user attribute of a trial whose job ran and failed (raised, or returned NaN/inf): it counts toward n_trials
ERROR_ATTR = "labkit.error"
#: user attribute of a trial stopped before its job finished (Ctrl-C, a killed launch): it does not count
INTERRUPTED_ATTR = "labkit.interrupted"
#: user attribute holding a trial's job overrides
OVERRIDES_ATTR = "labkit.overrides"


def resolve_storage(storage: str | None, base: str | Path) -> str | None:
    """An Optuna storage URL with a relative SQLite path made absolute under ``base`` (its folder created).

    ``None`` stays None (an in-memory study); a value without ``://`` is a path to an SQLite file;
    other URLs (``postgresql://...``, ``mysql://...``) are returned unchanged.
    """
    if storage is None:
        return None
    if not isinstance(storage, str) or not storage.strip():
        raise SweeperConfigError(f"hydra.sweeper.storage: expected null, a storage URL or a file path, got {storage!r}")
    if "://" not in storage:
        storage = f"sqlite:///{storage}"
    prefix = "sqlite:///"
    if not storage.startswith(prefix):
        return storage
    path_text, sep, query = storage[len(prefix) :].partition("?")
    if path_text in ("", ":memory:"):
        return storage
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = Path(base) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{path}{sep}{query}"


def redact(url: Any) -> str | None:
    """``url`` with any password replaced by ``***`` (for logs and result files); a storage object's class name."""
    if url is None or not isinstance(url, str):
        return None if url is None else type(url).__name__
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


def make_sampler(name: str, seed: int | None, n_startup_trials: int | None, batch: int) -> optuna.samplers.BaseSampler:
    """``tpe`` (TPESampler; ``constant_liar`` when trials run in batches) or ``random`` (RandomSampler)."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        startup = 10 if n_startup_trials is None else int(n_startup_trials)
        with warnings.catch_warnings():  # constant_liar is still flagged experimental (since Optuna 2.8)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=batch > 1)
    raise SweeperConfigError(f"hydra.sweeper.sampler: expected one of ['tpe', 'random'], got {name!r}")


def open_study(
    *, study_name: str | None, storage: str | optuna.storages.BaseStorage | None, direction: str, load_if_exists: bool
) -> optuna.study.Study:
    """Create the study, or load the stored one of that name when ``load_if_exists``.

    Raises:
        ValueError: the study exists and ``load_if_exists`` is false, or it optimises in another direction.
    """
    try:
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction=direction, load_if_exists=load_if_exists
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SweeperConfigError(
            f"hydra.sweeper.study_name: a study named {study_name!r} already exists in {redact(storage)}; "
            "expected hydra.sweeper.load_if_exists=true to resume it, or another study_name"
        ) from None
    stored = [d.name.lower() for d in study.directions]
    if stored != [direction]:
        raise SweeperConfigError(
            f"hydra.sweeper.direction: the stored study {study_name!r} in {redact(storage)} optimises "
            f"{stored}, got direction={direction}; expected the study's direction or another study_name"
        )
    return study


def counts(trial: FrozenTrial) -> bool:
    """Whether a finished trial counts toward ``n_trials``: complete, pruned, or failed after its job ran."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


def fail_stale_trials(study: optuna.study.Study) -> list[int]:
    """Mark FAIL the trials left RUNNING by a launch that died; they do not count. Returns their numbers."""
    stale = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in stale:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    if stale:
        log.warning("study %s: trials %s were left running by an earlier launch: marked FAIL", study.study_name, stale)
    return stale


def results(
    study: optuna.study.Study, *, storage: str | None, best_overrides: list[str] | None, launched: int
) -> dict[str, Any]:
    """The content of ``optimization_results.yaml``: the study, its trial counts and its best trial."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    out: dict[str, Any] = {
        "name": "labkit_optuna",
        "study_name": study.study_name,
        "storage": redact(storage),
        "direction": study.direction.name.lower(),
        "n_trials": sum(counts(t) for t in trials),
        "n_complete": states.count(TrialState.COMPLETE),
        "n_failed": states.count(TrialState.FAIL),
        "launched": launched,
        "best_trial": None,
        "best_value": None,
        "best_params": None,
        "best_overrides": None,
    }
    if TrialState.COMPLETE in states:
        best = study.best_trial
        out.update(
            best_trial=best.number, best_value=best.value, best_params=dict(best.params), best_overrides=best_overrides
        )
    return out


def job_value(value: Any) -> tuple[float | None, str | None]:
    """``(value, None)`` for a finite number, ``(None, reason)`` for NaN/inf (a failed trial).

    Raises:
        TypeError: the job returned something that is not a number (its config names no metric).
    """
    numeric = isinstance(value, int | float) or hasattr(value, "__float__")  # numpy scalars too
    if isinstance(value, bool) or not numeric:
        raise TypeError(
            "hydra/sweeper=labkit_optuna: expected the job to return a number (labkit: set optimized_metric, "
            f"e.g. optimized_metric=val/accuracy), got {value!r}"
        )
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return None, f"the job returned {number}"
    return number, None


def params_summary(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
