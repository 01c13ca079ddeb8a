"""``TextClassification``: labelled texts -> token ids -> a classifier; accuracy, macro F1, confusion matrix.

Data flow: ``load_dataset(data.name, **data.dataset_kwargs)`` (e.g. ``fortunes``, ``bbc_news``) ->
train/val/test (the dataset's own splits, else stratified fractions drawn with
``data.split_seed``) -> optionally only the ``data.top_classes`` largest classes -> with
``data.cv_folds``, one cross-validation fold of train + val as train/val (test unchanged) -> a
tokenizer (``word``: the regex ``data.token_pattern``, e.g. one that keeps line breaks as tokens;
or ``char``) and a ``Vocab`` built on the TRAIN texts only (``<pad>`` is
id 0, unknown tokens map to ``<unk>``) -> each text as at most ``data.max_len`` ids.
Batches are ``(ids (B, T) int64 right-padded with 0, lengths (B,) int64, labels (B,) int64)``
and every text model is called as ``model(ids, lengths)``. With ``data.bucket`` the training
batches group texts of similar length (``BucketBatchSampler``), which cuts padding for the
LSTM and transformer; the bag-of-embeddings model does not need it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.catalog import load_dataset
from labkit.data.collate import pad_collate
from labkit.data.sampler import BucketBatchSampler, seed_from
from labkit.data.text.datasets import split_indices as stratified_split
from labkit.data.text.tokenizers import CharTokenizer, WordTokenizer
from labkit.data.text.vocab import Vocab
from labkit.nn.module import Module
from labkit.tasks.base import Loaders
from labkit.tasks.classification import (
    classification_loss,
    cross_validation_fold,
    evaluate_classifier,
    log_confusion_matrix,
    predict_batches,
)
from labkit.tasks.common import make_loader, named_splits, read_options
from labkit.tasks.metrics import ClassificationMeter

__all__ = ["TextClassification", "texts_and_labels"]

log = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "dataset_kwargs": {},  # passed to the catalog loader
    "test_fraction": 0.2,  # only when the dataset has no test split
    "top_classes": None,  # keep the k classes with the most training texts
    "tokenizer": "word",  # "word" | "char"
    "lower": True,
    "token_pattern": None,  # the word tokenizer's regex; None: words or single symbols (r"\w+|[^\w\s]")
    "min_freq": 2,
    "max_vocab": 30_000,
    "max_len": 256,
    "bucket": True,
    "per_class_metrics": True,
    "cv_folds": None,  # k: cross-validation over train + val (test untouched); fold cv_fold is val
    "cv_fold": 0,
}


def texts_and_labels(dataset: Any) -> tuple[list[str], np.ndarray, list[str]]:
    """``(texts, labels (N,) int64, classes)`` of a labelled text dataset (items ``(text, label)``)."""
    texts = getattr(dataset, "texts", None)
    targets = getattr(dataset, "targets", None)
    if texts is not None and targets is not None and getattr(dataset, "transform", None) is None:
        texts, labels = list(texts), np.asarray(targets, dtype=np.int64)
    else:
        items = [dataset[i] for i in range(len(dataset))]
        texts, labels = [str(t) for t, _ in items], np.array([int(y) for _, y in items], dtype=np.int64)
    classes = [str(c) for c in getattr(dataset, "classes", [])] or [str(i) for i in range(int(labels.max()) + 1)]
    return texts, labels, classes


class _EncodedTexts:
    """Map-style ``(ids (L,) int64, label)`` items."""

    def __init__(self, ids: list[np.ndarray], labels: np.ndarray) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.ids[index], int(self.labels[index])


class _TextCollate:
    """``pad_collate`` -> ``(ids (B, T), lengths (B,), labels (B,))`` (the mask is implied by lengths)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[Any]) -> tuple[Tensor, Tensor, Tensor]:
        ids, lengths, _mask, labels = pad_collate(items, padding_value=self.pad_id)
        return ids, lengths, labels


