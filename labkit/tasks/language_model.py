"""``LanguageModel``: character-level language modelling with cross-entropy, perplexity, bits per character.

Data flow: ``load_dataset(data.name, seq_len=data.seq_len, **data.dataset_kwargs)`` gives
``train``/``valid``/``test`` ``LanguageModelCorpus`` splits cut by POSITION in the text
(``python_stdlib``, ``shakespeare``), sharing a character vocabulary built on the training
text. Items are non-overlapping windows ``(input (T,), target (T,))``, the target shifted
by one character; training shuffles the windows, evaluation walks them in order.

The model is called as ``model(ids (B, T)) -> (logits (B, T, V), state)`` and must have
``generate(prefix_ids, n, temperature, generator)`` (``labkit.models.CharLSTMLM``). Every
evaluation of the validation split also draws a text sample at ``data.temperature``; the
samples are logged as ``samples/epoch_NNN.txt`` by ``on_epoch_end`` (when the training loop
calls that hook) or else by ``artifacts`` at the end of the run, together with final
samples at several temperatures (``samples/final.txt``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.catalog import load_dataset
from labkit.data.dataset import Subset
from labkit.nn.module import Module
from labkit.tasks.base import Loaders
from labkit.tasks.common import eval_batches, make_loader, model_device, named_splits, read_options, to_device
from labkit.tasks.metrics import bits_per_char, perplexity

__all__ = ["LanguageModel"]

log = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "dataset_kwargs": {},
    "seq_len": 128,
    "max_eval_windows": None,  # evaluate on at most this many windows of val/test (quick runs)
    "sample_prefix": "\n",
    "sample_chars": 300,
    "temperature": 0.8,
    "sample_seed": 0,
}


def unigram_entropy_bits(ids: np.ndarray) -> float:
    """Entropy in bits of the symbol frequencies of ``ids`` (a 1-D int array): ``-sum p log2 p``."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64).ravel())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _logits(output: Any) -> Tensor:
    """A language model's logits: ``model(ids)`` may return the logits or ``(logits, state)``."""
    return output[0] if isinstance(output, tuple) else output


