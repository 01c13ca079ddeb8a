"""A labkit model logged as an MLflow pyfunc loads back and predicts like the in-memory model."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.tracking import pyfunc
from labkit.tracking.mlflow_tracker import MLflowTracker

MLP = {
    "_target_": "labkit.nn.Sequential",
    "_args_": [
        {"_target_": "labkit.nn.Linear", "in_features": 6, "out_features": 8},
        {"_target_": "labkit.nn.ReLU"},
        {"_target_": "labkit.nn.Linear", "in_features": 8, "out_features": 3},
    ],
}


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyfunc")
    tracker = MLflowTracker(uri=f"sqlite:///{root / 'mlflow.db'}", experiment="pyfunc", run_name="model")
    yield tracker
    tracker.finish()


def reference(model, x):
    with labkit.no_grad():
        return model(labkit.tensor(x)).numpy()


def test_round_trip_logits_and_class_ids(tracker):
    import mlflow.pyfunc

    model = pyfunc.build_from_config(MLP)
    x = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    uri = pyfunc.log_pyfunc_model(tracker, model, {"model": MLP}, artifact_path="mlp")
    loaded = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(loaded.predict(x), reference(model, x), rtol=1e-6, atol=1e-6)

    uri_ids = pyfunc.log_pyfunc_model(tracker, model, {"model": MLP, "output": "class_ids"}, artifact_path="mlp_ids")
    ids = mlflow.pyfunc.load_model(uri_ids).predict(x)
    assert ids.dtype == np.int64 and ids.shape == (7,)
    np.testing.assert_array_equal(ids, reference(model, x).argmax(-1))


def test_dataframe_rows_reshaped_and_checkpoint_path(tracker, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    config = {"_target_": "labkit.nn.Sequential", "_args_": [{"_target_": "labkit.nn.Flatten"}, MLP["_args_"][0]]}
    model = pyfunc.build_from_config(config)
    labkit.save({"model": model.state_dict(), "step": 3}, tmp_path / "ckpt.lk")  # a runner checkpoint
    spec = {"model": config, "output": "probabilities", "input_shape": [2, 3], "batch_size": 2}
    uri = pyfunc.log_pyfunc_model(tracker, tmp_path / "ckpt.lk", spec, artifact_path="flat")
    x = np.random.default_rng(1).normal(size=(5, 2, 3)).astype(np.float32)
    probs = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame(x.reshape(5, 6)))
    logits = reference(model, x)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_term_weighted_bag_serves_its_fitted_weights(tracker):
    """A bag with naive Bayes term weights (a buffer fitted from training texts) predicts the same when served."""
    import mlflow.pyfunc

    config = {
        "_target_": "labkit.models.BagOfEmbeddings", "vocab_size": 30, "num_classes": 3, "embed_dim": 4,
        "buckets": 11, "pooling": "sqrtn", "binary": True, "weighting": "nb",
    }  # fmt: skip
    model = pyfunc.build_from_config(config)
    rng = np.random.default_rng(2)
    model.fit_term_weights([rng.integers(1, 30, size=n) for n in (3, 5, 4, 6)], np.array([0, 1, 2, 1]))
    model.eval()
    spec = {"model": config, "output": "class_ids", "input_dtype": "int64"}
    uri = pyfunc.log_pyfunc_model(tracker, model, spec, artifact_path="nb_bag")
    ids = rng.integers(1, 30, size=(6, 5))
    ids[:, 3:] = 0  # right-padded rows
    expected = reference(model, ids).argmax(-1)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(uri).predict(ids), expected)


def test_model_directory_holds_config_and_labkit_weights_not_pickles(tracker, tmp_path):
    model = pyfunc.build_from_config(MLP)
    pyfunc.log_pyfunc_model(tracker, model, {"model": MLP}, artifact_path="inspect")
    local = tracker.client.download_artifacts(tracker.run_id, "inspect", str(tmp_path))
    from pathlib import Path

    files = {p.name for p in Path(local).rglob("*") if p.is_file()}
    assert {"MLmodel", "model_config.json", "state.lk"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]


@pytest.mark.parametrize(
    "target, message",
    [
        ("os.system", "refusing to instantiate _target_ 'os.system'"),
        ("builtins.eval", "refusing to instantiate"),
        ("labkit.tracking.params.subprocess.Popen", "expected a class defined in"),  # a re-export
        ("labkit.nn.functional_that_does_not_exist", "expected a class defined in"),
    ],
)
def test_only_labkit_classes_are_instantiated(target, message):
    with pytest.raises(ValueError, match=message):
        pyfunc.build_from_config({"_target_": target})
    with pytest.raises(ValueError, match=message):
        pyfunc.build_from_config({"_target_": "labkit.nn.Sequential", "_args_": [{"_target_": target}]})


def test_registered_plugin_packages_are_allowed(monkeypatch):
    monkeypatch.setattr(pyfunc, "_ALLOWED_PACKAGES", {"labkit"})
    with pytest.raises(ValueError, match="refusing"):
        pyfunc.resolve_target("json.JSONDecoder")
    pyfunc.allow_package("json")
    assert pyfunc.resolve_target("json.JSONDecoder").__name__ == "JSONDecoder"


def test_bad_specs_and_mismatched_weights_fail_at_log_time(tracker):
    model = pyfunc.build_from_config(MLP)
    with pytest.raises(ValueError, match="unknown keys \\['outputs'\\]"):
        pyfunc.log_pyfunc_model(tracker, model, {"model": MLP, "outputs": "logits"})
    with pytest.raises(ValueError, match="expected one of \\['logits', 'probabilities', 'class_ids'\\]"):
        pyfunc.log_pyfunc_model(tracker, model, {"model": MLP, "output": "labels"})
    with pytest.raises(ValueError, match="expected a config with a _target_"):
        pyfunc.log_pyfunc_model(tracker, model, {"model": {"in_features": 3}})
    other = {"_target_": "labkit.nn.Linear", "in_features": 6, "out_features": 3}
    with pytest.raises(ValueError, match="load_state_dict"):
        pyfunc.log_pyfunc_model(tracker, model, {"model": other})
    with pytest.raises(TypeError, match="expected an MLflowTracker"):
        pyfunc.log_pyfunc_model(object(), model, {"model": MLP})
