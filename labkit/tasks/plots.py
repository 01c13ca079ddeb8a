"""Figures the tasks log as artifacts: confusion matrix, misclassified samples, predictions vs targets.

Figures are built on matplotlib's object API with an Agg canvas (never ``pyplot``): no global
backend is switched, nothing opens a window, and figures are freed when dropped. Each
function returns a ``matplotlib.figure.Figure`` for ``tracker.log_figure(fig, "name.png")``;
``figure_png(fig)`` gives its PNG bytes. matplotlib is imported when a figure is made.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_matrix_figure", "figure_png", "misclassified_grid", "new_figure", "predictions_figure"]


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot state), ``width`` x ``height`` inches, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str] | None = None, title: str = "") -> Any:
    """A heat map of ``cm (C, C)`` (rows: true class, columns: predicted), counts written in the cells
    when ``C <= 20``, colours by row-normalised recall so rare classes stay readable."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion_matrix_figure: expected a square (C, C) matrix, got shape {cm.shape}")
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"confusion_matrix_figure: expected {n} class names, got {len(names)}")
    size = min(3.0 + 0.45 * n, 14.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(n), names, rotation=45 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"confusion matrix ({int(cm.sum())} examples)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=colour, fontsize=8)
    return fig


def _as_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image for ``imshow`` from CHW or HW (channels 1 or 3), scaled to [0, 1] per image."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    if x.ndim not in (2, 3):
        raise ValueError(f"misclassified_grid: expected images (C, H, W) or (H, W), got {x.shape}")
    low, high = float(x.min()), float(x.max())
    x = (x - low) / (high - low) if high > low else np.zeros_like(x)
    return x, ("gray" if x.ndim == 2 else None)


def misclassified_grid(
    images: np.ndarray,
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str] | None = None,
    max_items: int = 25,
) -> Any:
    """A grid of up to ``max_items`` images ``(N, C, H, W)`` titled "true -> predicted".

    Pass the misclassified examples (any images work). An empty selection gives a figure that
    says there is nothing to show.
    """
    images = np.asarray(images)
    count = min(len(images), int(max_items))
    columns = max(1, min(5, count))
    rows = max(1, -(-count // columns))
    fig = new_figure(2.0 * columns, 2.2 * rows)
    if count == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
        return fig
    names = list(class_names) if class_names is not None else None
    for k in range(count):
        ax = fig.add_subplot(rows, columns, k + 1)
        image, cmap = _as_image(images[k])
        ax.imshow(image, cmap=cmap, interpolation="nearest")
        t, p = int(y_true[k]), int(y_pred[k])
        label = f"{names[t]} -> {names[p]}" if names else f"{t} -> {p}"
        ax.set_title(label, fontsize=8, color="firebrick")
        ax.axis("off")
    fig.suptitle(f"misclassified examples ({count} shown)")
    return fig


def predictions_figure(
    y_true: np.ndarray, y_pred: np.ndarray, title: str = "predictions vs targets", max_points: int = 400
) -> Any:
    """Left: targets and predictions in order (the first horizon step of each window, up to
    ``max_points``); right: a scatter of prediction against target with the diagonal."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(
            f"predictions_figure: expected y_true and y_pred of one non-empty shape, got {t.shape} and {p.shape}"
        )
    t2, p2 = t.reshape(len(t), -1), p.reshape(len(p), -1)
    fig = new_figure(11.0, 4.0)
    series, scatter = fig.subplots(1, 2, width_ratios=(2, 1))
    shown = slice(0, min(len(t2), int(max_points)))
    series.plot(t2[shown, 0], label="target", linewidth=1.2)
    series.plot(p2[shown, 0], label="prediction", linewidth=1.2, alpha=0.85)
    series.set_xlabel("example")
    series.legend()
    series.set_title(title)
    scatter.scatter(t2.ravel(), p2.ravel(), s=6, alpha=0.5)
    low, high = float(min(t2.min(), p2.min())), float(max(t2.max(), p2.max()))
    scatter.plot([low, high], [low, high], color="black", linewidth=0.8)
    scatter.set_xlabel("target")
    scatter.set_ylabel("prediction")
    return fig
