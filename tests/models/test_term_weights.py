"""Weighted bags: unique_features and naive_bayes_weights by hand, masked_combine's combiners and
weights against numpy and float64 finite differences, and BagOfEmbeddings' binary / nb options."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.models import BagOfEmbeddings
from labkit.models.bag_features import naive_bayes_weights, unique_features
from labkit.models.text import hashed_ngrams, masked_combine
from labkit.testing import gradcheck

IDS = np.array([[3, 4, 3, 5, 0, 0], [6, 7, 8, 9, 10, 6], [2, 2, 2, 0, 0, 0]])
LENGTHS = np.array([4, 6, 3])


def test_unique_features_counts_each_id_once_and_pads():
    out, lengths = unique_features(IDS, LENGTHS, pad_value=0)
    np.testing.assert_array_equal(lengths, [3, 5, 1])
    assert out.shape == (3, 5)
    for row, n, source, m in zip(out, lengths, IDS, LENGTHS):
        np.testing.assert_array_equal(row[:n], np.unique(source[:m]))
        assert (row[n:] == 0).all()


def test_unique_features_ignores_ids_past_the_length():
    out, lengths = unique_features(np.array([[5, 5, 9, 9]]), np.array([2]))
    np.testing.assert_array_equal(out, [[5]])
    np.testing.assert_array_equal(lengths, [1])


def test_naive_bayes_weights_match_the_formula_by_hand():
    # 4 texts, 3 classes, features 0..5; feature 5 never occurs
    texts = [[0, 1, 1], [1, 2], [3, 0], [4, 4, 2]]
    labels = np.array([0, 0, 1, 2])
    ids = np.zeros((4, 3), dtype=np.int64)
    for b, t in enumerate(texts):
        ids[b, : len(t)] = t
    lengths = np.array([len(t) for t in texts])
    got = naive_bayes_weights([(ids, lengths, labels)], rows=6, num_classes=3, alpha=1.0)

    seen = [0, 1, 2, 3, 4]
    n = np.zeros((5, 3))  # texts of each class holding each seen feature (once per text)
    for t, y in zip(texts, labels):
        for f in set(t):
            n[f, y] += 1
    expected = np.zeros(6)
    for f in seen:
        r = []
        for c in range(3):
            p = (1 + n[f, c]) / sum(1 + n[g, c] for g in seen)
            rest = [k for k in range(3) if k != c]
            q = (1 + n[f, rest].sum()) / sum(1 + n[g, rest].sum() for g in seen)
            r.append(np.log(p / q))
        expected[f] = np.sqrt(np.mean(np.square(r)))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[5] == 0.0  # never seen in training: no weight


def test_naive_bayes_weights_are_the_same_in_any_batching():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 40, size=(30, 7))
    lengths = rng.integers(1, 8, size=30)
    labels = rng.integers(0, 4, size=30)
    whole = naive_bayes_weights([(ids, lengths, labels)], 40, 4)
    parts = naive_bayes_weights(
        [(ids[i : i + 4], lengths[i : i + 4], labels[i : i + 4]) for i in range(0, 30, 4)], 40, 4
    )
    np.testing.assert_allclose(parts, whole, rtol=1e-12)


def test_naive_bayes_weights_favour_a_feature_that_tells_classes_apart():
    # feature 1 is in every class-0 text and no other; feature 2 is in every text
    ids = np.array([[1, 2], [1, 2], [3, 2], [4, 2]])
    weights = naive_bayes_weights([(ids, np.array([2, 2, 2, 2]), np.array([0, 0, 1, 1]))], 5, 2)
    assert weights[1] > weights[3] > 0 and weights[1] > weights[2]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ((np.array([[1, 2]]), np.array([2]), np.array([3])), r"expected labels in \[0, 2\)"),
        ((np.array([[1, 9]]), np.array([2]), np.array([0])), r"expected feature ids in \[0, 5\)"),
    ],
)
def test_naive_bayes_weights_bad_input_is_named(batch, message):
    with pytest.raises(ValueError, match=message):
        naive_bayes_weights([batch], 5, 2)
    with pytest.raises(ValueError, match=r"expected alpha > 0"):
        naive_bayes_weights([batch], 5, 2, alpha=0)


# ---- masked_combine ------------------------------------------------------------------------------


@pytest.mark.parametrize("combiner", ["mean", "sqrtn", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_combine_matches_numpy(combiner, weighted):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 4))
    w = rng.random((3, 6)) + 0.1
    lengths = np.array([2, 6, 1])
    got = masked_combine(labkit.tensor(x), lengths, combiner, labkit.tensor(w) if weighted else None).numpy()
    for b, n in enumerate(lengths):
        wb = w[b, :n] if weighted else np.ones(n)
        total = {"mean": wb.sum(), "sqrtn": np.sqrt((wb**2).sum()), "sum": 1.0}[combiner]
        np.testing.assert_allclose(got[b], (wb[:, None] * x[b, :n]).sum(axis=0) / total, rtol=1e-12)


def test_masked_combine_with_unit_weights_is_the_unweighted_combiner():
    x = labkit.tensor(np.random.default_rng(3).standard_normal((2, 5, 3)))
    lengths = np.array([5, 2])
    for combiner in ("mean", "sqrtn", "sum"):
        weighted = masked_combine(x, lengths, combiner, labkit.tensor(np.ones((2, 5)))).numpy()
        np.testing.assert_allclose(weighted, masked_combine(x, lengths, combiner).numpy(), rtol=1e-12)


def test_masked_combine_all_zero_weights_pool_to_zero():
    x = labkit.tensor(np.ones((1, 3, 2)))
    for combiner in ("mean", "sqrtn"):
        np.testing.assert_array_equal(masked_combine(x, [3], combiner, labkit.tensor(np.zeros((1, 3)))).numpy(), 0.0)


@pytest.mark.parametrize("combiner", ["mean", "sqrtn", "sum"])
def test_masked_combine_gradcheck(combiner):
    rng = np.random.default_rng(4)
    x = labkit.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    w = labkit.tensor(rng.random((2, 4)) + 0.1)
    assert gradcheck(lambda t: masked_combine(t, np.array([3, 4]), combiner, w), (x,))
    assert gradcheck(lambda t: masked_combine(t, np.array([3, 4]), combiner), (x,))


def test_masked_combine_bad_combiner_is_named():
    with pytest.raises(ValueError, match=r"masked_combine.*combiner.*'max'"):
        masked_combine(labkit.tensor(np.ones((1, 2, 2))), [2], "max")


# ---- BagOfEmbeddings: binary and nb --------------------------------------------------------------


def nb_bag(**kwargs) -> BagOfEmbeddings:
    options = {"embed_dim": 4, "ngrams": 2, "buckets": 13, "pooling": "sqrtn", "binary": True, "weighting": "nb"}
    return BagOfEmbeddings(20, 3, generator=labkit.Generator(0), **{**options, **kwargs}).double()


TRAIN = [np.array([3, 4, 5]), np.array([3, 6]), np.array([7, 8, 9, 7]), np.array([10, 11])]
TRAIN_LABELS = np.array([0, 0, 1, 2])


def test_nb_bag_by_hand():
    model = nb_bag()
    model.fit_term_weights(TRAIN, TRAIN_LABELS)
    model.eval()
    ids = np.array([[3, 4, 3, 0], [7, 12, 9, 7]])
    lengths = np.array([3, 4])
    # the same features and weights, computed without the model
    train_ids = np.zeros((4, 4), dtype=np.int64)
    for b, t in enumerate(TRAIN):
        train_ids[b, : len(t)] = t
    grams, glen = hashed_ngrams(train_ids, np.array([len(t) for t in TRAIN]), 2, 13, 20)
    weights = naive_bayes_weights([(grams, glen, TRAIN_LABELS)], 33, 3)
    weights[0] = 0.0
    np.testing.assert_allclose(model.term_weights.numpy(), weights, rtol=1e-12)

    table = model.embedding.weight.numpy()
    features, flen = unique_features(*hashed_ngrams(ids, lengths, 2, 13, 20))
    pooled = []
    for row, n in zip(features, flen):
        w = weights[row[:n]]
        pooled.append((w[:, None] * table[row[:n]]).sum(axis=0) / np.sqrt((w**2).sum()))
    expected = np.stack(pooled) @ model.fc.weight.numpy().T + model.fc.bias.numpy()
    np.testing.assert_allclose(model(labkit.tensor(ids), lengths).numpy(), expected, rtol=1e-10)
    assert weights[12] == 0.0  # id 12 never occurs in training: it adds nothing


def test_binary_bag_ignores_repeats():
    model = BagOfEmbeddings(20, 3, embed_dim=4, ngrams=1, binary=True, generator=labkit.Generator(0))
    model.eval()
    once = model(labkit.tensor(np.array([[3, 4, 0, 0]])), np.array([2])).numpy()
    twice = model(labkit.tensor(np.array([[3, 4, 4, 3]])), np.array([4])).numpy()
    np.testing.assert_allclose(twice, once, rtol=1e-6)


def test_nb_bag_gradcheck_wrt_parameters():
    model = nb_bag()
    model.fit_term_weights(TRAIN, TRAIN_LABELS)
    model.eval()
    ids = labkit.tensor(np.array([[3, 4, 5, 0], [7, 8, 9, 10]]))
    lengths = np.array([3, 4])
    params = (model.embedding.weight, model.fc.weight, model.fc.bias)
    assert gradcheck(lambda *_: model(ids, lengths), params)
    assert not model.term_weights.requires_grad


def test_nb_bag_refuses_to_run_before_its_weights_are_fitted():
    model = nb_bag()
    with pytest.raises(ValueError, match=r"weighting='nb' needs term weights: expected fit_term_weights"):
        model(labkit.tensor(np.array([[3, 4]])))


def test_nb_bag_weights_travel_with_the_state_dict():
    model = nb_bag()
    model.fit_term_weights(TRAIN, TRAIN_LABELS)
    state = model.state_dict()
    assert "term_weights" in state
    fresh = nb_bag()
    fresh.load_state_dict(state)
    model.eval()
    fresh.eval()
    ids = labkit.tensor(np.array([[3, 4, 5, 0]]))
    np.testing.assert_array_equal(fresh(ids).numpy(), model(ids).numpy())


def test_unweighted_bag_has_no_term_weights_and_ignores_fit():
    model = BagOfEmbeddings(20, 3, embed_dim=4, buckets=13)
    model.fit_term_weights(TRAIN, TRAIN_LABELS)  # nothing to fit
    assert "term_weights" not in model.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"weighting": "idf"}, ValueError, r"BagOfEmbeddings.*weighting.*'idf'"),
        ({"pooling": "max"}, ValueError, r"BagOfEmbeddings.*pooling.*'max'"),
        ({"binary": "yes"}, TypeError, r"BagOfEmbeddings: expected binary true or false, got str 'yes'"),
    ],
)
def test_bad_bag_options_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        BagOfEmbeddings(20, 3, **kwargs)


def test_fit_term_weights_needs_one_label_per_text():
    with pytest.raises(ValueError, match=r"expected one label per text, got 4 texts and 3 labels"):
        nb_bag().fit_term_weights(TRAIN, TRAIN_LABELS[:3])
