"""The studies in experiments/: their sweep configs compose, and each analyze.py reads a sweep back from MLflow.

The store is a tiny fake sweep (a parent run and a few children, logged with labkit's MLflowTracker
into ``tmp_path``), so the tables are checked against values this file chose.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from labkit.runner.hydra_app import CONFIG_DIR
from labkit.runner.schema import register_configs
from labkit.tracking.mlflow_tracker import MLflowTracker

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_script(study: str) -> ModuleType:
    """``experiments/<study>/analyze.py`` as a module (the folders are not packages)."""
    path = EXPERIMENTS / study / "analyze.py"
    spec = importlib.util.spec_from_file_location(f"study_{study}_analyze", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def fake_sweep(uri: str, study: str, children: list[tuple[dict, dict[str, list[float]], dict]]) -> str:
    """A parent run with one child per ``(params, {metric: per-epoch values}, final metrics)``; its id."""
    parent = MLflowTracker(uri=uri, experiment=study, run_name="sweep-fake")
    for params, curves, final in children:
        child = MLflowTracker(
            uri=uri, experiment=study, parent_run_id=parent.run_id, run_name="trial", tags={"study": study}
        )
        child.log_params(params)
        for epoch in range(1, 1 + max((len(v) for v in curves.values()), default=0)):
            step = 10 * epoch  # metrics are logged at global steps; the epoch metric maps them back
            child.log_metrics({"epoch": float(epoch), **{k: v[epoch - 1] for k, v in curves.items()}}, step)
        child.log_metrics(final, step=1000)
        child.finish("FINISHED")
    parent.finish("FINISHED")
    return parent.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for both studies (creating MLflow's schema is the slow part)."""
    return f"sqlite:///{tmp_path_factory.mktemp('studies')}/mlflow.db"


def test_adding_analysis_table_and_plot(tmp_path, store):
    script = load_script("adding_rnn_lengths")
    uri = store
    params = {"data.dataset_kwargs.n_train": 5000, "data.batch_size": 32, "trainer.max_epochs": 4}
    children = [
        ({**params, "model.kind": "lstm", "data.dataset_kwargs.T": 50}, {"val/mse": [0.17, 0.12, 0.04, 0.01]}, {}),
        ({**params, "model.kind": "rnn", "data.dataset_kwargs.T": 50}, {"val/mse": [0.17, 0.168, 0.167, 0.166]}, {}),
        ({**params, "model.kind": "gru", "data.dataset_kwargs.T": 100}, {"val/mse": [0.049, 0.02, 0.01, 0.005]}, {}),
    ]
    for (_, _, final), test_mse in zip(children, (0.0123, 0.1652, 0.0049)):
        final["test/mse"] = test_mse
    parent = fake_sweep(uri, "adding_rnn_lengths", children)

    assert script.main(["--tracking-uri", uri, "--out-dir", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert parent in table and "n_train=5000" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| cell")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    # sorted by T, then rnn < gru < lstm; break epoch = first epoch with val MSE < 0.05
    assert [(c[0], c[1], c[2], c[3], c[4], c[5]) for c in cells] == [
        ("rnn", "50", "0.165", "0.166", "never", "4"),
        ("lstm", "50", "0.0123", "0.01", "3", "4"),
        ("gru", "100", "0.0049", "0.005", "1", "4"),
    ]
    assert (tmp_path / "out" / "results.png").read_bytes()[:8] == PNG_MAGIC

    # an explicit parent is honoured; an unknown one is a user error naming --parent
    assert script.main(["--tracking-uri", uri, "--parent", parent, "--out-dir", str(tmp_path / "again")]) == 0
    with pytest.raises(ValueError, match=r"--parent: expected one of"):
        script.analyze(uri, parent="nope", out_dir=tmp_path / "bad")
    with pytest.raises(ValueError, match=r"--tracking-uri: expected an existing MLflow store"):
        script.analyze(f"sqlite:///{tmp_path}/missing.db", out_dir=tmp_path / "bad")


def test_digits_analysis_grid_and_heatmap(tmp_path, store):
    script = load_script("digits_lr_batch")
    uri = store
    scores = {(0.001, 32, 0): 0.95, (0.001, 32, 1): 0.97, (0.01, 32, 0): 0.90, (0.001, 64, 0): 0.99}
    children = [
        ({"optim.lr": lr, "data.batch_size": batch, "seed": seed, "trainer.max_epochs": 2}, {}, {"test/accuracy": acc})
        for (lr, batch, seed), acc in scores.items()
    ]
    fake_sweep(uri, "digits_lr_batch", children)

    table, figure = script.analyze(uri, out_dir=tmp_path / "out")
    text = table.read_text()
    lines = text.splitlines()
    accuracy_rows = lines[lines.index("| lr \\ batch | 32 | 64 |") + 2 :][:2]
    assert accuracy_rows == ["| 0.001 | 96.0 ± 1.4 | 99.0 |", "| 0.01 | 90.0 | - |"]
    assert "Best cell: lr=0.001, batch size=64: 99.0 % test accuracy." in text
    assert "Trials not finished: 0." in text
    assert figure.read_bytes()[:8] == PNG_MAGIC


def _compose(search: str, *overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="train"):
        return compose("config", overrides=[f"hparams_search={search}", *overrides], return_hydra_config=True)


@pytest.mark.parametrize(
    ("search", "overrides", "swept"),
    [
        ("adding_lengths", (), {"data.dataset_kwargs.T", "model.kind"}),
        ("digits_lr_batch", ("experiment=digits_cnn",), {"optim.lr", "data.batch_size", "seed"}),
    ],
)
def test_study_sweeps_compose(search, overrides, swept):
    cfg = _compose(search, *overrides)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and set(cfg.hydra.sweeper.params) == swept
    assert cfg.tags.study == cfg.tracking.experiment and cfg.trainer.early_stopping.patience is None


@pytest.mark.parametrize(("kind", "bias"), [("rnn", 0.0), ("gru", 0.0), ("lstm", 1.0)])
def test_adding_sweep_gives_each_cell_its_forget_bias(kind, bias):
    cfg = _compose("adding_lengths", f"model.kind={kind}")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert model["kind"] == kind and model["forget_bias"] == bias
