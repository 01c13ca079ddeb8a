"""``SequenceClassification`` and ``SequenceRegression``: feature sequences -> a class or values.

Data flow: ``load_dataset(data.name, **data.dataset_kwargs)`` -> train/val/test (the dataset's
own splits; a missing validation split is carved from train: stratified for classes, the
last ``val_fraction`` in time order for regression) -> sequences ``(T_i, C)`` float32 (a
1-D series becomes ``C = 1``), optionally standardised per channel with the TRAIN
statistics (``data.normalize``). Batches are ``(x (B, T, C) float32, lengths (B,) int64 or
None, y)``: ``lengths`` is None when every sequence of the dataset has one length, so
fixed-length data skips the masking. Models are called as ``model(x, lengths)``.

- classification (``japanese_vowels`` ...): ``y (B,)`` int64; metrics ``loss``, ``accuracy``,
  ``macro_f1``; a confusion-matrix figure.
- regression (``adding``, ``sunspots`` forecasting windows): ``y (B, K)`` float32 with
  ``K = output_size``; metrics ``loss`` and ``mse`` (training units), ``mae``, ``rmse``,
  ``baseline_mse`` (predicting the train mean); for forecasting windows also ``rmse_original``
  (original units) and ``persistence_rmse`` ("the next value equals the last one", same units);
  a predictions-vs-targets figure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.catalog import load_dataset
from labkit.data.collate import pad_sequences
from labkit.data.sampler import BucketBatchSampler, seed_from
from labkit.data.text.datasets import split_indices as stratified_split
from labkit.nn.module import Module
from labkit.tasks.base import Loaders
from labkit.tasks.classification import classification_loss, evaluate_classifier, log_confusion_matrix, predict_batches
from labkit.tasks.common import eval_batches, make_loader, model_device, named_splits, read_options, to_device
from labkit.tasks.metrics import ClassificationMeter, mae, mse, persistence_rmse, rmse
from labkit.tasks.plots import predictions_figure

__all__ = ["SequenceClassification", "SequenceRegression", "sequences_and_targets"]

log = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "dataset_kwargs": {},
    "normalize": True,
    "bucket": False,
    "per_class_metrics": True,
}


def sequences_and_targets(dataset: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """``(sequences [(T_i, C) float32], targets (N, ...))`` of a sequence dataset.

    Uses ``arrays()`` (forecasting windows) or ``inputs``/``targets`` (``SequenceDataset``)
    when present; otherwise reads the items ``(x, y)``.
    """
    if hasattr(dataset, "arrays") and callable(dataset.arrays):
        x, y = dataset.arrays()
        inputs, targets = list(x), np.asarray(y)
    elif hasattr(dataset, "inputs") and hasattr(dataset, "targets"):
        inputs, targets = list(dataset.inputs), np.asarray(dataset.targets)
    else:
        items = [dataset[i] for i in range(len(dataset))]
        inputs, targets = [x for x, _ in items], np.asarray([y for _, y in items])
    if not inputs:
        raise ValueError(f"sequence task: dataset {type(dataset).__name__} is empty")
    sequences = []
    for i, x in enumerate(inputs):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"sequence task: expected sequences (T, C) or (T,), got {x.shape} at item {i}")
        sequences.append(x)
    return sequences, targets


class _Sequences:
    def __init__(self, sequences: list[np.ndarray], targets: np.ndarray) -> None:
        self.sequences, self.targets = sequences, targets

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        return self.sequences[index], self.targets[index]


class _SequenceCollate:
    """Items ``(x (T_i, C), y)`` -> ``(x (B, T, C), lengths (B,) or None, y (B, ...))``."""

    def __init__(self, variable: bool, target_dtype: Any) -> None:
        self.variable, self.target_dtype = variable, target_dtype

    def __call__(self, items: list[Any]) -> tuple[Tensor, Tensor | None, Tensor]:
        sequences = [x for x, _ in items]
        y = Tensor(np.asarray([t for _, t in items], dtype=self.target_dtype))
        if not self.variable:
            return Tensor(np.stack(sequences)), None, y
        padded, lengths, _ = pad_sequences(sequences)
        return Tensor(padded), Tensor(lengths), y


class _SequenceTask:
    """What classification and regression share: loading, normalising, batching."""

    name = "SequenceTask"
    classify = True
    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        self.options = read_options(self.name, data_cfg, _DEFAULTS)
        self.generator = generator
        self.loaders: Loaders | None = None
        self.classes: list[str] = []
        self.mean = self.std = np.zeros(0, dtype=np.float32)
        self.raw: dict[str, Any] = {}
        self.data: dict[str, _Sequences] = {}

    def _carve_val(self, sequences: list[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def setup(self, generator: Generator | None = None) -> Loaders:
        generator = generator if generator is not None else self.generator
        o = self.options
        self.raw = {
            k: v
            for k, v in named_splits(load_dataset(o["name"], o["data_dir"], **o["dataset_kwargs"])).items()
            if v is not None
        }
        arrays = {k: sequences_and_targets(ds) for k, ds in self.raw.items()}
        if "test" not in arrays:
            raise ValueError(
                f"{self.name}: dataset {o['name']!r} has no test split; expected train and test (and valid)"
            )
        if "val" not in arrays and o["val_fraction"] > 0:
            sequences, targets = arrays["train"]
            train, val = self._carve_val(sequences, targets)
            arrays["val"] = [sequences[i] for i in val], targets[val]
            arrays["train"] = [sequences[i] for i in train], targets[train]
        if o["limit"] is not None:
            sequences, targets = arrays["train"]
            arrays["train"] = sequences[: o["limit"]], targets[: o["limit"]]
        train_steps = np.concatenate(arrays["train"][0])  # (sum T_i, C)
        channels = train_steps.shape[1]
        if o["normalize"]:
            self.mean = train_steps.mean(axis=0).astype(np.float32)
            self.std = np.maximum(train_steps.std(axis=0), 1e-6).astype(np.float32)
        else:
            self.mean, self.std = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        self._prepare_targets(arrays)
        lengths = {len(x) for seqs, _ in arrays.values() for x in seqs}
        collate = _SequenceCollate(len(lengths) > 1, np.int64 if self.classify else np.float32)
        self.data = {
            k: _Sequences([(x - self.mean) / self.std for x in seqs], self._targets(t))
            for k, (seqs, t) in arrays.items()
        }
        train = self.data["train"]
        if o["bucket"] and len(lengths) > 1:
            sampler = BucketBatchSampler([len(x) for x in train.sequences], o["batch_size"], seed=seed_from(generator))
            train_loader = make_loader(train, 0, False, generator, o["num_workers"], collate, batch_sampler=sampler)
        else:
            train_loader = make_loader(train, o["batch_size"], True, generator, o["num_workers"], collate)
        evals = {
            k: make_loader(self.data[k], o["eval_batch_size"], False, generator, o["num_workers"], collate)
            for k in ("val", "test")
            if k in self.data
        }
        info = {
            "input_size": channels,
            "output_size": self._output_size(),
            "sizes": {k: len(v) for k, v in self.data.items()},
            "lengths": [min(lengths), max(lengths)],
        }
        if self.classify:
            info["classes"] = self.classes
        log.info(
            "%s: %s, splits %s, %d channels, lengths %s", self.name, o["name"], info["sizes"], channels, info["lengths"]
        )
        self.loaders = Loaders(train=train_loader, val=evals.get("val"), test=evals.get("test"), info=info)
        return self.loaders

    def _prepare_targets(self, arrays: dict[str, Any]) -> None:
        pass

    def _targets(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def _output_size(self) -> int:
        raise NotImplementedError

    def model_kwargs(self) -> dict[str, Any]:
        if self.loaders is None:
            self.setup()
        return {
            "input_size": self.loaders.info["input_size"],
            "output_size": self.loaders.info["output_size"],
            "task": "classify" if self.classify else "regress",
        }

    def predict_spec(self) -> dict[str, Any]:
        """How a served model (MLflow pyfunc) reads its input: ``(T, C)`` float32 sequences standardised
        like the loaders' (fixed-length data only; variable lengths need ``lengths``, which pyfunc cannot pass)."""
        info = self.loaders.info if self.loaders is not None else self.setup().info
        spec: dict[str, Any] = {"output": "class_ids" if self.classify else "logits", "input_dtype": "float32"}
        low, high = info["lengths"]
        if low == high:
            spec["input_shape"] = [low, info["input_size"]]
        return spec

    def _outputs(self, model: Module, loader: Iterable[Any]) -> Iterable[tuple[Tensor, Tensor]]:
        for x, lengths, y in eval_batches(model, loader):
            yield y, model(x, lengths)


