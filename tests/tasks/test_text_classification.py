"""TextClassification on tiny fortune files: vocabulary from train only, padded batches, metrics, artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.data.text.datasets import FortuneFile, make_splits
from labkit.data.text.vocab import Vocab
from labkit.models import BagOfEmbeddings, TextLSTM
from labkit.tasks.metrics import confusion_matrix, macro_f1
from labkit.tasks.text_classification import TextClassification
from labkit.tracking import MemoryTracker

WORDS = {
    "animals": ["cat dog", "horse cow cat", "dog bird", "fish cat dog bird"],
    "food": ["bread cheese", "apple pie bread", "cheese wine", "soup bread apple pie"],
    "weather": ["rain wind", "snow rain", "sun wind snow", "storm rain"],
}


@pytest.fixture
def fortunes(tmp_path, register):
    for category, texts in WORDS.items():
        entries = [texts[i % len(texts)] + f" q{category}{i}" for i in range(20)]  # each q-word appears once
        (tmp_path / category).write_text("\n%\n".join(entries) + "\n%\n", encoding="utf-8")
    (tmp_path / "tiny").write_text("a\n%\nb\n%\n", encoding="utf-8")  # a small category top_classes drops

    def load(val_frac: float = 0.2, test_frac: float = 0.2, seed: int = 0, **kwargs):
        return make_splits(FortuneFile(tmp_path, **kwargs), val_frac, test_frac, seed)

    return register("r3_tiny_fortunes", load)


class FirstTokenScores(nn.Module):
    """Scores = one-hot of (first token id mod C), minus a constant: predictable metrics."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.unused = nn.Parameter(np.zeros(1, np.float32))

    def forward(self, ids: labkit.Tensor, lengths: labkit.Tensor) -> labkit.Tensor:
        first = ids.numpy()[:, 0] % self.num_classes
        return labkit.tensor(np.eye(self.num_classes, dtype=np.float32)[first] * 2.0) + self.unused


def make(name: str, **data) -> TextClassification:
    return TextClassification({"name": name, "batch_size": 8, "min_freq": 2, **data}, labkit.Generator(0))


def test_setup_vocab_from_train_only_and_batches(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3})
    loaders = task.setup()
    assert task.classes == ["animals", "food", "weather"]
    vocab = task.vocab
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert "cat" in vocab and "rain" in vocab
    assert not any(t.startswith("q") for t in vocab.itos)  # seen once: below min_freq
    assert task.model_kwargs() == {"vocab_size": len(vocab), "num_classes": 3, "padding_idx": 0}
    seen = 0
    for ids, lengths, labels in loaders.train:
        ids, lengths = ids.numpy(), lengths.numpy()
        assert ids.dtype == np.int64 and labels.dtype == np.int64
        assert ids.shape[1] == lengths.max()
        for row, n in zip(ids, lengths):
            assert (row[n:] == 0).all() and (row[:n] != 0).all()
        seen += len(lengths)
    assert seen == loaders.info["sizes"]["train"] == 36  # 60 texts, stratified 60/20/20


def test_vocab_ignores_words_only_in_validation_and_test(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3}, min_freq=1)
    task.setup()
    train_words = {w for text in task.texts["train"] for w in text.split()}
    other_words = {w for k in ("val", "test") for text in task.texts[k] for w in text.split()} - train_words
    assert other_words  # the q-words of held-out texts
    assert not any(w in task.vocab for w in other_words)
    assert task.encode(" ".join(sorted(other_words))).tolist() == [task.vocab.unk_id] * len(other_words)


