"""The Optuna sweeper (hydra_plugins/labkit_optuna): search space, failed and interrupted trials, resuming a
saved study, and the MLflow parent/child runs of ``labkit train -m hydra/sweeper=labkit_optuna``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")  # the `optuna` extra (also in `test`)

from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from hydra.core.utils import JobReturn, JobStatus  # noqa: E402
from hydra.types import HydraContext  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from omegaconf.errors import ValidationError  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from hydra_plugins.labkit_optuna import _study  # noqa: E402
from hydra_plugins.labkit_optuna._search_space import format_value, parse_search_space  # noqa: E402
from hydra_plugins.labkit_optuna.config import LabkitOptunaSweeperConf  # noqa: E402
from hydra_plugins.labkit_optuna.sweeper import RESULTS_FILE, LabkitOptunaSweeper  # noqa: E402
from labkit.runner import allow_packages  # noqa: E402
from labkit.runner.hydra_app import main as train_main  # noqa: E402
from labkit.runner.sweep_stop import STOP_FILE, SweepStop  # noqa: E402
from tests.runner.helpers import TOY  # noqa: E402

PARSER = OverridesParser.create()

# ---------------------------------------------------------------- the search space


def test_each_override_kind_becomes_its_distribution():
    space = parse_search_space(
        [
            "optim.lr=tag(log, interval(1e-4, 1e-2))",
            "model.dropout=interval(0, 0.5)",
            "model.hidden=tag(int, interval(8, 64))",
            "model.layers=tag(int, log, interval(1, 8))",
            "data.batch_size=choice(16, 32, 64)",
            "optim=adam,sgd",
            "seed=range(0, 10, 3)",
            "x=range(0, 1, 0.25)",
            "model.channels=choice([8,16],[16,32])",
            "trainer.max_epochs=2",
            "~tags",
            "seed=range(10, 0, -3)",  # a later override of a key replaces the earlier one
        ]
    )
    assert space.distributions == {
        "optim.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.dropout": FloatDistribution(0.0, 0.5),
        "model.hidden": IntDistribution(8, 64),
        "model.layers": IntDistribution(1, 8, log=True),
        "data.batch_size": CategoricalDistribution([16, 32, 64]),
        "optim": CategoricalDistribution(["adam", "sgd"]),
        "seed": IntDistribution(1, 10, step=3),  # range(10, 0, -3) yields 10, 7, 4, 1
        "x": FloatDistribution(0.0, 0.75, step=0.25),  # the stop is excluded, as in Hydra's range
        "model.channels": CategoricalDistribution(["[8,16]", "[16,32]"]),
    }
    assert space.fixed == ["trainer.max_epochs=2", "~tags"]
    assert space.verbatim == {"model.channels"}
    overrides = space.overrides({"optim.lr": 0.00123, "optim": "sgd", "model.channels": "[16,32]", "seed": 4})
    assert overrides == [
        "trainer.max_epochs=2",
        "~tags",
        "optim.lr=0.00123",
        "optim=sgd",
        "model.channels=[16,32]",
        "seed=4",
    ]
    parsed = {o.get_key_element(): o.value() for o in PARSER.parse_overrides(overrides)}
    assert parsed["model.channels"] == [16, 32] and parsed["optim.lr"] == 0.00123 and parsed["seed"] == 4


@pytest.mark.parametrize("value", [0.1 + 0.2, 1e-5, 3, True, False, "adam", "1e-3", "true", "a,b", "it's", "x y"])
def test_a_sampled_value_comes_back_from_hydra_unchanged(value):
    parsed = PARSER.parse_override(f"key={format_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lr=tag(log, interval(0, 1))", "optim.lr: expected a positive low end for a log interval, got 0.0"),
        ("optim.lr=interval(1, 0.5)", r"optim.lr: expected interval\(low, high\) with low < high, got \(1.0, 0.5\)"),
        (
            "optim.lr=tag(fast, interval(0, 1))",
            r"optim.lr: expected interval tags among \['log', 'int'\], got \['fast'\]",
        ),
        ("model.hidden=tag(int, interval(1.5, 8))", "model.hidden: expected whole-number ends"),
        ("seed=range(5, 5)", r"seed: expected a range with at least one value, got range\(5, 5, 1\)"),
    ],
)
def test_search_space_mistakes_name_the_key(override, expected):
    with pytest.raises(ValueError, match=expected):
        parse_search_space([override])


# ---------------------------------------------------------------- config and storage


def test_config_schema_and_constructor_reject_mistakes():
    schema = OmegaConf.structured(LabkitOptunaSweeperConf)
    with pytest.raises(ValidationError, match=r"expected one of \[minimize, maximize\]"):
        OmegaConf.merge(schema, {"direction": "up"})
    with pytest.raises(ValidationError, match="n_trials"):
        OmegaConf.merge(schema, {"n_trials": "many"})
    with pytest.raises(ValueError, match=r"hydra\.sweeper.n_trials: expected an integer >= 1, got 0"):
        LabkitOptunaSweeper(n_trials=0)
    with pytest.raises(ValueError, match=r"hydra\.sweeper.n_jobs: expected an integer >= 1, got -1"):
        LabkitOptunaSweeper(n_jobs=-1)
    with pytest.raises(ValueError, match=r"hydra\.sweeper.study_name: expected a name when a storage is set"):
        LabkitOptunaSweeper(storage="sqlite:///optuna.db")
    with pytest.raises(ValueError, match=r"hydra\.sweeper.sampler: expected one of"):
        _study.make_sampler("grid", 0, None, 1)
    tpe = _study.make_sampler("tpe", 0, 3, batch=2)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._constant_liar and tpe._n_startup_trials == 3


def test_optuna_digits_composes_into_a_saved_maximising_study():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from labkit.runner.hydra_app import CONFIG_DIR
    from labkit.runner.schema import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="train"):
        cfg = compose("config", overrides=["hparams_search=optuna_digits"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and cfg.optimized_metric == "val/accuracy"
    sweeper = instantiate(cfg.hydra.sweeper)  # the ConfigStore schema + the YAML values
    # (Hydra's plugin scan re-executes the module, so the class is compared by name)
    assert (
        type(sweeper).__qualname__ == "LabkitOptunaSweeper"
        and sweeper.direction == "maximize"
        and sweeper.sampler == "tpe"
    )
    assert sweeper.storage == "sqlite:///optuna.db" and sweeper.study_name == "optuna_digits" and sweeper.load_if_exists
    space = parse_search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert space.distributions == {
        "optim.lr": FloatDistribution(1e-4, 3e-2, log=True),
        "data.batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "model.dropout": FloatDistribution(0.0, 0.5),
    }
    assert 10 <= sweeper.n_trials <= 20 and cfg.trainer.max_epochs <= 5


def test_storage_paths_resolve_under_the_base_directory(tmp_path):
    assert _study.resolve_storage(None, tmp_path) is None
    assert _study.resolve_storage("sqlite:///studies/a.db", tmp_path) == f"sqlite:///{tmp_path}/studies/a.db"
    assert (tmp_path / "studies").is_dir()  # SQLite cannot create the folder itself
    assert _study.resolve_storage("b.db", tmp_path) == f"sqlite:///{tmp_path}/b.db"
    assert _study.resolve_storage("sqlite:////abs/c.db?timeout=5", tmp_path) == "sqlite:////abs/c.db?timeout=5"
    url = "postgresql://me:secret@host/db"
    assert _study.resolve_storage(url, tmp_path) == url and _study.redact(url) == "postgresql://me:***@host/db"


def test_job_value_fails_nan_and_refuses_non_numbers():
    np = pytest.importorskip("numpy")
    assert _study.job_value(np.float32(0.5)) == (0.5, None)
    assert _study.job_value(math.nan) == (None, "the job returned nan")
    with pytest.raises(TypeError, match="set optimized_metric"):
        _study.job_value(None)


def test_a_stored_study_refuses_another_direction_or_a_duplicate():
    url = optuna.storages.InMemoryStorage()  # the same checks as with a file, without creating its tables
    _study.open_study(study_name="s", storage=url, direction="minimize", load_if_exists=True)
    with pytest.raises(
        ValueError, match=r"hydra\.sweeper\.direction: the stored study 's' .* optimises \['minimize'\]"
    ):
        _study.open_study(study_name="s", storage=url, direction="maximize", load_if_exists=True)
    with pytest.raises(ValueError, match=r"expected hydra\.sweeper\.load_if_exists=true to resume it"):
        _study.open_study(study_name="s", storage=url, direction="minimize", load_if_exists=False)


# ---------------------------------------------------------------- the ask/tell loop, with a stand-in launcher


class FakeLauncher:
    """Runs each job in place: x > 0.8 raises, x < 0.2 returns NaN, else returns (x - 0.5)^2; can be interrupted."""

    def __init__(self, interrupt_on_call: int | None = None) -> None:
        self.calls: list[tuple[int, list[list[str]]]] = []
        self.interrupt_on_call = interrupt_on_call

    def launch(self, batch, initial_job_idx):
        self.calls.append((initial_job_idx, [list(o) for o in batch]))
        if len(self.calls) == self.interrupt_on_call:
            raise KeyboardInterrupt
        returns = []
        for overrides in batch:
            x = float(dict(o.split("=", 1) for o in overrides)["x"])
            ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=(x - 0.5) ** 2)
            if x > 0.8:
                ret.status, ret.return_value = JobStatus.FAILED, RuntimeError(f"diverged at x={x}")
            elif x < 0.2:
                ret.return_value = math.nan
            returns.append(ret)
        return returns


def _sweeper(tmp_path: Path, launcher: FakeLauncher, **kwargs) -> LabkitOptunaSweeper:
    options = dict(n_trials=7, n_jobs=2, sampler="random", seed=3, storage="sqlite:///study.db", study_name="fake")
    sweeper = LabkitOptunaSweeper(params={"x": "interval(0, 1)", "fixed": "1"}, **{**options, **kwargs})
    sweeper.config = OmegaConf.create(
        {
            "optimized_metric": "loss",
            "work_dir": None,
            "hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "runtime": {"cwd": str(tmp_path)}},
        }
    )
    sweeper.hydra_context = HydraContext(config_loader=None, callbacks=None)  # type: ignore[arg-type]
    sweeper.launcher = launcher  # type: ignore[assignment]
    sweeper.validate_batch_is_legal = lambda batch: None  # type: ignore[method-assign]
    return sweeper


def test_failed_and_nan_trials_are_told_fail_and_the_study_goes_on(tmp_path):
    launcher = FakeLauncher()
    sweeper = _sweeper(tmp_path, launcher, direction="minimize", storage=None, study_name=None)  # in memory
    returns = sweeper.sweep(["extra=2"])
    assert [len(batch) for batch in returns] == [2, 2, 2, 1]  # n_jobs=2 trials launched together
    assert [start for start, _ in launcher.calls] == [0, 2, 4, 6]  # job number = trial number

    trials = sweeper.study.get_trials()
    assert len(trials) == 7
    outcome = {"ok": 0, "raised": 0, "nan": 0}
    for trial in trials:
        x = trial.params["x"]
        assert trial.user_attrs["labkit.overrides"] == f"fixed=1 extra=2 x={x!r}"
        if x > 0.8:
            outcome["raised"] += 1
            assert trial.state == TrialState.FAIL and trial.user_attrs["labkit.error"].startswith(
                "RuntimeError: diverged"
            )
        elif x < 0.2:
            outcome["nan"] += 1
            assert trial.state == TrialState.FAIL and trial.user_attrs["labkit.error"] == "the job returned nan"
        else:
            outcome["ok"] += 1
            assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx((x - 0.5) ** 2)
    assert all(outcome.values()), f"seed 3 should give every outcome in 7 trials, got {outcome}"

    results = OmegaConf.to_container(OmegaConf.load(tmp_path / "sweep" / RESULTS_FILE))
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert results["best_trial"] == best.number and results["best_value"] == best.value
    assert results["best_params"] == {"x": best.params["x"]} and results["best_overrides"] == [
        f"x={best.params['x']!r}"
    ]
    assert results["n_trials"] == 7 and results["n_failed"] == outcome["raised"] + outcome["nan"]
    assert results["storage"] is None and results["launched"] == 7


def test_an_interrupted_batch_is_not_counted_and_the_next_launch_completes_the_study(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _sweeper(tmp_path, FakeLauncher(interrupt_on_call=2)).sweep([])
    study = optuna.load_study(study_name="fake", storage=f"sqlite:///{tmp_path}/study.db")
    states = [t.state for t in study.trials]
    assert states[2:] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.user_attrs.get("labkit.interrupted") for t in study.trials[2:])
    stale = study.ask({"x": FloatDistribution(0, 1)})  # a launch killed mid-trial leaves it RUNNING

    launcher = FakeLauncher()
    sweeper = _sweeper(tmp_path, launcher)
    sweeper.sweep([])
    trials = sweeper.study.get_trials()
    assert trials[stale.number].state == TrialState.FAIL  # marked failed, not counted
    assert sum(_study.counts(t) for t in trials) == 7 and len(trials) == 2 + 2 + 1 + 5
    assert [len(b) for _, b in launcher.calls] == [2, 2, 1]  # the 5 missing trials, nothing more
    previous = {t.params["x"] for t in trials[:5]}
    assert not previous & {t.params["x"] for t in trials[5:]}  # reseeded: no proposal repeated
    results = OmegaConf.load(tmp_path / "sweep" / RESULTS_FILE)
    assert results.launched == 5 and results.storage == f"sqlite:///{tmp_path}/study.db"  # under the launch dir


class StoppingLauncher(FakeLauncher):
    """The sweep is stopped (SIGTERM) during its second batch: that batch's jobs return NaN, as stopped trials do."""

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__()
        self.sweep_dir = sweep_dir

    def launch(self, batch, initial_job_idx):
        returns = super().launch(batch, initial_job_idx)
        if len(self.calls) == 2:
            SweepStop(self.sweep_dir).record("SIGTERM")
            for ret in returns:
                ret.status, ret.return_value = JobStatus.COMPLETED, math.nan
        return returns


