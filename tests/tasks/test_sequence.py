"""Sequence tasks: variable-length classification, the adding problem, sunspots forecasting baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.data.sequence.synthetic import SequenceDataset
from labkit.models import SequenceRNN
from labkit.tasks.metrics import confusion_matrix, macro_f1
from labkit.tasks.sequence import SequenceClassification, SequenceRegression
from labkit.tracking import MemoryTracker


@pytest.fixture
def varlen(register, rng):
    def make(n: int) -> SequenceDataset:
        lengths = rng.integers(3, 9, n)
        labels = rng.integers(0, 3, n)
        seqs = [rng.standard_normal((t, 2)).astype(np.float32) + 5.0 * y for t, y in zip(lengths, labels)]
        return SequenceDataset(seqs, labels, ["low", "mid", "high"])

    splits = {"train": make(40), "test": make(20)}
    return register("r3_varlen", lambda **kw: splits)


class LastStepScores(nn.Module):
    """Scores = the first channel of each sequence's last real step, repeated: a fixed, checkable 'model'."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.unused = nn.Parameter(np.zeros(1, np.float32))

    def forward(self, x: labkit.Tensor, lengths: labkit.Tensor | None) -> labkit.Tensor:
        data = x.numpy()
        ends = lengths.numpy() - 1 if lengths is not None else np.full(len(data), data.shape[1] - 1)
        last = data[np.arange(len(data)), ends, 0]  # (B,)
        scores = last[:, None] * np.arange(1, self.outputs + 1, dtype=np.float32)[None, :]
        return labkit.tensor(scores.astype(np.float32)) + self.unused


def test_classification_batches_lengths_and_normalisation(varlen):
    task = SequenceClassification({"name": varlen, "batch_size": 8, "val_fraction": 0.25}, labkit.Generator(0))
    loaders = task.setup()
    assert task.model_kwargs() == {"input_size": 2, "output_size": 3, "task": "classify"}
    assert loaders.info["sizes"] == {"train": 30, "val": 10, "test": 20}
    steps = np.concatenate([x for x in task.data["train"].sequences])
    np.testing.assert_allclose(steps.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(steps.std(axis=0), 1.0, atol=1e-4)
    for x, lengths, y in loaders.train:
        x, lengths = x.numpy(), lengths.numpy()
        assert x.shape[1] == lengths.max() and y.dtype == np.int64
        for row, n in zip(x, lengths):
            assert (row[n:] == 0).all()


def test_classification_metrics_by_hand_and_figure(varlen):
    task = SequenceClassification({"name": varlen, "batch_size": 8}, labkit.Generator(0))
    loaders = task.setup()
    model = LastStepScores(3)
    scores, ys = [], []
    for x, lengths, y in loaders.test:
        scores.append(model(x, lengths).numpy())
        ys.append(y.numpy())
    scores, y = np.concatenate(scores), np.concatenate(ys)
    out = task.evaluate(model, loaders.test)
    assert out["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y))
    assert out["macro_f1"] == pytest.approx(macro_f1(confusion_matrix(y, scores.argmax(1), 3)))
    tracker = MemoryTracker()
    task.artifacts(model, loaders, tracker)
    assert set(tracker.artifacts) == {"figures/confusion_matrix_test.png"}


def test_sequence_rnn_learns_the_toy_classes(varlen):
    task = SequenceClassification({"name": varlen, "batch_size": 8}, labkit.Generator(0))
    loaders = task.setup()
    model = SequenceRNN(**task.model_kwargs(), kind="gru", hidden_size=16, generator=labkit.Generator(0))
    opt = labkit.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(8):
        for batch in loaders.train:
            loss, _ = task.training_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert task.evaluate(model, loaders.test)["accuracy"] >= 0.9


def test_adding_problem_regression():
    data = {"T": 12, "n_train": 64, "n_valid": 16, "n_test": 16, "seed": 0}
    task = SequenceRegression({"name": "adding", "batch_size": 16, "normalize": False, "dataset_kwargs": data})
    loaders = task.setup(labkit.Generator(0))
    assert task.model_kwargs() == {"input_size": 2, "output_size": 1, "task": "regress"}
    x, lengths, y = next(iter(loaders.train))
    assert x.shape == (16, 12, 2) and lengths is None and y.shape == (16, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y.numpy()[:, 0], (x.numpy()[..., 0] * x.numpy()[..., 1]).sum(axis=1), rtol=1e-5)
    model = SequenceRNN(**task.model_kwargs(), hidden_size=8, generator=labkit.Generator(0))
    loss, count = task.training_loss(model, (x, lengths, y))
    assert count == 16 and loss.item() == pytest.approx(F.mse_loss(model(x), y).item())
    out = task.evaluate(model, loaders.test)
    truth, predicted = task.predictions(model, loaders.test)
    assert out["mse"] == pytest.approx(np.mean((truth - predicted) ** 2), rel=1e-5)
    assert out["rmse"] == pytest.approx(math.sqrt(out["mse"]))
    train_mean = np.concatenate([b[2].numpy() for b in loaders.train]).mean()
    assert out["baseline_mse"] == pytest.approx(np.mean((truth - train_mean) ** 2), rel=1e-4)
    assert "persistence_rmse" not in out  # not a forecasting task


def test_sunspots_forecasting_baseline_and_original_units():
    task = SequenceRegression(
        {"name": "sunspots", "batch_size": 64, "normalize": False, "dataset_kwargs": {"input_len": 12}}
    )
    loaders = task.setup(labkit.Generator(0))
    raw = task.raw["test"]
    x, y = raw.arrays()
    last, target = raw.inverse_transform(x[:, -1, 0]), raw.inverse_transform(y)
    expected = math.sqrt(np.mean((target - last[:, None]) ** 2))
    model = LastStepScores(1)  # predicts the last value: exactly the persistence forecast
    out = task.evaluate(model, loaders.test)
    assert out["persistence_rmse"] == pytest.approx(expected, rel=1e-4)
    assert out["rmse_original"] == pytest.approx(expected, rel=1e-4)
    assert 10 < expected < 40  # monthly sunspot numbers: persistence is off by about 20
    tracker = MemoryTracker()
    task.artifacts(model, loaders, tracker)
    assert set(tracker.artifacts) == {"figures/predictions_test.png"}


def test_dataset_without_test_split_is_refused(register):
    name = register("r3_no_test", lambda **kw: {"train": SequenceDataset([np.zeros((3, 1))] * 4, [0, 1, 0, 1])})
    with pytest.raises(ValueError, match="has no test split"):
        SequenceClassification({"name": name}).setup()
