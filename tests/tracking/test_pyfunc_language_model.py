"""A language model (forward -> (logits, state)) logged as a pyfunc predicts like the in-memory model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import labkit
from labkit.models import CharLSTMLM
from labkit.runner.artifacts import log_model
from labkit.tracking import pyfunc
from labkit.tracking.mlflow_tracker import MLflowTracker

LM = {"_target_": "labkit.models.CharLSTMLM", "vocab_size": 11, "embed_dim": 8, "hidden_size": 16, "num_layers": 2}


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyfunc_lm")
    tracker = MLflowTracker(uri=f"sqlite:///{root / 'mlflow.db'}", experiment="pyfunc", run_name="lm")
    yield tracker
    tracker.finish()


def trained_lm() -> CharLSTMLM:
    """An LM with non-trivial weights: a few SGD steps on a fixed sequence, dropout on (eval must switch it off)."""
    model = CharLSTMLM(**{k: v for k, v in LM.items() if k != "_target_"}, dropout=0.3, generator=labkit.Generator(0))
    opt = labkit.optim.SGD(model.parameters(), lr=0.5)
    ids = labkit.tensor(np.arange(24, dtype=np.int64).reshape(2, 12) % 11)
    for _ in range(3):
        logits, _ = model(ids[:, :-1])
        loss = labkit.functional.cross_entropy(logits.reshape(-1, 11), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def in_memory(model: CharLSTMLM, ids: np.ndarray) -> np.ndarray:
    model.eval()
    with labkit.no_grad():
        logits, _ = model(labkit.tensor(ids))
    model.train()
    return logits.numpy()


def test_runner_logged_lm_predicts_logits_like_the_model(tracker):
    """The runner's log_model with the LM task's spec (no input_dtype, no output: the defaults)."""
    import mlflow.pyfunc

    model = trained_lm()
    task = SimpleNamespace()  # the language-model task has no predict_spec: the runner logs {"model": config}
    log_model(tracker, model, {**LM, "dropout": 0.3}, task, SimpleNamespace(info={}))
    artifacts = tracker.client.get_run(tracker.run_id).info.artifact_uri
    loaded = mlflow.pyfunc.load_model(f"{artifacts}/model")
    ids = np.random.default_rng(0).integers(0, 11, size=(5, 9))  # int token ids, one length per input
    expected = in_memory(model, ids)
    assert expected.shape == (5, 9, 11)
    np.testing.assert_allclose(loaded.predict(ids), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(ids.tolist()), expected, rtol=1e-5, atol=1e-6)  # lists of ints too


def test_lm_class_ids_probabilities_and_small_batches(tracker):
    import mlflow.pyfunc

    model = trained_lm()
    ids = np.random.default_rng(1).integers(0, 11, size=(7, 6)).astype(np.int32)
    expected = in_memory(model, ids.astype(np.int64))
    spec = {"model": {**LM, "dropout": 0.3}, "output": "class_ids", "batch_size": 3}  # 3 + 3 + 1 rows
    uri = pyfunc.log_pyfunc_model(tracker, model, spec, artifact_path="lm_ids")
    next_ids = mlflow.pyfunc.load_model(uri).predict(ids)
    assert next_ids.dtype == np.int64 and next_ids.shape == (7, 6)
    np.testing.assert_array_equal(next_ids, expected.argmax(-1))
    uri = pyfunc.log_pyfunc_model(tracker, model, {**spec, "output": "probabilities"}, artifact_path="lm_probs")
    probs = mlflow.pyfunc.load_model(uri).predict(ids)
    shifted = np.exp(expected - expected.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, shifted / shifted.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_auto_input_dtype_follows_the_first_layer():
    mlp = pyfunc.build_from_config(
        {
            "_target_": "labkit.nn.Sequential",
            "_args_": [{"_target_": "labkit.nn.Linear", "in_features": 2, "out_features": 2}],
        }
    )
    assert pyfunc.input_dtype_of(mlp, "auto") == "float32"
    assert pyfunc.input_dtype_of(pyfunc.build_from_config(LM), "auto") == "int64"
    embed_first = pyfunc.build_from_config(
        {
            "_target_": "labkit.nn.Sequential",
            "_args_": [{"_target_": "labkit.nn.Embedding", "num_embeddings": 5, "embedding_dim": 3}],
        }
    )
    assert pyfunc.input_dtype_of(embed_first, "auto") == "int64"
    assert pyfunc.input_dtype_of(pyfunc.build_from_config(LM), "float64") == "float64"  # explicit wins
    assert pyfunc.check_spec({"model": LM})["input_dtype"] == "auto"
    assert pyfunc.check_spec({"model": LM, "input_dtype": np.int32})["input_dtype"] == "int32"
    with pytest.raises(ValueError, match=r"input_dtype'\]: expected 'auto' or a numpy dtype name, got 'ints'"):
        pyfunc.check_spec({"model": LM, "input_dtype": "ints"})
