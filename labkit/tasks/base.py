"""The task interface: what one domain brings to the runner.

A task owns its data, knows how to build the model's input/output sizes from it, computes
the loss of a batch, evaluates metrics, and makes its figures and artifacts. The runner
and the training loop only talk to this interface, so a plugin adds a domain by writing
a Task and registering it (plugin registry kind ``task``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from labkit.core.tensor import Tensor
from labkit.nn.module import Module


@dataclass
class Loaders:
    """The task's data loaders; ``val``/``test`` may be None."""

    train: Iterable[Any]
    val: Iterable[Any] | None = None
    test: Iterable[Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # num_classes, vocab_size, input shape ...


@runtime_checkable
class Task(Protocol):
    """A domain's data, loss, metrics and artifacts.

    Metric names follow MLflow's chart grouping: ``train/loss``, ``val/accuracy``,
    ``test/perplexity`` (the runner adds the prefix; tasks return bare names).

    Optional: ``prepare_model(model) -> None``. When a task defines it, the runner calls it once on
    the built model, before the optimizer and before a resumed run's checkpoint is loaded: the place
    for statistics of the training data that a model keeps in its state (the text task hands its
    training texts to a bag's ``fit_term_weights``). It is not part of the protocol's checks, so
    tasks without it still satisfy ``isinstance(task, Task)``.
    """

    #: the metric early stopping / best checkpoints watch by default, and its direction
    monitor: str
    monitor_mode: str  # "min" | "max"

    def setup(self, generator: Any) -> Loaders:
        """Locate and load the data (raising DatasetNotFoundError before any model exists)."""
        ...

    def model_kwargs(self) -> dict[str, Any]:
        """Sizes the model config needs from the data (``num_classes``, ``vocab_size`` ...)."""
        ...

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        """The mean loss of one batch and the number of examples (or tokens) it covers."""
        ...

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        """Metrics over a whole loader (under no_grad, model in eval mode)."""
        ...

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> Mapping[str, Any]:
        """Log the task's figures and files (confusion matrix, samples ...); return extra metrics."""
        ...
