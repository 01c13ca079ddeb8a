"""Spectrogram figures for the audio task (matplotlib's object API on an Agg canvas, never pyplot)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["spectrogram_grid"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # no constrained layout: with a grid of images it doubles the rendering time
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def spectrogram_grid(
    spectrograms: np.ndarray,
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    title: str = "",
    hop_seconds: float | None = None,
    columns: int = 5,
) -> Any:
    """A grid of log-mel spectrograms ``(K, n_mels, n_frames)`` (dB), low frequencies at the bottom,
    each titled ``true: A`` / ``pred: B`` (red when they differ). ``hop_seconds`` labels the time
    axis in seconds. An empty selection gives a figure that says there is nothing to show."""
    spectrograms = np.asarray(spectrograms, dtype=np.float64)
    count = len(spectrograms)
    if count and spectrograms.ndim != 3:
        raise ValueError(f"spectrogram_grid: expected spectrograms (K, n_mels, n_frames), got {spectrograms.shape}")
    if len(y_true) != count or len(y_pred) != count:
        raise ValueError(
            f"spectrogram_grid: expected {count} true and predicted labels, got {len(y_true)} and {len(y_pred)}"
        )
    columns = max(1, min(int(columns), count or 1))
    rows = max(1, -(-count // columns))
    panel, gap, top, bottom = 1.9, 0.7, 0.8, 0.5  # inches: a panel's height, the room for titles and labels
    height = rows * panel + (rows - 1) * gap + top + bottom
    fig = _figure(2.6 * columns, height)
    if count == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        return fig
    low, high = float(spectrograms.min()), float(spectrograms.max())
    n_mels, n_frames = spectrograms.shape[1:]
    extent = (0.0, n_frames * hop_seconds, 0, n_mels) if hop_seconds is not None else (0, n_frames, 0, n_mels)
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.remove()
    for k in range(count):
        ax = axes[k]
        ax.imshow(spectrograms[k], origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high, extent=extent,
                  interpolation="nearest")  # fmt: skip
        t, p = int(y_true[k]), int(y_pred[k])
        colour = "black" if t == p else "firebrick"
        ax.set_title(f"true: {class_names[t]}\npred: {class_names[p]}", fontsize=8, color=colour)
        ax.tick_params(labelsize=6)
        if k % columns == 0:
            ax.set_ylabel("mel band", fontsize=7)
        if k >= count - columns:  # the lowest panel of its column
            ax.set_xlabel("time (s)" if hop_seconds is not None else "frame", fontsize=7)
            ax.tick_params(labelbottom=True)
    fig.subplots_adjust(
        left=0.5 / fig.get_figwidth(), right=0.98, bottom=bottom / height, top=1 - top / height, hspace=gap / panel,
        wspace=0.1,
    )  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig
