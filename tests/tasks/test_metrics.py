"""Metrics against scikit-learn and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.tasks.metrics import (
    ClassificationMeter,
    accuracy,
    bits_per_char,
    confusion_matrix,
    f1_per_class,
    macro_f1,
    mae,
    mse,
    perplexity,
    persistence_rmse,
    rmse,
    top_k_accuracy,
)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    scores = rng.standard_normal((200, 6)) + 1.5 * np.eye(6)[y]
    return y, scores


def test_classification_metrics_match_sklearn(predictions):
    sk = pytest.importorskip("sklearn.metrics")
    y, scores = predictions
    pred = scores.argmax(axis=1)
    cm = confusion_matrix(y, pred, 6)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y, pred, labels=range(6)))
    assert accuracy(y, scores) == pytest.approx(sk.accuracy_score(y, pred))
    np.testing.assert_allclose(f1_per_class(cm), sk.f1_score(y, pred, average=None, labels=range(6)))
    assert macro_f1(cm) == pytest.approx(sk.f1_score(y, pred, average="macro"))
    for k in (1, 3, 5):
        assert top_k_accuracy(y, scores, k) == pytest.approx(sk.top_k_accuracy_score(y, scores, k=k, labels=range(6)))


def test_f1_of_a_class_never_predicted_nor_present_is_zero():
    cm = confusion_matrix([0, 0, 1], [0, 1, 1], num_classes=3)
    np.testing.assert_allclose(f1_per_class(cm), [2 / 3, 2 / 3, 0.0])
    assert macro_f1(cm) == pytest.approx(4 / 9)


def test_meter_accumulates_batches_like_one_call(predictions):
    y, scores = predictions
    meter = ClassificationMeter(6, top_k=5, class_names=list("abcdef"))
    for start in range(0, 200, 64):
        meter.update(scores[start : start + 64], y[start : start + 64], loss_sum=2.0)
    out = meter.compute()
    assert out["accuracy"] == pytest.approx(accuracy(y, scores))
    assert out["top5_accuracy"] == pytest.approx(top_k_accuracy(y, scores, 5))
    assert out["macro_f1"] == pytest.approx(macro_f1(confusion_matrix(y, scores, 6)))
    assert out["loss"] == pytest.approx(4 * 2.0 / 200)
    assert out["f1/c"] == pytest.approx(f1_per_class(confusion_matrix(y, scores, 6))[2])
    with pytest.raises(ValueError, match="expected at least one update"):
        ClassificationMeter(3).compute()


def test_language_model_metrics_by_hand():
    assert perplexity(math.log(50)) == pytest.approx(50)
    assert bits_per_char(math.log(2) * 3) == pytest.approx(3.0)
    assert perplexity(1000.0) == math.inf


def test_regression_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    t, p = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    assert mse(t, p) == pytest.approx(sk.mean_squared_error(t, p))
    assert mae(t, p) == pytest.approx(sk.mean_absolute_error(t, p))
    assert rmse(t, p) == pytest.approx(math.sqrt(sk.mean_squared_error(t, p)))


def test_persistence_rmse_by_hand():
    last = np.array([1.0, 2.0])
    targets = np.array([[2.0, 3.0], [2.0, 0.0]])  # errors 1, 2, 0, -2
    assert persistence_rmse(last, targets) == pytest.approx(math.sqrt((1 + 4 + 0 + 4) / 4))


def test_bad_inputs_name_the_metric():
    with pytest.raises(ValueError, match="accuracy: expected y_true and y_pred of one length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="confusion_matrix: expected 1-D integer class labels"):
        confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"top_k_accuracy: expected an int k >= 1, got 0"):
        top_k_accuracy([0], [[1.0, 0.0]], 0)
    with pytest.raises(ValueError, match="mse: expected y_true and y_pred of one shape"):
        mse([1.0, 2.0], [1.0])
