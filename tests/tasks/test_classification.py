"""labkit.tasks.classification: the pieces classification tasks share, against closed forms and sklearn-style metrics."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.data.dataset import TensorDataset
from labkit.data.loader import DataLoader
from labkit.tasks.classification import (
    classification_loss,
    count_classes,
    cross_validation_fold,
    evaluate_classifier,
    log_confusion_matrix,
    predict_batches,
    split_train_val_test,
)
from labkit.tasks.common import split_indices
from labkit.tasks.metrics import ClassificationMeter, confusion_matrix, f1_per_class, macro_f1
from labkit.tracking import MemoryTracker


def numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row ``logsumexp(z) - z[y]`` in float64."""
    z = logits.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return lse - z[np.arange(len(labels)), labels]


class Scores(nn.Module):
    """``model(x, shift) = x[:, :C] + shift``: fixed scores (the input's first C columns), plus a second input."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.bias = nn.Parameter(np.zeros(n_classes, np.float64))
        self.seen_training: list[bool] = []

    def forward(self, x: labkit.Tensor, shift: labkit.Tensor) -> labkit.Tensor:
        self.seen_training.append(self.training)
        return x[:, : self.n_classes] + F.reshape(shift, (-1, 1)) + self.bias


# ---- splits and classes ------------------------------------------------------------------------


def test_split_train_val_test_carves_test_then_val_with_the_documented_seeds() -> None:
    n = 100
    labels = np.arange(n, dtype=np.int64)
    inputs = np.stack([labels * 10, labels * 10 + 1], axis=1)  # row i belongs with label i
    arrays = {"train": (inputs, labels)}
    out = split_train_val_test(arrays, test_fraction=0.2, val_fraction=0.1, split_seed=7)
    assert arrays == {"train": (inputs, labels)}  # the input mapping is left alone
    rest, test = split_indices(n, [0.8], 7)
    val, train = split_indices(len(rest), [0.1], 8)
    assert np.array_equal(out["test"][1], test) and len(test) == 20
    assert np.array_equal(out["val"][1], rest[val]) and len(val) == 8
    assert np.array_equal(out["train"][1], rest[train]) and len(train) == 72
    assert np.array_equal(np.sort(np.concatenate([out[k][1] for k in ("train", "val", "test")])), labels)
    for x, y in out.values():
        assert np.array_equal(x[:, 0], y * 10)  # inputs stay aligned with their labels

    again = split_train_val_test(arrays, 0.2, 0.1, 7)
    assert all(np.array_equal(again[k][1], out[k][1]) for k in out)
    other = split_train_val_test(arrays, 0.2, 0.1, 8)
    assert not np.array_equal(other["test"][1], out["test"][1])


def test_split_train_val_test_keeps_given_splits_no_val_and_limit() -> None:
    own = {k: (np.full(n, i), np.arange(n)) for i, (k, n) in enumerate([("train", 30), ("val", 5), ("test", 6)])}
    out = split_train_val_test(own, 0.5, 0.5, 0, limit=4)
    assert out["val"] is own["val"] and out["test"] is own["test"]
    assert np.array_equal(out["train"][1], np.arange(4)) and np.array_equal(out["train"][0], np.zeros(4))
    no_val = split_train_val_test({"train": own["train"]}, 0.1, 0.0, 0)
    assert sorted(no_val) == ["test", "train"] and len(no_val["train"][1]) == 27 and len(no_val["test"][1]) == 3
    with pytest.raises(ValueError, match=r"split_train_val_test: expected a 'train' split, got \['test'\]"):
        split_train_val_test({"test": own["test"]}, 0.2, 0.1, 0)


def test_count_classes_uses_the_names_when_there_are_enough() -> None:
    labels = [np.array([0, 3, 1]), np.array([2]), np.array([], dtype=np.int64)]
    assert count_classes(labels, ["a", "b", "c", "d", "e"]) == (4, ["a", "b", "c", "d", "e"])
    assert count_classes(labels, ["a", "b"]) == (4, ["0", "1", "2", "3"])
    assert count_classes(iter(labels)) == (4, ["0", "1", "2", "3"])
    assert count_classes([np.array([1])], [10, 20]) == (2, ["10", "20"])


# ---- loss, predictions, metrics ------------------------------------------------------------------------


def make_data(n: int = 50, n_classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_classes + 2)), rng.normal(size=n), rng.integers(0, n_classes, n)


def test_classification_loss_is_the_mean_cross_entropy_of_model_star_inputs() -> None:
    x, shift, y = make_data()
    model = Scores(7)
    loss, count = classification_loss(model, (labkit.tensor(x), labkit.tensor(shift), labkit.tensor(y)))
    expected = numpy_cross_entropy(x[:, :7] + shift[:, None], y).mean()
    assert count == 50 and np.isclose(loss.item(), expected, rtol=1e-12)
    loss.backward()  # the loss is differentiable: d(mean CE)/d(bias) = mean(softmax - onehot)
    z = x[:, :7] + shift[:, None]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(50), y] -= 1
    assert np.allclose(model.bias.grad.numpy(), p.mean(axis=0), atol=1e-12)


def test_predict_batches_and_evaluate_classifier_match_closed_forms() -> None:
    x, shift, y = make_data(n=50)
    loader = DataLoader(TensorDataset(x, shift, y), batch_size=16)
    model = Scores(7)
    model.train()
    batches = list(predict_batches(model, loader))
    assert [len(labels) for _, labels, _ in batches] == [16, 16, 16, 2]
    assert model.training and model.seen_training == [False] * 4  # eval inside, restored after
    inputs, labels, logits = batches[0]
    assert len(inputs) == 2 and not logits.requires_grad and np.array_equal(labels.numpy(), y[:16])
    assert np.allclose(logits.numpy(), x[:16, :7] + shift[:16, None])

    classes = ["a/b", "c", "d", "e", "f", "g", "h"]
    metrics = evaluate_classifier(model, loader, classes, per_class_metrics=True, top_k=3)
    z = x[:, :7] + shift[:, None]
    cm = confusion_matrix(y, z.argmax(axis=1), 7)
    top3 = np.mean([y[i] in np.argsort(-z[i])[:3] for i in range(50)])
    assert np.isclose(metrics["loss"], numpy_cross_entropy(z, y).mean(), rtol=1e-10)
    assert metrics["accuracy"] == np.mean(z.argmax(axis=1) == y)
    assert metrics["macro_f1"] == macro_f1(cm) and metrics["top3_accuracy"] == top3
    assert metrics["f1/a_b"] == f1_per_class(cm)[0]  # names are made safe for MLflow
    assert sorted(k for k in metrics if k.startswith("f1/")) == sorted(["f1/a_b", *(f"f1/{c}" for c in "cdefgh")])
    plain = evaluate_classifier(model, loader, classes, per_class_metrics=False)
    assert sorted(plain) == ["accuracy", "loss", "macro_f1"]


def test_log_confusion_matrix_logs_the_figure_and_returns_the_errors() -> None:
    meter = ClassificationMeter(3)
    y = np.array([0, 0, 1, 2, 2, 2, 1])
    scores = np.eye(3)[[0, 1, 1, 2, 0, 2, 1]]
    meter.update(scores, y)
    tracker = MemoryTracker()
    out = log_confusion_matrix(tracker, meter, ["x", "y", "z"], "tiny", "val")
    assert out == {"errors": 2.0}
    figure = tracker.artifacts["figures/confusion_matrix_val.png"]
    assert list(tracker.artifacts) == ["figures/confusion_matrix_val.png"]
    assert figure.axes[0].get_title() == f"tiny val: accuracy {5 / 7:.4f}"


def test_cross_validation_folds_are_disjoint_stratified_and_cover_every_row():
    labels = np.repeat([0, 1, 2], [50, 30, 21])
    held = []
    for fold in range(5):
        train, val = cross_validation_fold(labels, 5, fold, seed=3)
        assert np.intersect1d(train, val).size == 0 and len(train) + len(val) == len(labels)
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
        counts = np.bincount(labels[val], minlength=3)
        assert np.all(np.abs(counts - np.array([50, 30, 21]) / 5) <= 1)  # each class dealt evenly
        held.append(val)
    np.testing.assert_array_equal(np.sort(np.concatenate(held)), np.arange(len(labels)))
    same = cross_validation_fold(labels, 5, 2, seed=3)[1]
    np.testing.assert_array_equal(same, held[2])  # a fold depends only on (labels, folds, fold, seed)
    assert not np.array_equal(cross_validation_fold(labels, 5, 2, seed=4)[1], held[2])


@pytest.mark.parametrize(
    ("folds", "fold", "message"),
    [
        (1, 0, r"expected folds as an int >= 2, got 1"),
        (True, 0, r"expected folds as an int >= 2, got True"),
        (5, 5, r"expected fold as an int in \[0, 4\], got 5"),
        (5, -1, r"expected fold as an int in \[0, 4\], got -1"),
        (5, "2", r"expected fold as an int in \[0, 4\], got '2'"),
    ],
)
def test_cross_validation_fold_bad_arguments_are_named(folds, fold, message):
    with pytest.raises(ValueError, match=message):
        cross_validation_fold(np.zeros(10), folds, fold, seed=0)
