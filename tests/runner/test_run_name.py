"""Run names: ``<experiment>-<date>-<time>-<hex>`` under ``labkit train experiment=...``; sweep children keep theirs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from labkit.runner import allow_packages
from labkit.runner.hydra_app import main as train_main
from labkit.runner.run import run_name_for
from tests.runner.helpers import CONF, TOY

STAMP = r"\d{8}-\d{6}-[0-9a-f]{4}"


@pytest.fixture(scope="module")
def hydra_job_config():
    """The full config (``hydra`` node included) Hydra composes for ``labkit train experiment=digits_cnn``."""
    from hydra import compose, initialize_config_dir

    from labkit.runner.hydra_app import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="train"):
        return compose("config", overrides=["experiment=digits_cnn"], return_hydra_config=True)


@pytest.fixture
def hydra_choices(hydra_job_config):
    """``set(experiment)``: Hydra's current job config, recording ``experiment`` as the chosen option."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    saved = HydraConfig.instance().cfg

    def set_choice(experiment: str | None) -> None:
        cfg = hydra_job_config.copy()
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.runtime.choices.experiment = experiment
        HydraConfig.instance().set_config(cfg)

    yield set_choice
    HydraConfig.instance().cfg = saved


def test_hydra_records_the_experiment_choice(hydra_job_config):
    assert hydra_job_config.hydra.runtime.choices.experiment == "digits_cnn"


def test_outside_a_hydra_job_the_tracker_names_the_run():
    assert run_name_for(OmegaConf.create({"run_name": None})) is None
    assert run_name_for(OmegaConf.create({"run_name": "lr=0.1"})) == "lr=0.1"


def test_the_chosen_experiment_prefixes_the_name(hydra_choices):
    hydra_choices("digits_cnn")
    name = run_name_for(OmegaConf.create({"run_name": None}))
    assert re.fullmatch(rf"digits_cnn-{STAMP}", name), name
    assert name != run_name_for(OmegaConf.create({"run_name": None}))  # the OS's randomness, not a seeded stream
    hydra_choices("text/bow")  # an experiment in a sub-folder
    assert re.fullmatch(rf"text-bow-{STAMP}", run_name_for(OmegaConf.create({"run_name": None})))
    hydra_choices(None)  # no experiment chosen
    assert run_name_for(OmegaConf.create({"run_name": None})) is None


def test_a_sweep_jobs_name_from_its_overrides_stays(hydra_choices):
    hydra_choices("digits_cnn")
    assert run_name_for(OmegaConf.create({"run_name": "optim.lr=0.01"})) == "optim.lr=0.01"


def test_labkit_train_names_the_mlflow_run_after_the_experiment(tmp_path: Path, monkeypatch, capsys):
    from labkit.tracking.store import make_client

    experiments = tmp_path / "conf" / "experiment"
    experiments.mkdir(parents=True)
    (experiments / "toy_named.yaml").write_text("# @package _global_\ntrainer:\n  max_epochs: 1\n")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        *TOY[:-1],
        f"hydra.searchpath=[file://{CONF},file://{tmp_path / 'conf'}]",
        "experiment=toy_named",
        f"tracking.uri={uri}",
        "trainer.log_model=false",
        "trainer.log_checkpoints=false",
        f"hydra.run.dir={tmp_path}/out",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    with allow_packages("tests.runner.toy"):
        train_main(args)
    assert "finished after 1 epochs" in capsys.readouterr().out
    (run,) = make_client(uri).search_runs(make_client(uri).search_experiments()[0].experiment_id)
    assert re.fullmatch(rf"toy_named-{STAMP}", run.info.run_name), run.info.run_name
