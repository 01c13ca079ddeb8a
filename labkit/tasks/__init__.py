"""Tasks: one per domain (image classification, text classification, language modelling, sequences)."""

from labkit.tasks.base import Loaders, Task

__all__ = ["Loaders", "Task"]
