"""Seeded synthetic sequence tasks: adding problem (with its 1/6 baseline), copy task, parity."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.data.sequence import SequenceDataset, adding_problem, copy_task, pad_sequences, parity


def test_adding_problem_layout_and_targets():
    x, y = adding_problem(500, 20, labkit.Generator(0))
    assert x.shape == (500, 20, 2) and x.dtype == np.float32 and y.shape == (500,) and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)
    assert np.allclose(y, (values * markers).sum(axis=1), atol=1e-6)
    assert values.min() >= 0 and values.max() < 1


def test_adding_problem_baseline_mse_is_one_sixth():
    _, y = adding_problem(200_000, 4, np.random.default_rng(1))
    assert abs(float(np.mean((y - 1.0) ** 2)) - 1 / 6) < 0.003


def test_generators_are_explicit_and_reproducible():
    a = adding_problem(10, 8, labkit.Generator(5))
    b = adding_problem(10, 8, labkit.Generator(5))
    c = adding_problem(10, 8, np.random.default_rng(5))  # the same stream through numpy's Generator
    d = adding_problem(10, 8, labkit.Generator(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], d[0])
    with pytest.raises(TypeError, match=r"generator: expected labkit\.Generator"):
        adding_problem(2, 4, generator=42)


def test_copy_task_layout():
    x, y = copy_task(50, T=5, n_symbols=4, delay=3, generator=labkit.Generator(0))
    assert x.shape == y.shape == (50, 13) and x.dtype == np.int64
    assert np.all((x[:, :5] >= 1) & (x[:, :5] <= 4))
    assert np.all(x[:, 5:7] == 0) and np.all(x[:, 7] == 5) and np.all(x[:, 8:] == 0)
    assert np.all(y[:, :8] == 0) and np.array_equal(y[:, 8:], x[:, :5])


def test_parity_variable_lengths_and_targets():
    seqs, y = parity(400, min_len=3, max_len=9, generator=labkit.Generator(2))
    lengths = [len(s) for s in seqs]
    assert min(lengths) == 3 and max(lengths) == 9
    assert all(s.shape == (len(s), 1) and s.dtype == np.float32 for s in seqs)
    assert y.tolist() == [int(s.sum()) % 2 for s in seqs]
    assert 0.4 < y.mean() < 0.6


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: adding_problem(0, 10), "adding_problem: n: expected an int >= 1, got 0"),
        (lambda: adding_problem(5, 1), "adding_problem: T: expected an int >= 2, got 1"),
        (lambda: copy_task(5, 3, n_symbols=1), "copy_task: n_symbols: expected an int >= 2"),
        (lambda: copy_task(5, 3, delay=0), "copy_task: delay: expected an int >= 1"),
        (lambda: parity(5, 6, 3), "expected min_len <= max_len, got min_len=6, max_len=3"),
    ],
)
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_pad_sequences_and_dataset():
    seqs = [np.ones((2, 3)), np.full((4, 3), 2.0)]
    padded, lengths, mask = pad_sequences(seqs, padding_value=-1)
    assert padded.shape == (2, 4, 3) and lengths.tolist() == [2, 4]
    assert np.all(padded[0, 2:] == -1) and np.all(padded[1] == 2)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    with pytest.raises(ValueError, match=r"the same shape after the time dimension"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 2))])
    ds = SequenceDataset(seqs, [0, 1], classes=["a", "b"])
    assert len(ds) == 2 and ds.lengths.tolist() == [2, 4] and ds[1][1] == 1
    assert ds.padded()[0].shape == (2, 4, 3)
    with pytest.raises(ValueError, match="expected as many targets as inputs"):
        SequenceDataset(seqs, [0])