class SequenceClassification(_SequenceTask):
    """A class per sequence (``japanese_vowels``, ``parity`` ...). Model kwargs: ``input_size``,
    ``output_size`` (the number of classes), ``task="classify"``."""

    name = "SequenceClassification"
    classify = True
    monitor = "accuracy"
    monitor_mode = "max"

    def _carve_val(self, sequences: list[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = stratified_split(
            targets, val_frac=self.options["val_fraction"], test_frac=0.0, seed=self.options["split_seed"]
        )
        return idx["train"], idx["valid"]

    def _prepare_targets(self, arrays: dict[str, Any]) -> None:
        names = getattr(self.raw["train"], "classes", None)
        n = int(max(int(np.max(t)) for _, t in arrays.values())) + 1
        self.classes = [str(c) for c in names] if names else [str(i) for i in range(n)]

    def _targets(self, targets: np.ndarray) -> np.ndarray:
        return targets.astype(np.int64)

    def _output_size(self) -> int:
        return len(self.classes)

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        return classification_loss(model, batch)  # model(x, lengths) against y

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        return evaluate_classifier(model, loader, self.classes, self.options["per_class_metrics"])

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log ``figures/confusion_matrix_<split>.png``."""
        loader = getattr(loaders, split, None)
        if loader is None:
            return {}
        meter = ClassificationMeter(len(self.classes))
        for _, y, logits in predict_batches(model, loader):
            meter.update(logits.numpy(), y.numpy())
        return log_confusion_matrix(tracker, meter, self.classes, self.options["name"], split)


class SequenceRegression(_SequenceTask):
    """Real-valued targets per sequence (``adding``, ``sunspots`` ...). Model kwargs: ``input_size``,
    ``output_size`` (values per target: 1, or the forecasting horizon), ``task="regress"``."""

    name = "SequenceRegression"
    classify = False
    monitor = "mse"
    monitor_mode = "min"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        super().__init__(data_cfg, generator)
        self.target_width = 1
        self.train_mean = np.zeros(1, dtype=np.float32)

    def _carve_val(self, sequences: list[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(sequences)  # the last part in order: forecasting windows are time-ordered, so no leakage
        cut = n - max(1, round(n * self.options["val_fraction"]))
        return np.arange(cut), np.arange(cut, n)

    def _prepare_targets(self, arrays: dict[str, Any]) -> None:
        train = np.asarray(arrays["train"][1], dtype=np.float32).reshape(len(arrays["train"][1]), -1)
        self.target_width = train.shape[1]
        self.train_mean = train.mean(axis=0)

    def _targets(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float32).reshape(len(targets), self.target_width)

    def _output_size(self) -> int:
        return self.target_width

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        x, lengths, y = to_device(batch, model_device(model))
        return F.mse_loss(model(x, lengths), y), int(y.shape[0])

    def predictions(self, model: Module, loader: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(targets (N, K), predictions (N, K))`` over a loader, in training units."""
        truth, predicted = [], []
        for y, out in self._outputs(model, loader):
            truth.append(y.numpy())
            predicted.append(out.numpy().reshape(y.shape))
        return np.concatenate(truth), np.concatenate(predicted)

    def _original_units(self, split: str | None, values: np.ndarray) -> np.ndarray | None:
        dataset = self.raw.get(split) if split else None
        if dataset is None or not hasattr(dataset, "inverse_transform"):
            return None
        return np.asarray(dataset.inverse_transform(values), dtype=np.float64)

    def _split_of(self, loader: Any) -> str | None:
        for key in ("val", "test"):
            if self.loaders is not None and getattr(self.loaders, key) is loader:
                return key
        return None

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        truth, predicted = self.predictions(model, loader)
        error = mse(truth, predicted)
        out = {
            "loss": error,
            "mse": error,
            "mae": mae(truth, predicted),
            "rmse": rmse(truth, predicted),
            "baseline_mse": mse(truth, np.broadcast_to(self.train_mean, truth.shape)),
        }
        split = self._split_of(loader)
        forecast = split is not None and hasattr(self.raw.get(split), "input_len")
        if forecast:  # forecasting windows: scores in the series' units, and the persistence baseline
            last = np.array([x[-1, 0] for x in self.data[split].sequences]) * self.std[0] + self.mean[0]
            t, p = self._original_units(split, truth), self._original_units(split, predicted)
            last_original = self._original_units(split, last)
            out["rmse_original"] = rmse(t, p)
            out["persistence_rmse"] = persistence_rmse(last_original, t)
        return out

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log ``figures/predictions_<split>.png`` (original units for forecasting windows)."""
        loader = getattr(loaders, split, None)
        if loader is None:
            return {}
        truth, predicted = self.predictions(model, loader)
        t, p = self._original_units(split, truth), self._original_units(split, predicted)
        if t is None:
            t, p = truth, predicted
        title = f"{self.options['name']} {split}: RMSE {rmse(t, p):.4g}"
        tracker.log_figure(predictions_figure(t, p, title), f"figures/predictions_{split}.png")
        return {}
