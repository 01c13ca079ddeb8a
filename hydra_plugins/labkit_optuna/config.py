"""The sweeper's config schema, stored in Hydra's ConfigStore as ``hydra/sweeper: labkit_optuna``.

Select it in a config's defaults list (``- override /hydra/sweeper: labkit_optuna``) or on the
command line (``hydra/sweeper=labkit_optuna``); the fields are typed, so a wrong value fails at
composition with the key named (``hydra.sweeper.direction: expected one of [minimize, maximize]``).
"""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where dataclasses cannot resolve string annotations
from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException


class SweeperConfigError(CompactHydraException, ValueError):
    """A mistake in the sweep's config: Hydra prints the message alone, without a traceback."""


class Direction(Enum):
    """Whether the study minimises or maximises the job's return value."""

    minimize = 1
    maximize = 2


class SamplerName(Enum):
    """Optuna's TPE sampler (``TPESampler``) or uniform random search (``RandomSampler``)."""

    tpe = 1
    random = 2


@dataclass
class LabkitOptunaSweeperConf:
    """``hydra.sweeper``: an Optuna study driven through Hydra's launcher.

    Fields:
        direction: ``minimize`` or ``maximize`` the job's return value (labkit: ``optimized_metric``).
        n_trials: how many trials the study holds when the launch ends: a new study runs n_trials,
            a resumed one only the missing ones (raise n_trials to run more).
        n_jobs: trials asked from Optuna and launched together as one batch (parallel with
            ``hydra/launcher=parallel``).
        sampler: ``tpe`` or ``random``; seed: the sampler's seed (null: unseeded);
        n_startup_trials: TPE's random trials before it models the results (null: Optuna's 10).
        storage: null (in memory, lost at exit), an SQLAlchemy URL (``sqlite:///optuna.db``,
            ``postgresql://...``) or a file path (an SQLite file); relative SQLite paths are taken
            under ``work_dir`` (default: the launch directory).
        study_name: the study's name in the storage (needed with a storage: it is resumed by name).
        load_if_exists: resume the stored study of that name (false: refuse an existing one).
        params: the search space, ``key: override`` in Hydra's override grammar, e.g.
            ``optim.lr: tag(log, interval(1e-4, 1e-2))``, ``data.batch_size: choice(16, 32)``.
    """

    _target_: str = "hydra_plugins.labkit_optuna.sweeper.LabkitOptunaSweeper"
    direction: Direction = Direction.minimize
    n_trials: int = 20
    n_jobs: int = 1
    sampler: SamplerName = SamplerName.tpe
    seed: int | None = None
    n_startup_trials: int | None = None
    storage: str | None = None
    study_name: str | None = None
    load_if_exists: bool = True
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="labkit_optuna", node=LabkitOptunaSweeperConf, provider="labkit"
)