def test_a_stopped_sweep_launches_no_new_batch_and_its_stopped_trials_are_rerun(tmp_path):
    launcher = StoppingLauncher(tmp_path / "sweep")
    sweeper = _sweeper(tmp_path, launcher)
    sweeper.sweep([])
    assert len(launcher.calls) == 2  # no third batch after the stop
    trials = sweeper.study.get_trials()
    assert len(trials) == 4 and all(t.user_attrs.get("labkit.interrupted") for t in trials[2:])
    assert sum(_study.counts(t) for t in trials) == 2  # the stopped trials do not count toward n_trials

    (tmp_path / "sweep" / STOP_FILE).unlink()  # a new launch of the same study
    rerun = FakeLauncher()
    _sweeper(tmp_path, rerun).sweep([])
    assert [len(b) for _, b in rerun.calls] == [2, 2, 1]  # the 5 trials still missing of 7


def test_a_missing_metric_or_search_space_stops_the_sweep_before_any_trial(tmp_path):
    launcher = FakeLauncher()
    sweeper = _sweeper(tmp_path, launcher, storage=None, study_name=None)
    sweeper.config.optimized_metric = None
    with pytest.raises(ValueError, match="optimized_metric: expected the metric the study optimises"):
        sweeper.sweep([])
    sweeper.config.optimized_metric = "loss"
    sweeper.params = {"fixed": "1"}
    with pytest.raises(ValueError, match=r"hydra\.sweeper.params: expected at least one parameter to search"):
        sweeper.sweep(["y=2"])
    assert launcher.calls == []


