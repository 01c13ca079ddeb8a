"""A tiny task and model that satisfy labkit/tasks/base.py, for runner tests (two Gaussian classes in 4-D)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import labkit
import labkit.functional as F
from labkit import nn
from labkit.core.random import resolve
from labkit.data.dataset import TensorDataset
from labkit.data.loader import DataLoader
from labkit.tasks.base import Loaders


class ToyMLP(nn.Module):
    """(B, in_features) -> (B, num_classes) logits."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 16, dropout: float = 0.0, generator: Any = None
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden, generator=generator)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes, generator=generator)

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        return self.fc2(self.drop(F.tanh(self.fc1(x))))


class ToyTask:
    """Points in 4-D labelled by the sign of x0 + x1; ``poison_at``: the loss turns NaN from that batch on;
    ``signal_at``: the process sends itself ``signal_name`` at that batch."""

    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        data_cfg: Mapping[str, Any],
        generator: Any,
        poison_at: int | None = None,
        signal_at: int | None = None,
        signal_name: str = "SIGUSR2",
    ) -> None:
        self.batch_size = int(data_cfg["batch_size"])
        self.n = int(data_cfg.get("n", 96))
        self.poison_at = poison_at
        self.signal_at, self.signal_name = signal_at, signal_name
        self.calls = 0

    def setup(self, generator: Any) -> Loaders:
        rng = resolve(generator)
        x = rng.normal(size=(self.n, 4)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        a, b = self.n * 2 // 3, self.n * 5 // 6
        seed = int(rng.integers(2**31))
        train = DataLoader(TensorDataset(x[:a], y[:a]), batch_size=self.batch_size, shuffle=True, seed=seed)
        val = DataLoader(TensorDataset(x[a:b], y[a:b]), batch_size=64)
        test = DataLoader(TensorDataset(x[b:], y[b:]), batch_size=64)
        return Loaders(train, val, test, info={"num_classes": 2, "input_shape": [4]})

    def model_kwargs(self) -> dict[str, Any]:
        return {"in_features": 4, "num_classes": 2}

    def training_loss(self, model: nn.Module, batch: Any) -> tuple[labkit.Tensor, int]:
        x, y = batch
        self.calls += 1
        loss = F.cross_entropy(model(x), y)
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        if self.calls == self.signal_at:
            os.kill(os.getpid(), getattr(signal, self.signal_name))
        return loss, int(y.shape[0])

    def evaluate(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        correct = total = 0
        loss_sum = 0.0
        for x, y in loader:
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y).item()) * y.shape[0]
            correct += int((logits.numpy().argmax(1) == y.numpy()).sum())
            total += int(y.shape[0])
        return {"accuracy": correct / total, "loss": loss_sum / total}

    def artifacts(self, model: nn.Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        tracker.log_text(f"toy artifacts for {split}\n", f"{split}/toy.txt")
        return {"artifact_calls": 1.0}
