"""``ImageClassification``: a named image dataset, a classifier, accuracy/top-k/F1, figures.

Data flow: ``load_dataset(data.name)`` -> train/val/test splits (the dataset's own test
split when it has one, else ``data.test_fraction`` of it; validation is ``data.val_fraction``
of train, drawn with ``data.split_seed``) -> every image decoded once into a float32
``(N, C, H, W)`` array normalised per channel with the TRAIN mean and std -> loaders of
``(x (B, C, H, W) float32, y (B,) int64)``. Augmentation (``data.augment``) runs per batch
in the collate function: random shifts of up to ``augment_shift`` pixels (zero-filled in
pixel space) and, with ``augment_flip``, horizontal flips, drawn from the loader's batch
generator, so it is deterministic and resumable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor
from labkit.data.catalog import load_dataset
from labkit.data.collate import default_collate
from labkit.data.dataset import TensorDataset
from labkit.data.loader_workers import current_generator
from labkit.nn.module import Module
from labkit.tasks.base import Loaders
from labkit.tasks.classification import (
    classification_loss,
    count_classes,
    evaluate_classifier,
    log_confusion_matrix,
    predict_batches,
    split_train_val_test,
)
from labkit.tasks.common import make_loader, named_splits, read_options
from labkit.tasks.metrics import ClassificationMeter
from labkit.tasks.plots import misclassified_grid

__all__ = ["ImageClassification", "images_and_labels"]

log = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "test_fraction": 0.2,  # used only when the dataset has no test split of its own
    "normalize": True,
    "augment": False,
    "augment_shift": 1,
    "augment_flip": False,
    "per_class_metrics": True,
}


def images_and_labels(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, H, W, C), labels (N,) int64)`` of an image dataset.

    Uses the arrays of an ``ArrayImageDataset``-like object (``images``/``labels``) directly;
    otherwise reads every item ``(image HWC or HW, label)``.
    """
    images = getattr(dataset, "images", None)
    labels = getattr(dataset, "labels", None)
    if isinstance(images, np.ndarray) and labels is not None and getattr(dataset, "transform", None) is None:
        arr = images if images.ndim == 4 else images[..., None]
        return arr, np.asarray(labels, dtype=np.int64)
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError(f"ImageClassification: dataset {type(dataset).__name__} is empty")
    arrays = [np.asarray(image) for image, _ in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"ImageClassification: expected images of one size, got {sorted(shapes)[:4]}; resize them first"
        )
    stacked = np.stack(arrays)
    return (stacked if stacked.ndim == 4 else stacked[..., None]), np.array([int(y) for _, y in items], dtype=np.int64)


