"""``AudioClassification``: a named audio dataset, log-mel features, a classifier, accuracy/F1, figures.

Data flow: ``load_dataset(data.name, data.data_dir, **data.dataset_kwargs)`` -> train/val/test
splits (the dataset's own test split when it has one, else ``data.test_fraction`` of it;
validation is ``data.val_fraction`` of train, drawn with ``data.split_seed``) -> every clip read
once, padded with zeros or cut to ``data.clip_seconds`` -> log-mel spectrograms
(``labkit_audio.features``) ``(N, 1, n_mels, n_frames)`` float32, standardised with the TRAIN
mean and std (one scalar each) -> loaders of ``(x (B, 1, n_mels, n_frames) float32, y (B,) int64)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.catalog import load_dataset
from labkit.data.dataset import TensorDataset
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
from labkit_audio.features import log_mel_spectrogram, mel_filterbank

__all__ = ["AudioClassification", "clips_and_labels"]

log = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "dataset_kwargs": {},  # passed to the dataset's loader (tones: n_per_class, seed, snr_db ...)
    "test_fraction": 0.2,  # used only when the dataset has no test split of its own
    "clip_seconds": 1.0,  # every clip is zero-padded or cut to this length
    "n_fft": 512,
    "hop_length": 192,
    "n_mels": 32,
    "f_min": 0.0,
    "f_max": None,  # None: sample_rate / 2
    "top_db": 80.0,
    "normalize": True,
    "per_class_metrics": True,
}
_FEATURE_CHUNK = 256  # clips per STFT call: bounds the frame buffer (chunk x frames x n_fft floats)


def clips_and_labels(dataset: Any, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(clips (N, length) float32, labels (N,) int64)`` of an audio dataset of ``(samples (n,), label)``.

    Each clip is cut to ``length`` samples or zero-padded at the end.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError(f"AudioClassification: dataset {type(dataset).__name__} is empty")
    clips = np.zeros((n, length), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    read = getattr(dataset, "read", None)  # AudioFolder: skip the transforms
    for i in range(n):
        samples, label = read(i) if callable(read) else dataset[i]
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"AudioClassification: expected mono clips (n,), got item {i} of shape {samples.shape}")
        clips[i, : min(length, len(samples))] = samples[:length]
        labels[i] = int(label)
    return clips, labels


class AudioClassification:
    """Audio classification on a named dataset of ``(samples, label)`` (``audio.tones`` ...).

    Data keys (besides ``name``, ``data_dir``, ``batch_size``, ``eval_batch_size``, ``val_fraction``,
    ``num_workers``, ``split_seed``, ``limit``): ``dataset_kwargs``, ``test_fraction``, ``clip_seconds``,
    ``n_fft``, ``hop_length``, ``n_mels``, ``f_min``, ``f_max``, ``top_db``, ``normalize``,
    ``per_class_metrics``. The sample rate is the dataset's (``dataset.sample_rate``).
    Metrics: ``loss``, ``accuracy``, ``macro_f1``, ``f1/<class>``.
    Model kwargs: ``in_channels`` (1), ``num_classes``, ``n_mels``, ``n_frames``.
    Artifacts: ``figures/confusion_matrix_<split>.png``, ``figures/examples_<split>.png`` (a log-mel
    spectrogram of each class with its predicted label), ``figures/misclassified_<split>.png``.
    """

    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        self.options = read_options("AudioClassification", data_cfg, _DEFAULTS)
        self._check_options()
        self.generator = generator
        self.loaders: Loaders | None = None
        self.classes: list[str] = []
        self.sample_rate = 0
        self.mean, self.std = 0.0, 1.0

    def _check_options(self) -> None:
        o = self.options
        for key in ("n_fft", "hop_length", "n_mels"):
            value = o[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AudioClassification: expected data.{key} as an int >= 1, got {value!r}")
        seconds = o["clip_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"AudioClassification: expected data.clip_seconds > 0, got {seconds!r}")
        if not isinstance(o["dataset_kwargs"], Mapping):
            raise ValueError(
                f"AudioClassification: expected data.dataset_kwargs as a mapping, got {o['dataset_kwargs']!r}"
            )

    # ---- data ---------------------------------------------------------------------------

    def features(self, clips: np.ndarray) -> np.ndarray:
        """Log-mel spectrograms ``(N, 1, n_mels, n_frames)`` float32 of ``clips (N, L)`` (not standardised)."""
        o = self.options
        fb = mel_filterbank(o["n_mels"], o["n_fft"], self.sample_rate, o["f_min"], o["f_max"])
        parts = [
            log_mel_spectrogram(
                clips[i : i + _FEATURE_CHUNK],
                self.sample_rate,
                o["n_fft"],
                o["hop_length"],
                o["n_mels"],
                top_db=o["top_db"],
                filterbank=fb,
            )
            for i in range(0, len(clips), _FEATURE_CHUNK)
        ]
        return np.concatenate(parts).astype(np.float32)[:, None]  # (N, 1, M, T)

    def _splits(self) -> dict[str, tuple[np.ndarray, ...]]:
        o = self.options
        parts = named_splits(load_dataset(o["name"], o["data_dir"], **o["dataset_kwargs"]))
        train = parts["train"]
        self.classes = [str(c) for c in getattr(train, "classes", [])]
        rate = getattr(train, "sample_rate", None)
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
            raise ValueError(
                f"AudioClassification: expected dataset {o['name']!r} to have an int sample_rate, got {rate!r}"
            )
        self.sample_rate = int(rate)
        for split, ds in parts.items():
            other = getattr(ds, "sample_rate", rate) if ds is not None else rate
            if other != rate:
                raise ValueError(f"AudioClassification: expected every split at {rate} Hz, got {other} Hz in {split}")
        length = round(o["clip_seconds"] * self.sample_rate)
        if length <= o["n_fft"] // 2:
            raise ValueError(
                f"AudioClassification: expected data.clip_seconds to give more than n_fft // 2 = {o['n_fft'] // 2} "
                f"samples, got {length}"
            )
        arrays = {k: clips_and_labels(ds, length) for k, ds in parts.items() if ds is not None}
        return split_train_val_test(arrays, o["test_fraction"], o["val_fraction"], o["split_seed"], o["limit"])

    def setup(self, generator: Generator | None = None) -> Loaders:
        """Read and split the clips, compute their log-mel features, fit the standardisation on train."""
        generator = generator if generator is not None else self.generator
        o = self.options
        arrays = self._splits()
        features = {k: self.features(clips) for k, (clips, _) in arrays.items()}
        n_classes, self.classes = count_classes((labels for _, labels in arrays.values()), self.classes)
        if o["normalize"]:
            self.mean = float(features["train"].mean())
            self.std = max(float(features["train"].std()), 1e-6)

        def dataset(split: str) -> TensorDataset:
            x = ((features[split] - self.mean) / self.std).astype(np.float32)
            return TensorDataset(x, arrays[split][1])

        train = make_loader(dataset("train"), o["batch_size"], True, generator, o["num_workers"])
        evals = {
            k: make_loader(dataset(k), o["eval_batch_size"], False, generator, o["num_workers"])
            for k in ("val", "test")
            if k in arrays
        }
        n_mels, n_frames = features["train"].shape[2:]
        info = {
            "num_classes": n_classes,
            "classes": self.classes,
            "sample_rate": self.sample_rate,
            "n_mels": int(n_mels),
            "n_frames": int(n_frames),
            "input_shape": [1, int(n_mels), int(n_frames)],
            "sizes": {k: len(v[1]) for k, v in arrays.items()},
        }
        log.info("AudioClassification: %s, splits %s, %d classes, %d Hz, log-mel %dx%d", o["name"], info["sizes"],
                 n_classes, self.sample_rate, n_mels, n_frames)  # fmt: skip
        self.loaders = Loaders(train=train, val=evals.get("val"), test=evals.get("test"), info=info)
        return self.loaders

    def model_kwargs(self) -> dict[str, Any]:
        info = (self.loaders if self.loaders is not None else self.setup()).info
        return {"in_channels": 1, "num_classes": info["num_classes"], "n_mels": info["n_mels"],
                "n_frames": info["n_frames"]}  # fmt: skip

    def predict_spec(self) -> dict[str, Any]:
        """A served model (MLflow pyfunc) reads standardised log-mels ``(1, n_mels, n_frames)`` float32:
        ``(task.features(clips) - task.mean) / task.std`` -> class ids."""
        info = (self.loaders if self.loaders is not None else self.setup()).info
        return {"output": "class_ids", "input_shape": list(info["input_shape"]), "input_dtype": "float32"}

    # ---- loss, metrics, figures ---------------------------------------------------------------

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        return classification_loss(model, batch)

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        return evaluate_classifier(model, loader, self.classes, self.options["per_class_metrics"])

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log the confusion matrix, one example spectrogram per class and up to 10 misclassified ones."""
        from labkit_audio.plots import spectrogram_grid

        loader = getattr(loaders, split, None)
        if loader is None:
            return {}
        meter = ClassificationMeter(len(self.classes))
        first: dict[int, tuple[np.ndarray, int]] = {}  # class -> (log-mel, predicted)
        wrong: list[tuple[np.ndarray, int, int]] = []
        for (x,), y, logits in predict_batches(model, loader):
            scores, labels = logits.numpy(), y.numpy()
            meter.update(scores, labels)
            predicted = scores.argmax(axis=1)
            spectra = x.numpy()[:, 0] * self.std + self.mean  # (B, M, T) in dB
            for i, (label, guess) in enumerate(zip(labels.tolist(), predicted.tolist())):
                if label not in first:
                    first[label] = (spectra[i], guess)
                if label != guess and len(wrong) < 10:
                    wrong.append((spectra[i], label, guess))
        name = self.options["name"]
        hop_s = self.options["hop_length"] / self.sample_rate
        metrics = log_confusion_matrix(tracker, meter, self.classes, name, split)
        order = sorted(first)
        examples = spectrogram_grid(
            np.array([first[c][0] for c in order]), order, [first[c][1] for c in order], self.classes,
            title=f"{name} {split}: one example per class", hop_seconds=hop_s,
        )  # fmt: skip
        tracker.log_figure(examples, f"figures/examples_{split}.png")
        misses = spectrogram_grid(
            np.array([w[0] for w in wrong]), [w[1] for w in wrong], [w[2] for w in wrong], self.classes,
            title=f"{name} {split}: misclassified ({len(wrong)} shown)", hop_seconds=hop_s,
        )  # fmt: skip
        tracker.log_figure(misses, f"figures/misclassified_{split}.png")
        return metrics
