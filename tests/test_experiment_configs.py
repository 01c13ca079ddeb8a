"""Every experiment in labkit/conf/experiment composes with Hydra and instantiates its task, model and optimizer.

The task is built on its real data (``data.limit`` keeps the training split small), the model
from ``task.model_kwargs()``, and one training step runs, so a wrong key, a missing option or a
size mismatch between task and model fails here rather than in a user's run.
"""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

import labkit
from labkit.runner.hydra_app import CONFIG_DIR, compose
from labkit.runner.instantiate import instantiate  # checks the target allowlist too

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
EXPECTED = {
    "adding_gru", "adding_lstm", "charlm_lstm", "digits_cnn", "fashion_mnist_cnn", "sunspots_gru",
    "textcls_bow", "textcls_lstm", "textcls_transformer", "vowels_lstm",
    "textcls_bow_bbc", "textcls_lstm_bbc", "textcls_transformer_bbc",
}  # fmt: skip


def test_every_expected_experiment_exists():
    assert EXPECTED <= set(EXPERIMENTS), f"missing experiments in {CONFIG_DIR / 'experiment'}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_builds(name):
    # what `labkit train experiment=NAME` runs, on a smaller training split
    cfg = compose([f"experiment={name}", "data.limit=64", "data.batch_size=4"])
    for group in ("task", "model", "optim"):
        assert cfg[group]["_target_"].startswith("labkit."), f"{name}: {group} target {cfg[group]['_target_']}"
        assert cfg[group].get("_partial_") is True, f"{name}: {group} must be a partial (_partial_: true)"
    task = instantiate(cfg.task, "task")(data_cfg=cfg.data, generator=labkit.Generator(0))
    loaders = task.setup(labkit.Generator(0))
    assert task.monitor_mode in ("min", "max") and isinstance(task.monitor, str)
    model = instantiate(cfg.model, "model")(**task.model_kwargs(), generator=labkit.Generator(1))
    if hasattr(task, "prepare_model"):  # as the runner: statistics of the training data the model keeps
        task.prepare_model(model)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    tuples = {k: tuple(v) for k, v in optim.items() if isinstance(v, list)}  # YAML lists -> betas pairs, as the runner
    optimizer = instantiate(optim, "optim")(model.parameters(), **tuples)
    batch = next(iter(loaders.train))
    loss, count = task.training_loss(model, batch)
    assert count > 0 and math.isfinite(loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert cfg.trainer.max_epochs >= 1


#: every data option, with the task and model that read it
DATA_OPTIONS = {
    "digits": ("image_classification", "small_cnn"),
    "mnist5k": ("image_classification", "mlp"),
    "fashion_mnist": ("image_classification", "small_cnn"),
    "fortunes": ("text_classification", "text_transformer"),
    "bbc_news": ("text_classification", "bag_of_embeddings"),
    "python_stdlib": ("language_model", "char_lstm"),
    "shakespeare": ("language_model", "char_lstm"),
    "adding": ("sequence_regression", "sequence_rnn"),
    "sunspots": ("sequence_regression", "sequence_rnn"),
    "japanese_vowels": ("sequence_classification", "sequence_rnn"),
}


def test_every_data_option_is_listed():
    assert sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml")) == sorted(DATA_OPTIONS)


@pytest.mark.parametrize("data", sorted(DATA_OPTIONS))
def test_data_option_is_read_by_its_task(data):
    task_name, model_name = DATA_OPTIONS[data]
    cfg = compose([f"task={task_name}", f"model={model_name}", f"data={data}", "data.limit=8", "data.batch_size=4"])
    task = instantiate(cfg.task, "task")(data_cfg=cfg.data, generator=labkit.Generator(0))  # unknown keys fail here
    task.setup()
    model = instantiate(cfg.model, "model")(**task.model_kwargs())
    loss, _ = task.training_loss(model, next(iter(task.loaders.train)))
    assert math.isfinite(loss.item())


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_smoke_run_against_a_temporary_mlflow_store(name, tmp_path):
    """``labkit train experiment=NAME`` for one optimizer step, tracked in a fresh SQLite store: the run ends
    FINISHED with its params, val and test metrics, config artifact and pyfunc model."""
    from labkit.runner import run
    from labkit.tracking.store import make_client

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = [
        f"experiment={name}", "data.limit=64", "data.batch_size=4", "trainer.max_steps=1", "trainer.max_epochs=1",
        "trainer.progress_bar=false", "tracking=mlflow", f"tracking.uri={uri}", f"work_dir={tmp_path}",
    ]  # fmt: skip
    result = run(compose(overrides))
    client = make_client(uri)
    record = client.get_run(result["run_id"])
    assert record.info.status == "FINISHED" and result["step"] == 1
    assert any(k.startswith("val/") for k in record.data.metrics), sorted(record.data.metrics)
    assert any(k.startswith("test/") for k in record.data.metrics), sorted(record.data.metrics)
    assert record.data.params["data.name"] and record.data.tags["labkit.model"].startswith("labkit.models.")
    top = {a.path for a in client.list_artifacts(record.info.run_id)}
    assert {"config.yaml", "model"} <= top, sorted(top)
