"""The task figures render to PNG without pyplot or a display."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labkit.tasks.plots import confusion_matrix_figure, figure_png, misclassified_grid, predictions_figure

PNG = b"\x89PNG\r\n\x1a\n"


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_confusion_matrix_figure_writes_counts_and_png():
    fig = confusion_matrix_figure(np.array([[3, 1], [0, 4]]), ["cat", "dog"], title="val")
    assert figure_png(fig).startswith(PNG)
    assert {"3", "1", "0", "4", "val"} <= set(texts(fig))
    with pytest.raises(ValueError, match=r"expected 2 class names, got 3"):
        confusion_matrix_figure(np.eye(2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="expected a square"):
        confusion_matrix_figure(np.ones((2, 3)))


def test_misclassified_grid_titles_and_empty_case():
    images = np.random.default_rng(0).random((3, 1, 8, 8))
    fig = misclassified_grid(images, [0, 1, 2], [1, 2, 0], ["a", "b", "c"])
    assert figure_png(fig).startswith(PNG)
    assert {"a -> b", "b -> c", "c -> a"} <= set(texts(fig))
    empty = misclassified_grid(np.zeros((0, 1, 8, 8)), [], [])
    assert "no misclassified examples" in texts(empty)
    rgb = misclassified_grid(np.random.default_rng(0).random((2, 3, 4, 4)), [0, 1], [1, 0])
    assert figure_png(rgb).startswith(PNG)


def test_predictions_figure_and_no_pyplot():
    fig = predictions_figure(np.arange(20.0).reshape(10, 2), np.arange(20.0).reshape(10, 2) + 0.5, title="fc")
    assert figure_png(fig).startswith(PNG)
    assert "fc" in texts(fig)
    with pytest.raises(ValueError, match="predictions_figure: expected y_true and y_pred of one non-empty shape"):
        predictions_figure(np.zeros(3), np.zeros(4))


def test_figures_do_not_import_pyplot():
    code = (
        "import sys, numpy as np\n"
        "from labkit.tasks.plots import confusion_matrix_figure, figure_png\n"
        "figure_png(confusion_matrix_figure(np.eye(2)))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
