"""Forecasting data: sliding windows over a series, split by time, normalised on the training part.

``forecasting_splits`` cuts the series into consecutive train / valid / test segments
and makes windows inside each segment only, so no window (input or target) crosses a
boundary and nothing from a later period leaks into an earlier split. The mean and
standard deviation are fitted on the training segment alone and applied to all three;
``inverse_transform`` maps predictions back to the original units.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Standardizer:
    """Per-channel ``(x - mean) / std`` with the statistics of the data given to ``fit``."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """Statistics over the time axis of ``values`` ``(N, C)``; a constant channel gets std 1."""
        values = np.asarray(values, dtype=np.float64)
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values) - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, values: Any) -> np.ndarray:
        """Back to the original units; ``values`` ends in the channel axis (or has none, for one channel)."""
        return (np.asarray(values, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def __repr__(self) -> str:
        return f"Standardizer(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"


def _as_series(op: str, series: Any) -> tuple[np.ndarray, bool]:
    arr = np.asarray(series, dtype=np.float32)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{op}: series: expected shape (N,) or (N, C), got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
    if len(bad):
        raise ValueError(f"{op}: series: expected finite values, got a NaN or inf at time index {bad[0]}")
    return (arr[:, None] if arr.ndim == 1 else arr), arr.ndim == 1


class SlidingWindowForecast:
    """Windows of a series: ``dataset[i] -> (x (input_len, C), y (horizon,) or (horizon, C))``, float32.

    Window ``i`` starts at ``i * stride``: ``x`` is the ``input_len`` steps from there and
    ``y`` the ``horizon`` steps right after. ``y`` has no channel axis when ``series`` was 1-D.
    """

    def __init__(
        self, series: Any, input_len: int, horizon: int = 1, stride: int = 1, scaler: Standardizer | None = None
    ) -> None:
        for key, v in (("input_len", input_len), ("horizon", horizon), ("stride", stride)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"SlidingWindowForecast: {key}: expected an int >= 1, got {v!r}")
        self.values, self.univariate = _as_series("SlidingWindowForecast", series)
        if len(self.values) < input_len + horizon:
            raise ValueError(
                f"SlidingWindowForecast: expected a series of at least input_len + horizon = "
                f"{input_len + horizon} steps, got {len(self.values)}"
            )
        self.input_len, self.horizon, self.stride = input_len, horizon, stride
        self.scaler = scaler

    def __len__(self) -> int:
        return (len(self.values) - self.input_len - self.horizon) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"SlidingWindowForecast: index {index} out of range for {n} windows")
        start = index * self.stride
        x = self.values[start : start + self.input_len]  # (input_len, C)
        y = self.values[start + self.input_len : start + self.input_len + self.horizon]  # (horizon, C)
        return x, (y[:, 0] if self.univariate else y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All windows stacked: ``x (n, input_len, C)``, ``y (n, horizon)`` or ``(n, horizon, C)``."""
        xs, ys = zip(*(self[i] for i in range(len(self))))
        return np.stack(xs), np.stack(ys)

    def inverse_transform(self, values: Any) -> np.ndarray:
        """Predictions back in the series' original units (identity when not normalised)."""
        return np.asarray(values, dtype=np.float32) if self.scaler is None else self.scaler.inverse_transform(values)

    def __repr__(self) -> str:
        return f"SlidingWindowForecast(steps={len(self.values)}, input_len={self.input_len}, horizon={self.horizon}, windows={len(self)})"


@dataclass
class ForecastSplits:
    """Time-ordered ``train``/``valid``/``test`` windows; ``boundaries`` are the first steps of valid and test."""

    train: SlidingWindowForecast
    valid: SlidingWindowForecast
    test: SlidingWindowForecast
    scaler: Standardizer | None
    boundaries: tuple[int, int]

    def __getitem__(self, name: str) -> SlidingWindowForecast:
        if name not in ("train", "valid", "test"):
            raise KeyError(f"ForecastSplits: expected 'train', 'valid' or 'test', got {name!r}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, SlidingWindowForecast]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def inverse_transform(self, values: Any) -> np.ndarray:
        return self.train.inverse_transform(values)


def read_series_csv(path: str | os.PathLike[str], column: str) -> np.ndarray:
    """The float32 values of one named column of a CSV file with a header row."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path}: expected a header row naming the columns, got an empty file")
    if column not in header:
        raise ValueError(f"{path}: column {column!r} not found; the columns are {header}")
    col = header.index(column)
    values = []
    for row in reader:
        if not row:
            continue
        if len(row) <= col:
            raise ValueError(f"{path}:{reader.line_num}: expected {len(header)} fields, got {len(row)}")
        try:
            values.append(float(row[col]))
        except ValueError:
            raise ValueError(
                f"{path}:{reader.line_num}: column {column!r}: expected a number, got {row[col]!r}"
            ) from None
    if not values:
        raise ValueError(f"{path}: column {column!r}: expected at least one value, got none")
    return np.asarray(values, dtype=np.float32)


def forecasting_splits(
    source: Any,
    input_len: int,
    horizon: int = 1,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    column: str | None = None,
    normalize: bool = True,
    stride: int = 1,
) -> ForecastSplits:
    """Split a series by time into train / valid / test windows (see the module docstring).

    ``source`` is an array ``(N,)``/``(N, C)`` or the path of a CSV file, then with
    ``column`` naming the column to forecast. The last ``test_frac`` of the steps is
    the test segment, the ``val_frac`` before it the validation segment; each must hold
    at least one window (``input_len + horizon`` steps).
    """
    if isinstance(source, (str, os.PathLike)):
        if column is None:
            raise ValueError(
                f"forecasting_splits: column: expected the name of the column to read from {source}, got None"
            )
        source = read_series_csv(source, column)
    values, univariate = _as_series("forecasting_splits", source)
    for key, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 < frac < 1.0:
            raise ValueError(f"forecasting_splits: {key}: expected a fraction in (0, 1), got {frac!r}")
    n = len(values)
    n_test, n_val = round(n * test_frac), round(n * val_frac)
    a, b = n - n_val - n_test, n - n_test
    need = input_len + horizon
    for name, size in (("train", a), ("valid", n_val), ("test", n_test)):
        if size < need:
            raise ValueError(
                f"forecasting_splits: the {name} segment has {size} of {n} steps; expected at least "
                f"input_len + horizon = {need} (change the fractions, input_len or horizon)"
            )
    scaler = Standardizer.fit(values[:a]) if normalize else None
    scaled = scaler.transform(values) if scaler is not None else values
    if univariate:
        scaled = scaled[:, 0]
    parts = [
        SlidingWindowForecast(scaled[s:e], input_len, horizon, stride, scaler) for s, e in ((0, a), (a, b), (b, n))
    ]
    return ForecastSplits(*parts, scaler=scaler, boundaries=(a, b))
