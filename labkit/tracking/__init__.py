"""Experiment tracking behind a small interface (MLflow in ``mlflow_tracker``, imported lazily)."""

from labkit.tracking.base import MemoryTracker, Tracker

__all__ = ["MemoryTracker", "Tracker"]