def test_top_classes_and_max_len(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": None}, top_classes=2, max_len=2)
    loaders = task.setup()
    assert task.classes == ["animals", "food"]  # 20 each; 'weather' ties at 20 and loses on name order
    assert all(ids.shape[1] <= 2 for ids, _, _ in loaders.val)


def test_loss_and_metrics_by_hand(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3})
    loaders = task.setup()
    model = FirstTokenScores(3)
    ids, lengths, labels = next(iter(loaders.train))
    loss, count = task.training_loss(model, (ids, lengths, labels))
    assert count == len(labels)
    assert loss.item() == pytest.approx(F.cross_entropy(model(ids, lengths), labels).item())
    y = np.concatenate([b[2].numpy() for b in loaders.test])
    pred = np.concatenate([b[0].numpy()[:, 0] % 3 for b in loaders.test])
    out = task.evaluate(model, loaders.test)
    assert out["accuracy"] == pytest.approx(np.mean(pred == y))
    assert out["macro_f1"] == pytest.approx(macro_f1(confusion_matrix(y, pred, 3)))
    p_true = np.where(pred == y, np.exp(2) / (np.exp(2) + 2), 1 / (np.exp(2) + 2))
    assert out["loss"] == pytest.approx(-np.log(p_true).mean(), rel=1e-5)
    assert {"f1/animals", "f1/food", "f1/weather"} <= set(out)


def test_artifacts_confusion_matrix_and_misclassified_texts(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3})
    loaders = task.setup()
    tracker = MemoryTracker()
    extra = task.artifacts(FirstTokenScores(3), loaders, tracker, split="test")
    assert set(tracker.artifacts) == {"figures/confusion_matrix_test.png", "misclassified_test.txt", "vocab.json"}
    saved = json.loads(tracker.artifacts["vocab.json"])
    assert saved["tokenizer"]["kind"] == "word"
    assert Vocab.from_dict(saved["vocab"]) == task.vocab
    lines = tracker.artifacts["misclassified_test.txt"].strip().splitlines()
    assert len(lines) == extra["errors"] or len(lines) == 20
    assert all(line.startswith("[") and " -> " in line for line in lines)


@pytest.mark.parametrize("cls", [BagOfEmbeddings, TextLSTM])
def test_real_models_train_one_step(fortunes, cls):
    task = make(fortunes, dataset_kwargs={"top_k": 3})
    loaders = task.setup()
    model = cls(**task.model_kwargs(), generator=labkit.Generator(0))
    loss, _ = task.training_loss(model, next(iter(loaders.train)))
    loss.backward()
    assert np.isfinite(loss.item())
    assert task.evaluate(model, loaders.val)["accuracy"] >= 0.0


def test_bad_tokenizer_is_named():
    with pytest.raises(ValueError, match=r"expected data\.tokenizer 'word' or 'char', got 'bpe'"):
        TextClassification({"name": "fortunes", "tokenizer": "bpe"})


def test_dataset_kwargs_from_an_omegaconf_node(fortunes):
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create({"name": fortunes, "dataset_kwargs": {"top_k": 2}, "min_freq": 1})
    task = TextClassification(node, labkit.Generator(0))
    task.setup()
    assert len(task.classes) == 2
    assert task.predict_spec() == {"output": "class_ids", "input_dtype": "int64"}


def test_split_texts_is_what_setup_trains_and_scores_on(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3}, top_classes=2)
    splits = task.split_texts()
    assert set(splits) == {"train", "val", "test"}
    assert task.classes == ["animals", "food"]
    for texts, labels in splits.values():
        assert labels.dtype == np.int64 and len(texts) == len(labels) and set(labels.tolist()) <= {0, 1}
        assert all(text.split()[-1].startswith(("qanimals", "qfood")) for text in texts)
        assert all(text.split()[-1].startswith("qanimals") == (label == 0) for text, label in zip(texts, labels))
    loaders = task.setup()
    assert {k: len(v[0]) for k, v in splits.items()} == loaders.info["sizes"]
    for key, (texts, labels) in splits.items():
        assert sorted(texts) == sorted(task.texts[key])  # setup sorts val/test by length; same texts
        batches = [b[2].numpy() for b in getattr(loaders, key)]
        assert np.bincount(np.concatenate(batches), minlength=2).tolist() == np.bincount(labels, minlength=2).tolist()
    splits["train"][0].clear()  # a copy: the task's own lists are untouched
    splits["train"][1][:] = 7
    again = task.split_texts()
    assert len(again["train"][0]) == loaders.info["sizes"]["train"] and set(again["train"][1].tolist()) <= {0, 1}


