"""Sequence data: synthetic RNN benchmarks (adding, copy, parity), the UEA/UCR ``.ts`` reader, and
forecasting windows split by time. The named datasets live in ``builtin``."""

from labkit.data.collate import pad_sequences
from labkit.data.sequence.forecasting import (
    ForecastSplits,
    SlidingWindowForecast,
    Standardizer,
    forecasting_splits,
    read_series_csv,
)
from labkit.data.sequence.synthetic import SequenceDataset, adding_problem, copy_task, parity
from labkit.data.sequence.ts_format import TSData, read_ts

__all__ = [
    "ForecastSplits",
    "SequenceDataset",
    "SlidingWindowForecast",
    "Standardizer",
    "TSData",
    "adding_problem",
    "copy_task",
    "forecasting_splits",
    "pad_sequences",
    "parity",
    "read_series_csv",
    "read_ts",
]
