"""Evaluation metrics on numpy arrays: classification, language modelling, regression.

Everything here takes host numpy arrays (``Tensor.numpy()`` first) and returns Python floats
or numpy arrays, so the same functions serve every backend and can be checked against
scikit-learn. ``ClassificationMeter`` accumulates a confusion matrix (and top-k hits) over
batches, so evaluating a whole loader never holds every prediction in memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ClassificationMeter",
    "accuracy",
    "bits_per_char",
    "confusion_matrix",
    "f1_per_class",
    "macro_f1",
    "mae",
    "mse",
    "perplexity",
    "persistence_rmse",
    "rmse",
    "top_k_accuracy",
]


def _labels(name: str, y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected 1-D integer class labels, got shape {y.shape} and dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def _predictions(name: str, y_pred: Any) -> np.ndarray:
    """Class ids from ids ``(N,)`` or scores ``(N, C)`` (argmax)."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        return y_pred.argmax(axis=1)
    return _labels(name, y_pred)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of ``y_pred`` (ids ``(N,)`` or scores ``(N, C)``) equal to ``y_true (N,)``."""
    t, p = _labels("accuracy", y_true), _predictions("accuracy", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"accuracy: expected y_true and y_pred of one length, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("accuracy: expected at least one example, got none")
    return float((t == p).mean())


def top_k_hits(y_true: np.ndarray, scores: np.ndarray, k: int) -> int:
    """How many rows have their true class among their ``k`` highest scores (ties: lower index first)."""
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (N, k)
    return int((top == y_true[:, None]).any(axis=1).sum())


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of rows of ``scores (N, C)`` whose ``k`` highest include ``y_true (N,)``."""
    t, s = _labels("top_k_accuracy", y_true), np.asarray(scores)
    if s.ndim != 2 or s.shape[0] != t.shape[0]:
        raise ValueError(f"top_k_accuracy: expected scores (N={t.shape[0]}, C), got {s.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: expected an int k >= 1, got {k!r}")
    return top_k_hits(t, s, k) / max(t.shape[0], 1)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """``cm[i, j]`` = number of examples of class ``i`` predicted as ``j`` (int64 ``(C, C)``)."""
    t, p = _labels("confusion_matrix", y_true), _predictions("confusion_matrix", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: expected y_true and y_pred of one length, got {t.shape} and {p.shape}")
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: expected labels in [0, {num_classes}), got values outside")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """F1 of each class from a confusion matrix; 0 where precision and recall are both undefined or 0."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    denominator = predicted + actual  # 2 tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, 0.0)


def macro_f1(cm: np.ndarray) -> float:
    """The unweighted mean of ``f1_per_class`` (scikit-learn's ``f1_score(average="macro")``)."""
    return float(f1_per_class(cm).mean())


def perplexity(mean_nll: float) -> float:
    """``exp(mean negative log-likelihood in nats)``; ``inf`` past float range."""
    return math.exp(mean_nll) if mean_nll < 700 else math.inf


def bits_per_char(mean_nll: float) -> float:
    """Mean negative log-likelihood per character in bits: ``nats / ln 2``."""
    return float(mean_nll) / math.log(2.0)


def _pair(name: str, y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"{name}: expected y_true and y_pred of one shape, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError(f"{name}: expected at least one value, got none")
    return t, p


def mse(y_true: Any, y_pred: Any) -> float:
    t, p = _pair("mse", y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def mae(y_true: Any, y_pred: Any) -> float:
    t, p = _pair("mae", y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true: Any, y_pred: Any) -> float:
    return math.sqrt(mse(y_true, y_pred))


def persistence_rmse(last_inputs: Any, y_true: Any) -> float:
    """RMSE of the naive forecast "every future step equals the last observed value".

    ``last_inputs (N,)`` is each window's last input value; ``y_true (N, horizon)`` the targets.
    """
    t = np.asarray(y_true, dtype=np.float64)
    last = np.asarray(last_inputs, dtype=np.float64).reshape(t.shape[0], *([1] * (t.ndim - 1)))
    return rmse(t, np.broadcast_to(last, t.shape))


class ClassificationMeter:
    """Accumulates a confusion matrix, summed loss and top-k hits over batches.

    ``update(scores (N, C), targets (N,), loss_sum)``; ``compute()`` gives ``loss``, ``accuracy``,
    ``macro_f1`` and ``top{k}_accuracy`` (when ``k`` is set), and ``f1/<class>`` per class when
    ``class_names`` are given.
    """

    def __init__(self, num_classes: int, top_k: int | None = None, class_names: list[str] | None = None) -> None:
        self.num_classes = int(num_classes)
        self.top_k = top_k
        self.class_names = class_names
        self.cm = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.loss_sum = 0.0
        self.count = 0
        self.top_k_hits = 0

    def update(self, scores: Any, targets: Any, loss_sum: float = 0.0) -> None:
        scores, targets = np.asarray(scores), _labels("ClassificationMeter", targets)
        self.cm += confusion_matrix(targets, scores.argmax(axis=1), self.num_classes)
        if self.top_k:
            self.top_k_hits += top_k_hits(targets, scores, self.top_k)
        self.loss_sum += float(loss_sum)
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("ClassificationMeter: expected at least one update before compute(), got none")
        out = {
            "loss": self.loss_sum / self.count,
            "accuracy": float(np.trace(self.cm) / self.count),
            "macro_f1": macro_f1(self.cm),
        }
        if self.top_k:
            out[f"top{self.top_k}_accuracy"] = self.top_k_hits / self.count
        if self.class_names is not None:
            for name, f1 in zip(self.class_names, f1_per_class(self.cm)):
                out[f"f1/{name}"] = float(f1)
        return out