class LanguageModel:
    """Next-character prediction on a named corpus.

    Data keys (besides the common ones; ``val_fraction`` is unused: the corpus splits by
    position): ``dataset_kwargs``, ``seq_len``, ``max_eval_windows``, ``sample_prefix``,
    ``sample_chars``, ``temperature``, ``sample_seed``. Metrics: ``loss`` (cross-entropy in
    nats per character), ``perplexity``, ``bits_per_char``, and for the validation and test
    splits ``unigram_bits_per_char`` (the entropy of the split's own character frequencies: what
    a model that ignores context cannot beat) and ``bpc_over_unigram`` (the model's bits per
    character over it; 0.5 means half the unigram entropy). Model kwargs: ``vocab_size``.
    """

    monitor = "loss"
    monitor_mode = "min"

    def __init__(self, data_cfg: Mapping[str, Any] | Any = None, generator: Generator | None = None) -> None:
        self.options = read_options("LanguageModel", data_cfg, _DEFAULTS)
        self.generator = generator
        self.corpus: dict[str, Any] = {}
        self.loaders: Loaders | None = None
        self.evaluations = 0  # of the validation split: numbers the samples
        self.pending: list[tuple[int, str]] = []  # samples not logged yet
        self.unigram_bits: dict[str, float] = {}  # entropy of each split's character frequencies

    def setup(self, generator: Generator | None = None) -> Loaders:
        generator = generator if generator is not None else self.generator
        o = self.options
        loaded = load_dataset(o["name"], o["data_dir"], seq_len=o["seq_len"], **o["dataset_kwargs"])
        self.corpus = {k: v for k, v in named_splits(loaded).items() if v is not None}
        train = self.corpus["train"]
        if train.vocab is None:
            raise ValueError(f"LanguageModel: expected a character corpus with a vocab, got {type(train).__name__}")
        train_windows = train if o["limit"] is None else Subset(train, range(min(o["limit"], len(train))))
        loader = make_loader(train_windows, o["batch_size"], True, generator, o["num_workers"], drop_last=True)
        evals = {}
        for key in ("val", "test"):
            if key in self.corpus:
                windows = self.corpus[key]
                if o["max_eval_windows"] is not None:
                    windows = Subset(windows, range(min(o["max_eval_windows"], len(windows))))
                evals[key] = make_loader(windows, o["eval_batch_size"], False, generator, o["num_workers"])
        self.unigram_bits = {k: unigram_entropy_bits(v.ids) for k, v in self.corpus.items()}
        info = {
            "vocab_size": len(train.vocab),
            "unigram_bits_per_char": self.unigram_bits,
            "characters": {k: int(v.n_chars) for k, v in self.corpus.items()},
            "windows": {"train": len(train_windows), **{k: len(v.dataset) for k, v in evals.items()}},
        }
        log.info("LanguageModel: %s, %s characters, vocabulary %d", o["name"], info["characters"], info["vocab_size"])
        self.loaders = Loaders(train=loader, val=evals.get("val"), test=evals.get("test"), info=info)
        return self.loaders

    def model_kwargs(self) -> dict[str, Any]:
        if self.loaders is None:
            self.setup()
        return {"vocab_size": self.loaders.info["vocab_size"]}

    def predict_spec(self) -> dict[str, Any]:
        """How a served model (MLflow pyfunc) reads its input: ``(N, T)`` int64 character ids
        (the run's ``vocab.json``) -> ``(N, T, V)`` next-character logits."""
        return {"output": "logits", "input_dtype": "int64"}

    # ---- loss, metrics, samples ------------------------------------------------------------------

    def training_loss(self, model: Module, batch: Any) -> tuple[Tensor, int]:
        x, y = to_device(batch, model_device(model))
        logits = _logits(model(x))  # (B, T, V)
        b, t, v = logits.shape
        return F.cross_entropy(logits.reshape(b * t, v), y.reshape(b * t)), b * t

    def evaluate(self, model: Module, loader: Iterable[Any]) -> dict[str, float]:
        total, count = 0.0, 0
        for x, y in eval_batches(model, loader):
            logits = _logits(model(x))
            b, t, v = logits.shape
            total += float(F.cross_entropy(logits.reshape(b * t, v), y.reshape(b * t), reduction="sum").item())
            count += b * t
        if count == 0:
            raise ValueError("LanguageModel.evaluate: expected at least one batch, got an empty loader")
        if self.loaders is not None and loader is self.loaders.val and hasattr(model, "generate"):
            self.evaluations += 1
            seed = self.options["sample_seed"] + self.evaluations
            self.pending.append((self.evaluations, self.sample(model, self.options["temperature"], seed=seed)))
        nll = total / count
        metrics = {"loss": nll, "perplexity": perplexity(nll), "bits_per_char": bits_per_char(nll)}
        split = self._split_of(loader)
        if split in self.unigram_bits and self.unigram_bits[split] > 0:
            metrics["unigram_bits_per_char"] = self.unigram_bits[split]
            metrics["bpc_over_unigram"] = metrics["bits_per_char"] / self.unigram_bits[split]
        return metrics

    def _split_of(self, loader: Iterable[Any]) -> str | None:
        if self.loaders is None:
            return None
        return "val" if loader is self.loaders.val else "test" if loader is self.loaders.test else None

    def sample(self, model: Module, temperature: float, n: int | None = None, seed: int | None = None) -> str:
        """``data.sample_prefix`` followed by ``n`` generated characters (the model's ``generate``)."""
        if not hasattr(model, "generate"):
            raise TypeError(
                f"LanguageModel: expected a model with generate(prefix_ids, n, temperature, generator), "
                f"got {type(model).__name__}"
            )
        o = self.options
        vocab = self.corpus["train"].vocab
        prefix = o["sample_prefix"] or "\n"
        prefix_ids = np.array(vocab.encode(list(prefix)), dtype=np.int64)
        gen = Generator(o["sample_seed"] if seed is None else seed)  # its own stream: sampling never shifts training
        ids = model.generate(prefix_ids, o["sample_chars"] if n is None else n, temperature, gen)
        return prefix + self.corpus["train"].decode(ids)

    def _log_pending(self, tracker: Any) -> None:
        for number, text in self.pending:
            tracker.log_text(text, f"samples/epoch_{number:03d}.txt")
        self.pending.clear()

    def on_epoch_end(self, model: Module, tracker: Any, epoch: int) -> None:
        """Log the samples drawn by this epoch's validation (``samples/epoch_NNN.txt``); without a
        validation split, draw one now. Called by the training loop after each epoch."""
        if not self.pending and (self.loaders is None or self.loaders.val is None):
            seed = self.options["sample_seed"] + int(epoch)
            self.pending.append((int(epoch), self.sample(model, self.options["temperature"], seed=seed)))
        self._log_pending(tracker)

    def artifacts(self, model: Module, loaders: Loaders, tracker: Any, split: str = "test") -> dict[str, float]:
        """Log the samples not logged yet (``samples/epoch_NNN.txt``), ``samples/final.txt`` (one
        sample at each temperature 0.5, 0.8, 1.0) and the character table ``vocab.json``."""
        self._log_pending(tracker)
        tracker.log_text(json.dumps(self.corpus["train"].vocab.to_dict()), "vocab.json")
        parts = []
        for temperature in (0.5, 0.8, 1.0):
            parts.append(f"===== temperature {temperature} =====\n{self.sample(model, temperature)}\n")
        tracker.log_text("\n".join(parts), "samples/final.txt")
        return {}
