"""BagOfEmbeddings' feature dropout and hidden layer, checked by hand; drop_features on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.models import BagOfEmbeddings
from labkit.models.text import drop_features, hashed_ngrams

IDS = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
LENGTHS = np.array([3, 5])


def test_drop_features_keeps_order_pads_and_never_empties_a_row():
    ids = np.arange(1, 41).reshape(4, 10)
    lengths = np.array([10, 6, 1, 0])
    out, new_lengths = drop_features(ids, lengths, 0.5, np.random.default_rng(0), pad_value=0)
    assert out.shape == (4, new_lengths.max())
    for row, length, src, n in zip(out, new_lengths, ids, lengths):
        kept = row[:length].tolist()
        assert kept == sorted(kept) and set(kept) <= set(src[:n].tolist())  # a subsequence of the real ids
        assert (row[length:] == 0).all()
    assert new_lengths[2] == 1 and out[2, 0] == 21  # a one-token row keeps its token
    assert new_lengths[3] == 0  # an empty row stays empty
    assert 2 <= new_lengths[0] <= 8  # about half of 10 (seeded)
    same, same_lengths = drop_features(ids, lengths, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same_lengths, lengths)
    np.testing.assert_array_equal(same[:2], ids[:2] * (np.arange(10) < lengths[:2, None]))


def test_drop_features_rate_is_p():
    ids = np.ones((200, 50), dtype=np.int64)
    _, new_lengths = drop_features(ids, np.full(200, 50), 0.3, np.random.default_rng(1))
    assert new_lengths.sum() / ids.size == pytest.approx(0.7, abs=0.01)


def test_feature_dropout_only_in_training_and_drawn_from_the_generator():
    def model(seed: int) -> BagOfEmbeddings:
        return BagOfEmbeddings(30, 4, embed_dim=8, buckets=11, feature_dropout=0.5, generator=labkit.Generator(seed))

    plain = BagOfEmbeddings(30, 4, embed_dim=8, buckets=11, generator=labkit.Generator(0))
    first, second = model(0), model(0)
    first.eval()
    plain.eval()
    np.testing.assert_allclose(first(labkit.tensor(IDS), LENGTHS).numpy(), plain(labkit.tensor(IDS), LENGTHS).numpy())
    second.train()
    a = second(labkit.tensor(np.tile(IDS, (8, 1))), np.tile(LENGTHS, 8)).numpy()
    b = second(labkit.tensor(np.tile(IDS, (8, 1))), np.tile(LENGTHS, 8)).numpy()
    assert not np.allclose(a, b)  # a fresh mask per call
    third = model(0)
    third.train()
    np.testing.assert_allclose(third(labkit.tensor(np.tile(IDS, (8, 1))), np.tile(LENGTHS, 8)).numpy(), a)


def test_hidden_layer_by_hand():
    model = BagOfEmbeddings(30, 4, embed_dim=8, ngrams=2, buckets=11, hidden=6, generator=labkit.Generator(0))
    model.eval()
    assert model.hidden.weight.shape == (6, 8) and model.fc.weight.shape == (4, 6)
    table = model.embedding.weight.numpy()
    grams, lengths = hashed_ngrams(IDS, LENGTHS, 2, 11, 30)
    mean = np.stack([table[row[:n]].mean(axis=0) for row, n in zip(grams, lengths)])  # (B, 8)
    h = np.maximum(mean @ model.hidden.weight.numpy().T + model.hidden.bias.numpy(), 0)
    expected = h @ model.fc.weight.numpy().T + model.fc.bias.numpy()
    np.testing.assert_allclose(model(labkit.tensor(IDS), LENGTHS).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_defaults_keep_the_fasttext_parameters():
    model = BagOfEmbeddings(30, 4, embed_dim=8, buckets=11)
    assert sorted(model.state_dict()) == ["embedding.weight", "fc.bias", "fc.weight"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": -1}, r"BagOfEmbeddings: expected hidden >= 0 \(0: no hidden layer\), got -1"),
        ({"hidden": 2.5}, r"BagOfEmbeddings: expected hidden >= 0 \(0: no hidden layer\), got 2.5"),
        ({"feature_dropout": 1.0}, r"BagOfEmbeddings: expected feature_dropout in \[0, 1\), got 1.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BagOfEmbeddings(30, 4, **kwargs)
