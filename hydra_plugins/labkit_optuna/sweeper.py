"""``LabkitOptunaSweeper``: a Hydra sweeper that runs an Optuna study through Hydra's launcher.

Each round it asks Optuna for ``n_jobs`` trials, turns their parameters into job overrides,
launches them together through the configured launcher (basic: one after another; joblib:
in worker processes) and tells Optuna each job's return value. A job that raised or returned
NaN is told FAIL and the study goes on; Ctrl-C (or labkit's ``TrainingInterrupted``) marks the
batch's trials FAIL as interrupted and stops the sweep. With a storage, a second launch with the
same ``study_name`` resumes the study and runs only the trials missing up to ``n_trials``.
At the end ``<sweep dir>/optimization_results.yaml`` holds the best trial.

The MLflow parent/child runs come from labkit's Hydra callback (labkit/runner/sweep.py), which
Hydra calls around any sweeper.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.labkit_optuna.config import SweeperConfigError
from labkit.runner.sweep_stop import stop_requested

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


def _name(value: Any) -> str:
    """An enum member's name (Hydra passes the config's enums through), or the string itself."""
    return str(getattr(value, "name", value))


def _import_study() -> Any:
    try:
        from hydra_plugins.labkit_optuna import _study
    except ImportError as exc:
        raise ImportError(
            f'hydra/sweeper=labkit_optuna needs optuna: pip install "labkit[optuna]" (or "optuna>=4,<5"); {exc}'
        ) from exc
    return _study


class LabkitOptunaSweeper(Sweeper):
    """Hydra sweeper over an Optuna study (ask/tell); fields as in ``config.LabkitOptunaSweeperConf``."""

    def __init__(
        self,
        direction: Any = "minimize",
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = "tpe",
        seed: int | None = None,
        n_startup_trials: int | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        load_if_exists: bool = True,
        params: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.direction, self.sampler = _name(direction), _name(sampler)
        if self.direction not in ("minimize", "maximize"):
            raise SweeperConfigError(
                f"hydra.sweeper.direction: expected 'minimize' or 'maximize', got {self.direction!r}"
            )
        for key, value, low in (
            ("n_trials", n_trials, 1),
            ("n_jobs", n_jobs, 1),
            ("n_startup_trials", n_startup_trials, 0),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise SweeperConfigError(f"hydra.sweeper.{key}: expected an integer >= {low}, got {value!r}")
        if storage is not None and not study_name:
            raise SweeperConfigError(
                f"hydra.sweeper.study_name: expected a name when a storage is set (a study is resumed by name), "
                f"got {study_name!r} with storage={storage!r}"
            )
        self.n_trials, self.n_jobs, self.seed, self.n_startup_trials = n_trials, n_jobs, seed, n_startup_trials
        self.storage, self.study_name, self.load_if_exists = storage, study_name, load_if_exists
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.study: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------ the sweep

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run the study: ``hydra.sweeper.params`` then ``arguments`` (a later key wins) form the search space.

        Returns the launcher's results, one list per batch.
        """
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        study_mod = _import_study()
        from hydra_plugins.labkit_optuna._search_space import parse_search_space

        if "optimized_metric" in self.config and self.config.get("optimized_metric") is None:
            raise SweeperConfigError(
                "optimized_metric: expected the metric the study optimises (e.g. optimized_metric=val/accuracy), got null"
            )
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = parse_search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments), parser)
        if not space.distributions:
            raise SweeperConfigError(
                "hydra.sweeper.params: expected at least one parameter to search (choice, range or interval), "
                f"got only fixed overrides {space.fixed}"
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        storage = study_mod.resolve_storage(self.storage, self._base_dir())
        study = study_mod.open_study(
            study_name=self.study_name, storage=storage, direction=self.direction, load_if_exists=self.load_if_exists
        )
        self.study = study
        study_mod.fail_stale_trials(study)
        existing = len(study.get_trials(deepcopy=False))
        # reseeded past the stored trials: a resumed launch does not repeat the first launch's proposals
        seed = None if self.seed is None else int(self.seed) + existing
        study.sampler = study_mod.make_sampler(self.sampler, seed, self.n_startup_trials, self.n_jobs)
        done = sum(study_mod.counts(t) for t in study.get_trials(deepcopy=False))
        missing = max(self.n_trials - done, 0)
        log.info(
            "study %s (%s, %s): %d trials done, running %d of n_trials=%d, %d at a time",
            study.study_name,
            study_mod.redact(storage) or "in memory",
            self.direction,
            done,
            missing,
            self.n_trials,
            self.n_jobs,
        )
        returns: list[Sequence[JobReturn]] = []
        launched = 0
        while launched < missing:
            if stop_requested(sweep_dir):  # SIGINT/SIGTERM (labkit.runner.sweep_stop): no new trial
                log.warning("study %s: stopped (%s) after %d of %d trials", study.study_name,
                            stop_requested(sweep_dir), launched, missing)  # fmt: skip
                break
            batch = min(self.n_jobs, missing - launched)
            returns.append(self._run_batch(study, space, batch, study_mod, sweep_dir))
            launched += batch
        self._write_results(study, space, storage, sweep_dir, launched, study_mod)
        return returns

    def _base_dir(self) -> str:
        """Where a relative SQLite path lives: ``work_dir`` when the config sets one, else the launch directory."""
        assert self.config is not None
        work_dir = OmegaConf.select(self.config, "work_dir", default=None)
        if work_dir:
            return str(Path(str(work_dir)).expanduser())
        return str(OmegaConf.select(self.config, "hydra.runtime.cwd", default=None) or os.getcwd())

    def _run_batch(
        self, study: Any, space: Any, size: int, study_mod: Any, sweep_dir: Path | None = None
    ) -> Sequence[JobReturn]:
        from optuna.trial import TrialState

        assert self.launcher is not None
        trials = [study.ask(fixed_distributions=space.distributions) for _ in range(size)]
        batch = [space.overrides(trial.params) for trial in trials]
        for trial, overrides in zip(trials, batch):
            trial.set_user_attr(study_mod.OVERRIDES_ATTR, " ".join(overrides))
        try:
            self.validate_batch_is_legal(batch)
            # job number = trial number: <sweep dir>/<N>/ is Optuna's trial N
            results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
        except BaseException:
            for trial in trials:
                self._interrupt(study, trial, study_mod)
            raise
        for trial, result in zip(trials, results):
            try:
                returned = result.return_value
            except Exception as exc:  # the job raised: a failed trial, the study goes on
                value, error = None, f"{type(exc).__name__}: {exc}"
            else:
                try:
                    value, error = study_mod.job_value(returned)
                except TypeError:  # not a number: a config mistake every trial would repeat
                    for rest in trials:
                        self._interrupt(study, rest, study_mod)
                    raise
            if error is not None and stop_requested(sweep_dir):  # stopped, not failed: a resumed study reruns it
                self._interrupt(study, trial, study_mod)
                log.warning("trial %d: stopped by %s", trial.number, stop_requested(sweep_dir))
                continue
            if error is None:
                study.tell(trial, value)
                log.info("trial %d: %s (%s)", trial.number, value, study_mod.params_summary(trial.params))
                continue
            trial.set_user_attr(study_mod.ERROR_ATTR, error[:1000])
            study.tell(trial, state=TrialState.FAIL)
            log.error("trial %d failed: %s (%s)", trial.number, error, study_mod.params_summary(trial.params))
        return results

    @staticmethod
    def _interrupt(study: Any, trial: Any, study_mod: Any) -> None:
        from optuna.trial import TrialState

        try:
            if study_mod.ERROR_ATTR not in trial.user_attrs:
                trial.set_user_attr(study_mod.INTERRUPTED_ATTR, True)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except Exception as exc:  # the storage itself may be what failed; keep the original error
            log.warning("trial %d: could not mark it interrupted: %s", trial.number, exc)

    def _write_results(
        self, study: Any, space: Any, storage: str | None, sweep_dir: Path, launched: int, study_mod: Any
    ) -> None:
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best_overrides = None
        if complete:
            best = study.best_trial
            best_overrides = [f"{k}={space.format(k, v)}" for k, v in best.params.items()]
        summary = study_mod.results(study, storage=storage, best_overrides=best_overrides, launched=launched)
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / RESULTS_FILE)
        if summary["best_trial"] is None:
            log.warning("study %s: no trial completed; %s written", study.study_name, sweep_dir / RESULTS_FILE)
            return
        log.info(
            "study %s: best value %s at trial %d: %s (%d trials counted, %d failed); %s",
            study.study_name,
            summary["best_value"],
            summary["best_trial"],
            " ".join(best_overrides or []),
            summary["n_trials"],
            summary["n_failed"],
            sweep_dir / RESULTS_FILE,
        )
