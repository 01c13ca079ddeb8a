"""Pieces every classification task shares (images, texts, sequences, a plugin's audio clips ...).

A classification task's batches are ``(*inputs, labels (B,) int64)`` and its model is called as
``model(*inputs) -> logits (B, C)``. With that convention a task is mostly data handling:

- ``split_train_val_test``: carve the missing test / validation splits from train, keep ``limit``;
- ``cross_validation_fold``: one fold of a stratified k-fold split (model selection on small data);
- ``count_classes``: the number of classes and their names, from the labels of every split;
- ``classification_loss``: mean cross-entropy of one batch (``training_loss``);
- ``predict_batches``: ``(inputs, labels, logits)`` per batch, in eval mode under ``no_grad``;
- ``evaluate_classifier``: ``loss``, ``accuracy``, ``macro_f1``, ``top{k}_accuracy``, ``f1/<class>``;
- ``log_confusion_matrix``: the ``figures/confusion_matrix_<split>.png`` artifact and the error count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.core.tensor import Tensor
from labkit.data.sampler import PURPOSE_FOLDS, permutation
from labkit.nn.module import Module
from labkit.tasks.common import eval_batches, metric_name, model_device, split_indices, to_device
from labkit.tasks.metrics import ClassificationMeter
from labkit.tasks.plots import confusion_matrix_figure

__all__ = [
    "classification_loss",
    "count_classes",
    "cross_validation_fold",
    "evaluate_classifier",
    "log_confusion_matrix",
    "predict_batches",
    "split_train_val_test",
]

Arrays = tuple[np.ndarray, ...]


def split_train_val_test(
    arrays: Mapping[str, Arrays],
    test_fraction: float,
    val_fraction: float,
    split_seed: int,
    limit: int | None = None,
) -> dict[str, Arrays]:
    """The splits ``{"train", "val", "test"}`` of ``arrays`` (``split -> (inputs (N, ...), labels (N,), ...)``,
    every array indexed along its first axis alike; ``"train"`` required, ``"val"``/``"test"`` optional).

    Without ``"test"``, a seeded ``test_fraction`` of train becomes test (``split_indices`` with
    ``split_seed``); then, without ``"val"`` and with ``val_fraction > 0``, a ``val_fraction`` of what is
    left (seed ``split_seed + 1``). Finally train keeps only its first ``limit`` rows (``None``: all).
    The same arguments give the same splits on every machine; ``arrays`` is not modified.
    """
    if "train" not in arrays:
        raise ValueError(f"split_train_val_test: expected a 'train' split, got {sorted(arrays)}")
    out = dict(arrays)
    if "test" not in out:
        rest, test = split_indices(len(out["train"][-1]), [1 - test_fraction], split_seed)
        out["train"], out["test"] = _take(out["train"], rest), _take(out["train"], test)
    if "val" not in out and val_fraction > 0:
        val, train = split_indices(len(out["train"][-1]), [val_fraction], split_seed + 1)
        out["train"], out["val"] = _take(out["train"], train), _take(out["train"], val)
    if limit is not None:
        out["train"] = tuple(a[:limit] for a in out["train"])
    return out


def cross_validation_fold(labels: np.ndarray, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, held-out rows)`` of fold ``fold`` of a stratified ``folds``-fold split of ``labels (N,)``.

    Each class's rows are shuffled with ``seed`` (the loader's stable stream, the same on every
    machine) and dealt round-robin to the folds, so every fold holds about ``1/folds`` of each class;
    the ``folds`` held-out parts are disjoint and cover every row. Both index arrays are sorted.
    """
    if not _is_int(folds) or folds < 2:
        raise ValueError(f"cross_validation_fold: expected folds as an int >= 2, got {folds!r}")
    if not _is_int(fold) or not 0 <= fold < folds:
        raise ValueError(f"cross_validation_fold: expected fold as an int in [0, {folds - 1}], got {fold!r}")
    labels = np.asarray(labels)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[permutation(len(rows), int(seed), int(c), PURPOSE_FOLDS)]
        fold_of[rows] = np.arange(len(rows)) % folds
    return np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _take(arrays: Arrays, rows: np.ndarray) -> Arrays:
    return tuple(a[rows] for a in arrays)


def count_classes(labels: Iterable[np.ndarray], classes: Sequence[str] = ()) -> tuple[int, list[str]]:
    """``(num_classes, names)``: ``num_classes`` is the largest label of any array in ``labels`` plus one;
    ``names`` are ``classes`` (the dataset's) unless there are fewer of them, then ``"0" ... "K-1"``."""
    n = int(max(int(np.max(y, initial=-1)) for y in labels)) + 1
    names = [str(c) for c in classes]
    return n, names if len(names) >= n else [str(i) for i in range(n)]


def classification_loss(model: Module, batch: Sequence[Any]) -> tuple[Tensor, int]:
    """``(mean cross-entropy, batch size)`` of a batch ``(*inputs, labels (B,))``: ``model(*inputs)`` on the
    model's device against ``labels``. A classification task's ``training_loss``."""
    *inputs, labels = to_device(batch, model_device(model))
    return F.cross_entropy(model(*inputs), labels), int(labels.shape[0])


def predict_batches(model: Module, loader: Iterable[Any]) -> Iterator[tuple[tuple[Any, ...], Tensor, Tensor]]:
    """``(inputs, labels (B,), logits (B, C))`` for each batch ``(*inputs, labels)`` of ``loader``, with the
    model in eval mode under ``no_grad`` and the batch on its device (``eval_batches``)."""
    for *inputs, labels in eval_batches(model, loader):
        yield tuple(inputs), labels, model(*inputs)


def evaluate_classifier(
    model: Module,
    loader: Iterable[Any],
    classes: Sequence[str],
    per_class_metrics: bool = True,
    top_k: int | None = None,
) -> dict[str, float]:
    """A classification task's ``evaluate``: over every batch of ``loader`` (``predict_batches``),
    ``loss`` (mean cross-entropy), ``accuracy``, ``macro_f1``, ``top{top_k}_accuracy`` (when ``top_k``)
    and, with ``per_class_metrics``, ``f1/<class>`` (names made MLflow-safe by ``metric_name``)."""
    names = [metric_name(c) for c in classes] if per_class_metrics else None
    meter = ClassificationMeter(len(classes), top_k=top_k, class_names=names)
    for _, labels, logits in predict_batches(model, loader):
        loss = F.cross_entropy(logits, labels, reduction="sum")
        meter.update(logits.numpy(), labels.numpy(), float(loss.item()))
    return meter.compute()


def log_confusion_matrix(
    tracker: Any, meter: ClassificationMeter, classes: Sequence[str], dataset: str, split: str
) -> dict[str, float]:
    """Log ``meter``'s confusion matrix as ``figures/confusion_matrix_<split>.png``, titled
    ``"<dataset> <split>: accuracy 0.xxxx"``; return ``{"errors": misclassified count}`` (``artifacts``' metrics)."""
    accuracy = float(np.trace(meter.cm) / max(meter.count, 1))
    title = f"{dataset} {split}: accuracy {accuracy:.4f}"
    tracker.log_figure(confusion_matrix_figure(meter.cm, classes, title), f"figures/confusion_matrix_{split}.png")
    return {"errors": float(meter.count - np.trace(meter.cm))}