# ---------------------------------------------------------------- labkit train, for real (toy task, MLflow, SQLite)


def _launch(tmp_path: Path, name: str, n_trials: int) -> None:
    args = [
        *TOY,
        "tracking=mlflow",
        "tracking.experiment=optuna_toy",
        f"work_dir={tmp_path}",
        "trainer.max_epochs=1",
        "trainer.max_steps=2",
        "trainer.log_model=false",
        "trainer.log_checkpoints=false",
        "optimized_metric=val/accuracy",
        "hydra/sweeper=labkit_optuna",
        "hydra.sweeper.direction=maximize",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.storage=sqlite:///optuna/toy.db",
        "hydra.sweeper.study_name=toy",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=1",
        "optim.lr=tag(log, interval(1e-3, 1e-1))",
        "task.poison_at=choice(1, 1000)",  # 1: the loss is NaN at the first step, the run fails
        f"hydra.sweep.dir={tmp_path}/multirun/{name}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
        "--multirun",
    ]
    with allow_packages("tests.runner.toy"):
        assert train_main(args) == 0


@pytest.mark.slow
def test_labkit_train_study_is_saved_resumed_and_tracked_as_parent_and_children(tmp_path, monkeypatch):
    from labkit.tracking.store import make_client

    monkeypatch.chdir(tmp_path)
    _launch(tmp_path, "first", n_trials=3)
    storage = f"sqlite:///{tmp_path}/optuna/toy.db"
    first = [(t.number, t.params, t.state) for t in optuna.load_study(study_name="toy", storage=storage).trials]
    assert len(first) == 3

    _launch(tmp_path, "second", n_trials=5)  # resumes: 2 more trials, the first 3 kept as they were
    study = optuna.load_study(study_name="toy", storage=storage)
    assert [(t.number, t.params, t.state) for t in study.trials[:3]] == first
    assert len(study.trials) == 5
    poisoned = [t.params["task.poison_at"] == 1 for t in study.trials]
    assert any(poisoned) and not all(poisoned), f"seed 1 should give both outcomes, got {poisoned}"
    for trial, bad in zip(study.trials, poisoned):
        assert trial.state == (TrialState.FAIL if bad else TrialState.COMPLETE), (trial.number, trial.user_attrs)

    client = make_client(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("optuna_toy").experiment_id])
    parents = sorted((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    assert len(parents) == 2 and len(runs) == 2 + 5
    for parent, trials in zip(parents, (study.trials[:3], study.trials[3:])):
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == len(trials) and parent.info.status == "FINISHED", [c.info.run_name for c in children]
        assert parent.data.tags["labkit.sweep.trials"] == str(len(trials))
        for trial in trials:  # each trial's child run: same lr, same outcome, same value
            (child,) = [c for c in children if f"optim.lr={trial.params['optim.lr']!r}," in c.info.run_name]
            if trial.state == TrialState.COMPLETE:
                assert child.info.status == "FINISHED" and child.data.metrics["val/accuracy"] == trial.value
            else:
                assert child.info.status == "FAILED"

    second = OmegaConf.to_container(OmegaConf.load(tmp_path / "multirun" / "second" / RESULTS_FILE))
    assert second["n_trials"] == 5 and second["launched"] == 2
    assert second["best_value"] == study.best_value and second["best_params"] == study.best_params
    assert (tmp_path / "multirun" / "first" / RESULTS_FILE).is_file()
