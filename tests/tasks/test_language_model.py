"""LanguageModel on a tiny corpus: windows, cross-entropy/perplexity/bpc by hand, samples as text artifacts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.data.text.corpus import LanguageModelCorpus, char_vocab
from labkit.models import CharLSTMLM
from labkit.tasks.language_model import LanguageModel
from labkit.tracking import MemoryTracker

TEXT = "def add(a, b):\n    return a + b\n\n" * 40


@pytest.fixture
def corpus(register):
    def load(seq_len: int = 16):
        a, b = int(len(TEXT) * 0.8), int(len(TEXT) * 0.9)
        vocab = char_vocab(TEXT[:a])
        parts = {"train": TEXT[:a], "valid": TEXT[a:b] + "é", "test": TEXT[b:]}  # é: unseen in train
        return {k: LanguageModelCorpus(v, seq_len=seq_len, vocab=vocab) for k, v in parts.items()}

    return register("r3_tiny_corpus", load)


class Uniform(nn.Module):
    """Equal logits for every character: loss ln V, perplexity V, bits per char log2 V."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.bias = nn.Parameter(np.zeros(vocab_size, np.float32))

    def forward(self, ids: labkit.Tensor) -> tuple[labkit.Tensor, None]:
        zeros = labkit.zeros(*ids.shape, self.vocab_size)
        return zeros + self.bias, None


def make(name: str, **data) -> LanguageModel:
    return LanguageModel({"name": name, "batch_size": 4, "seq_len": 16, **data}, labkit.Generator(0))


def test_windows_and_sizes(corpus):
    task = make(corpus)
    loaders = task.setup()
    vocab_size = task.model_kwargs()["vocab_size"]
    assert vocab_size == len(set(TEXT)) + 1  # characters + <unk>
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 16) and x.dtype == np.int64
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])  # targets: inputs shifted by one
    assert all(b[0].shape[0] == 4 for b in loaders.train)  # drop_last keeps batches full
    assert loaders.info["windows"]["train"] == (int(len(TEXT) * 0.8) - 1) // 16


def test_uniform_model_scores_by_hand(corpus):
    task = make(corpus)
    loaders = task.setup()
    v = task.model_kwargs()["vocab_size"]
    out = task.evaluate(Uniform(v), loaders.val)
    assert out["loss"] == pytest.approx(math.log(v), rel=1e-5)
    assert out["perplexity"] == pytest.approx(v, rel=1e-4)
    assert out["bits_per_char"] == pytest.approx(math.log2(v), rel=1e-5)
    # the unigram entropy of the validation text, by hand from its characters
    text = TEXT[int(len(TEXT) * 0.8) : int(len(TEXT) * 0.9)] + "é"
    freqs = [text.count(c) / len(text) for c in set(text)]
    entropy = -sum(p * math.log2(p) for p in freqs)
    assert out["unigram_bits_per_char"] == pytest.approx(entropy, rel=1e-9)
    assert out["bpc_over_unigram"] == pytest.approx(math.log2(v) / entropy, rel=1e-5)
    assert out["bpc_over_unigram"] > 1  # uniform over the vocabulary is worse than the unigram model
    loss, count = task.training_loss(Uniform(v), next(iter(loaders.train)))
    assert count == 4 * 16 and loss.item() == pytest.approx(math.log(v), rel=1e-5)


def test_evaluate_weights_every_character(corpus):
    task = make(corpus, eval_batch_size=3)
    loaders = task.setup()
    model = CharLSTMLM(task.model_kwargs()["vocab_size"], embed_dim=8, hidden_size=8, num_layers=1)
    total, count = 0.0, 0
    for x, y in loaders.val:
        logits, _ = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numpy().size
    assert task.evaluate(model, loaders.val)["loss"] == pytest.approx(total / count, rel=1e-5)


def test_each_validation_draws_a_sample_logged_as_text(corpus):
    task = make(corpus, sample_chars=40, sample_prefix="def ")
    loaders = task.setup()
    model = CharLSTMLM(task.model_kwargs()["vocab_size"], embed_dim=8, hidden_size=16, num_layers=1)
    tracker = MemoryTracker()
    task.evaluate(model, loaders.val)
    task.evaluate(model, loaders.test)  # only validation draws samples
    task.on_epoch_end(model, tracker, epoch=1)
    assert list(tracker.artifacts) == ["samples/epoch_001.txt"]
    sample = tracker.artifacts["samples/epoch_001.txt"]
    assert sample.startswith("def ") and len(sample) >= 4 + 40  # a character may decode to '<unk>'
    task.evaluate(model, loaders.val)  # a sample the loop did not log (no on_epoch_end): artifacts logs it
    assert task.artifacts(model, loaders, tracker) == {}
    assert "samples/epoch_002.txt" in tracker.artifacts
    assert tracker.artifacts["samples/final.txt"].count("===== temperature") == 3
    assert "vocab.json" in tracker.artifacts
    again = make(corpus, sample_chars=40, sample_prefix="def ")
    again.setup()
    again.evaluate(model, again.loaders.val)
    assert again.pending == [(1, sample)]  # seeded: independent of the training stream


def test_sample_at_epoch_end_without_validation(register):
    def load(seq_len: int = 16):
        return {
            "train": LanguageModelCorpus(TEXT, seq_len=seq_len),
            "test": LanguageModelCorpus(TEXT[:200], seq_len=seq_len),
        }

    task = make(register("r3_no_val_corpus", load), sample_chars=10)
    loaders = task.setup()
    assert loaders.val is None
    tracker = MemoryTracker()
    task.on_epoch_end(CharLSTMLM(task.model_kwargs()["vocab_size"], 8, 8, 1), tracker, epoch=4)
    assert list(tracker.artifacts) == ["samples/epoch_004.txt"]


def test_model_without_generate_is_refused(corpus):
    task = make(corpus)
    task.setup()
    with pytest.raises(TypeError, match=r"expected a model with generate\(prefix_ids, n, temperature, generator\)"):
        task.artifacts(Uniform(5), task.loaders, MemoryTracker())


def test_real_python_stdlib_corpus_loads():
    task = LanguageModel({"name": "python_stdlib", "seq_len": 64, "limit": 10, "max_eval_windows": 5})
    loaders = task.setup()
    assert loaders.info["windows"] == {"train": 10, "val": 5, "test": 5}
    assert task.model_kwargs()["vocab_size"] > 90  # printable ASCII and more