def _shift_and_flip(x: np.ndarray, shift: int, flip: bool, fill: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image of ``x (B, C, H, W)`` moved by up to ``shift`` pixels (``fill`` per channel where
    nothing moved in) and, with ``flip``, mirrored left-right with probability 1/2."""
    b, c, h, w = x.shape
    out = np.empty_like(x)
    out[...] = fill.reshape(1, c, 1, 1)
    dy = rng.integers(-shift, shift + 1, size=b)
    dx = rng.integers(-shift, shift + 1, size=b)
    mirror = rng.random(b) < 0.5 if flip else np.zeros(b, dtype=bool)
    for i in range(b):
        src = x[i, :, :, ::-1] if mirror[i] else x[i]
        ys, yd = (slice(0, h - dy[i]), slice(dy[i], h)) if dy[i] >= 0 else (slice(-dy[i], h), slice(0, h + dy[i]))
        xs, xd = (slice(0, w - dx[i]), slice(dx[i], w)) if dx[i] >= 0 else (slice(-dx[i], w), slice(0, w + dx[i]))
        out[i, :, yd, xd] = src[:, ys, xs]
    return out


class _AugmentCollate:
    """``default_collate``, then random shifts/flips of the image batch (a picklable callable)."""

    def __init__(self, shift: int, flip: bool, fill: np.ndarray) -> None:
        self.shift, self.flip, self.fill = int(shift), bool(flip), fill

    def __call__(self, items: list[Any]) -> tuple[Tensor, Tensor]:
        x, y = default_collate(items)
        rng = resolve(current_generator())
        return Tensor(_shift_and_flip(x.data, self.shift, self.flip, self.fill, rng)), y


class ImageClassification:
    """Image classification on a named dataset (``digits``, ``mnist5k``, ``fashion_mnist``, ``shapes`` ...).

    Data keys (besides ``name``, ``data_dir``, ``batch_size``, ``eval_batch_size``,
    ``val_fraction``, ``num_workers``, ``split_seed``, ``limit``): ``test_fraction``,
    ``normalize``, ``augment``, ``augment_shift``, ``augment_flip``, ``per_class_metrics``.
    Metrics: ``loss``, ``accuracy``, ``macro_f1``, ``top5_accuracy`` (more than 5 classes),
    ``f1/<class>``. Model kwargs: ``in_channels``, ``num_classes``, ``image_size``.
    """

    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        self.options = read_options("ImageClassification", data_cfg, _DEFAULTS)
        self.generator = generator
        self.loaders: Loaders | None = None
        self.classes: list[str] = []
        self.mean = self.std = np.zeros(0, dtype=np.float32)

    # ---- data ---------------------------------------------------------------------------

    def _splits(self) -> dict[str, tuple[np.ndarray, ...]]:
        o = self.options
        parts = named_splits(load_dataset(o["name"], o["data_dir"]))
        self.classes = [str(c) for c in getattr(parts["train"], "classes", [])]
        arrays = {k: images_and_labels(ds) for k, ds in parts.items() if ds is not None}
        return split_train_val_test(arrays, o["test_fraction"], o["val_fraction"], o["split_seed"], o["limit"])

    def setup(self, generator: Generator | None = None) -> Loaders:
        """Load and split the data, fit the normalisation on train, build the loaders."""
        generator = generator if generator is not None else self.generator
        o = self.options
        arrays = self._splits()
        train_images = arrays["train"][0]
        n_classes, self.classes = count_classes((labels for _, labels in arrays.values()), self.classes)
        pixels = train_images.astype(np.float32).transpose(0, 3, 1, 2)  # (N, C, H, W)
        channels = pixels.shape[1]
        if o["normalize"]:
            self.mean = pixels.mean(axis=(0, 2, 3)).astype(np.float32)
            self.std = np.maximum(pixels.std(axis=(0, 2, 3)), 1e-6).astype(np.float32)
        else:
            scale = 255.0 if train_images.dtype == np.uint8 else 1.0
            self.mean, self.std = np.zeros(channels, np.float32), np.full(channels, scale, np.float32)

        def dataset(split: str) -> TensorDataset:
            images, labels = arrays[split]
            x = (images.astype(np.float32).transpose(0, 3, 1, 2) - self.mean[:, None, None]) / self.std[:, None, None]
            return TensorDataset(np.ascontiguousarray(x, dtype=np.float32), labels)

        collate = None
        if o["augment"]:
            fill = (-self.mean / self.std).astype(np.float32)  # pixel value 0 after normalisation
            collate = _AugmentCollate(o["augment_shift"], o["augment_flip"], fill)
        train = make_loader(dataset("train"), o["batch_size"], True, generator, o["num_workers"], collate)
        evals = {
            k: make_loader(dataset(k), o["eval_batch_size"], False, generator, o["num_workers"])
            for k in ("val", "test")
            if k in arrays
        }
        height, width = train_images.shape[1:3]
        info = {
            "num_classes": n_classes,
            "classes": self.classes,
            "in_channels": channels,
            "image_size": [int(height), int(width)],
            "input_shape": [channels, int(height), int(width)],
            "sizes": {k: len(v[1]) for k, v in arrays.items()},
        }
        log.info("ImageClassification: %s, splits %s, %d classes, images %dx%dx%d", o["name"], info["sizes"],
                 n_classes, channels, height, width)  # fmt: skip
        self.loaders = Loaders(train=train, val=evals.get("val"), test=evals.get("test"), info=info)
        return self.loaders

    def model_kwargs(self) -> dict[str, Any]:
        if self.loaders is None:
            self.setup()
        info = self.loaders.info
        return {
            "in_channels": info["in_channels"],
            "num_classes": info["num_classes"],
            "image_size": info["image_size"],
        }

    def predict_spec(self) -> dict[str, Any]:
        """How a served model (MLflow pyfunc) reads its input: normalised ``(C, H, W)`` float32 images
        (``(pixels - task.mean) / task.std`` per channel, as in the loaders) -> class ids."""
        info = self.loaders.info if self.loaders is not None else self.setup().info
        return {
            "output": "class_ids",
            "input_shape": [info["in_channels"], *info["image_size"]],
            "input_dtype": "float32",
        }

    # ---- loss, metrics, figures ---------------------------------------------------------------

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        return classification_loss(model, batch)

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        top_k = 5 if len(self.classes) > 5 else None
        return evaluate_classifier(model, loader, self.classes, self.options["per_class_metrics"], top_k)

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log ``figures/confusion_matrix_<split>.png`` and ``figures/misclassified_<split>.png``."""
        loader = getattr(loaders, split, None)
        if loader is None:
            return {}
        meter = ClassificationMeter(len(self.classes))
        wrong_x, wrong_true, wrong_pred = [], [], []
        for (x,), y, logits in predict_batches(model, loader):
            scores, labels = logits.numpy(), y.numpy()
            meter.update(scores, labels)
            predicted = scores.argmax(axis=1)
            miss = np.flatnonzero(predicted != labels)
            if len(wrong_true) < 25 and miss.size:
                images = x.numpy()[miss] * self.std[:, None, None] + self.mean[:, None, None]
                wrong_x.extend(images)
                wrong_true.extend(labels[miss].tolist())
                wrong_pred.extend(predicted[miss].tolist())
        metrics = log_confusion_matrix(tracker, meter, self.classes, self.options["name"], split)
        grid = misclassified_grid(np.array(wrong_x[:25]), wrong_true[:25], wrong_pred[:25], self.classes)
        tracker.log_figure(grid, f"figures/misclassified_{split}.png")
        return metrics