class TextClassification:
    """Text classification on a named labelled-text dataset.

    Data keys (besides the common ones): ``dataset_kwargs``, ``test_fraction``, ``top_classes``,
    ``tokenizer``, ``lower``, ``token_pattern``, ``min_freq``, ``max_vocab``, ``max_len``, ``bucket``,
    ``per_class_metrics``, ``cv_folds``/``cv_fold`` (k-fold cross-validation: train and val are pooled,
    fold ``cv_fold`` of ``cv_folds`` stratified folds drawn with ``split_seed`` becomes val, the rest
    train; test is the same as without it). Metrics: ``loss``, ``accuracy``, ``macro_f1``, ``f1/<class>``.
    Model kwargs: ``vocab_size``, ``num_classes``, ``padding_idx``.
    """

    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        self.options = read_options("TextClassification", data_cfg, _DEFAULTS)
        o = self.options
        if o["tokenizer"] not in ("word", "char"):
            raise ValueError(f"TextClassification: expected data.tokenizer 'word' or 'char', got {o['tokenizer']!r}")
        if o["tokenizer"] == "char":
            if o["token_pattern"] is not None:
                raise ValueError(
                    "TextClassification: expected data.token_pattern null with data.tokenizer 'char' (a pattern "
                    f"splits words), got {o['token_pattern']!r}"
                )
            self.tokenizer: WordTokenizer | CharTokenizer = CharTokenizer()
        elif o["token_pattern"] is None:
            self.tokenizer = WordTokenizer(lower=o["lower"])
        else:
            if not isinstance(o["token_pattern"], str):
                raise TypeError(
                    f"TextClassification: expected data.token_pattern as a regex string, got {o['token_pattern']!r}"
                )
            try:
                self.tokenizer = WordTokenizer(pattern=o["token_pattern"], lower=o["lower"])
            except ValueError as exc:
                raise ValueError(f"TextClassification: data.token_pattern: {exc}") from None
        self.generator = generator
        self.vocab: Vocab | None = None
        self.classes: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self.loaders: Loaders | None = None
        self._split_cache: dict[str, tuple[list[str], np.ndarray]] | None = None

    # ---- data ---------------------------------------------------------------------------

    def split_texts(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """``{"train"|"val"|"test": (texts, labels (N,) int64)}``: the raw texts of each split, as ``setup()`` uses them.

        The dataset's own splits, else stratified ``val_fraction``/``test_fraction`` drawn with
        ``split_seed``; then only the ``top_classes`` largest classes (labels renumbered
        ``0..k-1`` in ``self.classes`` order), with ``cv_folds`` fold ``cv_fold`` of train + val as
        val and the rest as train, and the first ``limit`` training texts. Texts are in
        the split's order (``self.texts`` after ``setup()`` holds val/test sorted by length).
        Loaded once and cached; baselines use this to score other models on the same split.
        """
        if self._split_cache is None:
            self._split_cache = self._load_splits()
        return {k: (list(texts), labels.copy()) for k, (texts, labels) in self._split_cache.items()}

    def _load_splits(self) -> dict[str, tuple[list[str], np.ndarray]]:
        self.classes = []
        o = self.options
        parts = named_splits(load_dataset(o["name"], o["data_dir"], **o["dataset_kwargs"]))
        data = {}
        for key, ds in parts.items():
            if ds is not None:
                texts, labels, classes = texts_and_labels(ds)
                data[key] = (texts, labels)
                self.classes = self.classes or classes
        missing = [k for k in ("val", "test") if k not in data]
        if missing:
            texts, labels = data["train"]
            val = o["val_fraction"] if "val" in missing else 0.0
            test = o["test_fraction"] if "test" in missing else 0.0
            idx = stratified_split(labels, val_frac=val, test_frac=test, seed=o["split_seed"])
            for key, name in (("train", "train"), ("val", "valid"), ("test", "test")):
                if key == "train" or key in missing:
                    data[key] = ([texts[i] for i in idx[name]], labels[idx[name]])
        if o["top_classes"] is not None:
            counts = Counter(data["train"][1].tolist())
            keep = sorted(sorted(counts, key=lambda c: (-counts[c], c))[: int(o["top_classes"])])
            remap = {old: new for new, old in enumerate(keep)}
            self.classes = [self.classes[c] for c in keep]
            for key, (texts, labels) in data.items():
                rows = [i for i, y in enumerate(labels.tolist()) if y in remap]
                data[key] = ([texts[i] for i in rows], np.array([remap[int(labels[i])] for i in rows], dtype=np.int64))
        if o["cv_folds"] is not None:  # k-fold over train + val: fold cv_fold is held out, test is not touched
            texts, labels = data["train"][0] + data["val"][0], np.concatenate([data["train"][1], data["val"][1]])
            try:
                train, val = cross_validation_fold(labels, o["cv_folds"], o["cv_fold"], o["split_seed"])
            except ValueError as exc:
                raise ValueError(f"TextClassification: data.cv_folds / data.cv_fold: {exc}") from None
            data["train"] = ([texts[i] for i in train], labels[train])
            data["val"] = ([texts[i] for i in val], labels[val])
        if o["limit"] is not None:
            texts, labels = data["train"]
            data["train"] = texts[: o["limit"]], labels[: o["limit"]]
        return data

    def encode(self, text: str) -> np.ndarray:
        """Token ids of one text, truncated to ``data.max_len`` (an empty text becomes ``[<unk>]``)."""
        if self.vocab is None:
            raise ValueError("TextClassification.encode: expected setup() to have built the vocabulary first, got none")
        ids = self.vocab.encode(self.tokenizer(text)[: self.options["max_len"]])
        return np.asarray(ids or [self.vocab.unk_id], dtype=np.int64)

    def setup(self, generator: Generator | None = None) -> Loaders:
        generator = generator if generator is not None else self.generator
        o = self.options
        data = self.split_texts()
        train_tokens = (self.tokenizer(t) for t in data["train"][0])
        self.vocab = Vocab.build(train_tokens, o["min_freq"], o["max_vocab"], specials=("<pad>", "<unk>"))
        pad_id = self.vocab.pad_id
        collate = _TextCollate(pad_id)
        self.texts, datasets = {}, {}
        for key, (texts, labels) in data.items():
            ids = [self.encode(t) for t in texts]
            if key != "train":  # evaluation batches in length order waste less on padding
                order = np.argsort([len(x) for x in ids], kind="stable")
                ids, texts, labels = [ids[i] for i in order], [texts[i] for i in order], labels[order]
            self.texts[key], datasets[key] = texts, _EncodedTexts(ids, labels)
        train = datasets["train"]
        if o["bucket"]:
            lengths = np.array([len(x) for x in train.ids], dtype=np.int64)
            sampler = BucketBatchSampler(lengths, o["batch_size"], seed=seed_from(generator))
            train_loader = make_loader(train, 0, False, generator, o["num_workers"], collate, batch_sampler=sampler)
        else:
            train_loader = make_loader(train, o["batch_size"], True, generator, o["num_workers"], collate)
        evals = {
            k: make_loader(datasets[k], o["eval_batch_size"], False, generator, o["num_workers"], collate)
            for k in ("val", "test")
            if k in datasets
        }
        info = {
            "num_classes": len(self.classes),
            "classes": self.classes,
            "vocab_size": len(self.vocab),
            "sizes": {k: len(v) for k, v in datasets.items()},
            "mean_length": float(np.mean([len(x) for x in train.ids])),
        }
        log.info("TextClassification: %s, splits %s, %d classes, vocabulary %d", o["name"], info["sizes"],
                 len(self.classes), len(self.vocab))  # fmt: skip
        self.loaders = Loaders(train=train_loader, val=evals.get("val"), test=evals.get("test"), info=info)
        return self.loaders

    def model_kwargs(self) -> dict[str, Any]:
        if self.loaders is None:
            self.setup()
        return {"vocab_size": len(self.vocab), "num_classes": len(self.classes), "padding_idx": self.vocab.pad_id}

    def prepare_model(self, model: Module) -> None:
        """Hand the encoded training texts to a model that keeps statistics of them (a bag's
        ``fit_term_weights``); other models are left as they are."""
        fit = getattr(model, "fit_term_weights", None)
        if callable(fit):
            if self.loaders is None:
                self.setup()
            train = self.loaders.train.dataset
            fit(train.ids, train.labels)

    def predict_spec(self) -> dict[str, Any]:
        """How a served model (MLflow pyfunc) reads its input: rows of token ids (``task.encode``),
        right-padded with 0; the models infer each row's length from the padding -> class ids."""
        return {"output": "class_ids", "input_dtype": "int64"}

    # ---- loss, metrics, figures ---------------------------------------------------------------

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        return classification_loss(model, batch)  # model(ids, lengths) against labels

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        return evaluate_classifier(model, loader, self.classes, self.options["per_class_metrics"])

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log ``figures/confusion_matrix_<split>.png``, ``misclassified_<split>.txt`` (up to 20 texts)
        and ``vocab.json`` (the table a served model's inputs must be encoded with)."""
        if self.vocab is not None:
            tracker.log_text(
                json.dumps({"tokenizer": self.tokenizer.to_dict(), "vocab": self.vocab.to_dict()}), "vocab.json"
            )
        loader = getattr(loaders, split, None)
        if loader is None:
            return {}
        meter = ClassificationMeter(len(self.classes))
        truth, predicted = [], []
        for _, labels, logits in predict_batches(model, loader):
            meter.update(logits.numpy(), labels.numpy())
            truth.extend(labels.numpy().tolist())
            predicted.extend(logits.numpy().argmax(axis=1).tolist())
        metrics = log_confusion_matrix(tracker, meter, self.classes, self.options["name"], split)
        texts = self.texts.get(split, [])
        if len(texts) == len(truth):  # the eval loader keeps the split's order
            wrong = [i for i, (t, p) in enumerate(zip(truth, predicted)) if t != p][:20]
            lines = [
                f"[{self.classes[truth[i]]} -> {self.classes[predicted[i]]}] {' '.join(texts[i].split())[:300]}"
                for i in wrong
            ]
            tracker.log_text("\n".join(lines) + "\n", f"misclassified_{split}.txt")
        return metrics