def test_token_pattern_keeps_line_breaks_as_tokens(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3}, min_freq=1, token_pattern=r"\w+|[^\w\s]|\n")
    assert task.tokenizer("Roses are red,\nviolets\n") == ["roses", "are", "red", ",", "\n", "violets", "\n"]
    task.setup()
    assert task.encode("cat\ndog").tolist() == [task.vocab.stoi["cat"], task.vocab.unk_id, task.vocab.stoi["dog"]]
    plain = make(fortunes, dataset_kwargs={"top_k": 3})
    assert plain.tokenizer("red,\nviolets") == ["red", ",", "violets"]  # the default drops whitespace


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"token_pattern": "(a|b)"}, ValueError, r"data\.token_pattern: WordTokenizer: pattern: expected no capturing"),
        (
            {"token_pattern": "[a-"},
            ValueError,
            r"data\.token_pattern: WordTokenizer: pattern: expected a valid regular",
        ),
        ({"token_pattern": 3}, TypeError, r"expected data\.token_pattern as a regex string, got 3"),
        ({"token_pattern": r"\w+", "tokenizer": "char"}, ValueError, r"expected data\.token_pattern null with data\."),
    ],
)
def test_bad_token_pattern_is_named(data, error, message):
    with pytest.raises(error, match=message):
        TextClassification({"name": "fortunes", **data})


def test_prepare_model_fits_term_weights_on_the_training_texts_only(fortunes):
    from labkit.models.bag_features import naive_bayes_weights
    from labkit.models.text import hashed_ngrams

    task = make(fortunes, dataset_kwargs={"top_k": 3}, min_freq=1)
    loaders = task.setup()
    model = BagOfEmbeddings(**task.model_kwargs(), embed_dim=4, buckets=17, binary=True, weighting="nb")
    task.prepare_model(model)
    train = loaders.train.dataset
    ids = np.zeros((len(train.ids), max(len(x) for x in train.ids)), dtype=np.int64)
    for b, x in enumerate(train.ids):
        ids[b, : len(x)] = x
    grams = hashed_ngrams(ids, np.array([len(x) for x in train.ids]), 2, 17, len(task.vocab))
    expected = naive_bayes_weights([(*grams, train.labels)], len(task.vocab) + 17, 3)
    expected[task.vocab.pad_id] = 0.0
    np.testing.assert_allclose(model.term_weights.numpy(), expected, rtol=1e-6)
    # the <unk> id never occurs in the training ids (the vocabulary is theirs): it weighs 0
    assert model.term_weights.numpy()[task.vocab.unk_id] == 0.0
    assert task.evaluate(model, loaders.val)["accuracy"] >= 0.0


def test_prepare_model_leaves_other_models_alone(fortunes):
    task = make(fortunes, dataset_kwargs={"top_k": 3})
    task.setup()
    model = TextLSTM(**task.model_kwargs(), embed_dim=4, hidden_size=3, generator=labkit.Generator(0))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    task.prepare_model(model)
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())


def test_cross_validation_fold_pools_train_and_val_and_keeps_test(fortunes):
    plain = make(fortunes, dataset_kwargs={"top_k": 3}).split_texts()
    pooled = sorted(plain["train"][0] + plain["val"][0])
    held = []
    for fold in range(4):
        split = make(fortunes, dataset_kwargs={"top_k": 3}, cv_folds=4, cv_fold=fold).split_texts()
        assert split["test"][0] == plain["test"][0]  # test untouched
        np.testing.assert_array_equal(split["test"][1], plain["test"][1])
        assert sorted(split["train"][0] + split["val"][0]) == pooled
        assert not set(split["train"][0]) & set(split["val"][0])
        held += split["val"][0]
    assert sorted(held) == pooled  # every pooled text is held out exactly once


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cv_folds": 1}, r"TextClassification: data.cv_folds / data.cv_fold: .*expected folds as an int >= 2, got 1"),
        ({"cv_folds": 3, "cv_fold": 3}, r"data.cv_folds / data.cv_fold: .*expected fold as an int in \[0, 2\], got 3"),
    ],
)
def test_bad_cross_validation_options_are_named(fortunes, data, message):
    with pytest.raises(ValueError, match=message):
        make(fortunes, dataset_kwargs={"top_k": 3}, **data).split_texts()
