"""Forecasting windows: split by time with no window crossing a boundary, train-only normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.data.sequence import SlidingWindowForecast, Standardizer, forecasting_splits, read_series_csv


def test_sliding_windows():
    series = np.arange(10, dtype=np.float32)
    ds = SlidingWindowForecast(series, input_len=3, horizon=2)
    assert len(ds) == 6
    x, y = ds[0]
    assert x.shape == (3, 1) and x[:, 0].tolist() == [0, 1, 2] and y.tolist() == [3, 4]
    x, y = ds[-1]
    assert x[:, 0].tolist() == [5, 6, 7] and y.tolist() == [8, 9]
    assert len(SlidingWindowForecast(series, 3, 2, stride=2)) == 3
    multi = SlidingWindowForecast(np.stack([series, -series], axis=1), 4, 1)
    x, y = multi[1]
    assert x.shape == (4, 2) and y.shape == (1, 2) and y.tolist() == [[5, -5]]
    xs, ys = multi.arrays()
    assert xs.shape == (6, 4, 2) and ys.shape == (6, 1, 2)
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(ValueError, match="at least input_len \\+ horizon = 12 steps, got 10"):
        SlidingWindowForecast(series, 10, 2)
    with pytest.raises(ValueError, match="a NaN or inf at time index 4"):
        SlidingWindowForecast(np.where(series == 4, np.nan, series), 2, 1)


def test_splits_by_time_never_cross_boundaries():
    series = np.arange(100, dtype=np.float32) * 2.0 + 5.0  # each value names its time step
    splits = forecasting_splits(series, input_len=6, horizon=3, val_frac=0.2, test_frac=0.1)
    a, b = splits.boundaries
    assert (a, b) == (70, 90)
    segments = {"train": (0, a), "valid": (a, b), "test": (b, 100)}
    for name, (lo, hi) in segments.items():
        ds = splits[name]
        assert len(ds) == (hi - lo) - 9 + 1
        steps = []
        for i in range(len(ds)):
            x, y = ds[i]
            t = (splits.inverse_transform(np.concatenate([x[:, 0], y])) - 5.0) / 2.0
            steps.append(np.round(t).astype(int))
            assert np.array_equal(steps[-1], np.arange(steps[-1][0], steps[-1][0] + 9))  # contiguous in time
        covered = np.concatenate(steps)
        assert covered.min() == lo and covered.max() == hi - 1  # inside the segment, touching both ends


def test_normalisation_is_fitted_on_train_only():
    series = np.concatenate([np.random.default_rng(0).normal(10, 2, 300), np.full(100, 50.0)]).astype(np.float32)
    splits = forecasting_splits(series, input_len=5, horizon=1, val_frac=0.125, test_frac=0.125)
    train_values = splits.train.values[:, 0]
    assert abs(train_values.mean()) < 1e-4 and abs(train_values.std() - 1) < 1e-3
    assert np.isclose(splits.scaler.mean, series[:300].mean(), atol=1e-4)
    assert np.isclose(splits.scaler.std, series[:300].std(), atol=1e-4)
    assert splits.test.values.mean() > 15  # the level shift is not hidden by refitting on test
    _, y = splits.test[0]
    assert np.allclose(splits.test.inverse_transform(y), [50.0])
    raw = forecasting_splits(series, 5, 1, 0.125, 0.125, normalize=False)
    assert raw.scaler is None and raw.test[0][1].tolist() == [50.0]


def test_standardizer_multichannel_and_constant():
    values = np.array([[1.0, 3.0], [3.0, 3.0]])
    s = Standardizer.fit(values)
    assert s.mean.tolist() == [2.0, 3.0] and s.std.tolist() == [1.0, 1.0]
    assert np.allclose(s.inverse_transform(s.transform(values)), values)


def test_csv_source_and_errors(tmp_path):
    path = tmp_path / "series.csv"
    rows = "\n".join(f"{1900 + i},{i * 1.5}" for i in range(60))
    path.write_text("year,level\n" + rows + "\n", encoding="utf-8")
    assert read_series_csv(path, "level")[:3].tolist() == [0.0, 1.5, 3.0]
    splits = forecasting_splits(path, 4, 1, column="level", val_frac=0.2, test_frac=0.2)
    assert splits.boundaries == (36, 48)
    with pytest.raises(ValueError, match=r"column 'flow' not found; the columns are \['year', 'level'\]") as info:
        forecasting_splits(path, 4, 1, column="flow")
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="column: expected the name of the column"):
        forecasting_splits(path, 4, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("year,level\n1,2\n2,n/a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{bad}:3: column 'level': expected a number, got 'n/a'"):
        read_series_csv(bad, "level")


def test_split_size_errors():
    with pytest.raises(
        ValueError, match="the test segment has 5 of 50 steps; expected at least input_len \\+ horizon = 11"
    ):
        forecasting_splits(np.arange(50.0), 10, 1, val_frac=0.4, test_frac=0.1)
    with pytest.raises(ValueError, match=r"val_frac: expected a fraction in \(0, 1\)"):
        forecasting_splits(np.arange(50.0), 2, 1, val_frac=0.0)
    with pytest.raises(ValueError, match=r"expected shape \(N,\) or \(N, C\)"):
        forecasting_splits(np.zeros((4, 4, 4)), 2, 1)
