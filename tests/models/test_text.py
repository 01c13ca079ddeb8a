"""BagOfEmbeddings' feature dropout and hidden layer, checked by hand; drop_features on small arrays;
TextLSTM's pooling (last / max / mean) against numpy and float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.models import BagOfEmbeddings, TextLSTM, TextTransformer
from labkit.models.text import drop_features, hashed_ngrams, masked_max
from labkit.testing import gradcheck

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


# ---- TextLSTM pooling ---------------------------------------------------------------------------

POOLINGS = ["last", "max", "mean"]


def small_lstm(pooling: str, bidirectional: bool = True) -> TextLSTM:
    model = TextLSTM(
        12, 3, embed_dim=3, hidden_size=2, bidirectional=bidirectional, pooling=pooling, generator=labkit.Generator(0)
    )
    model.eval()
    return model.double()


def test_masked_max_ignores_padding_that_would_win():
    x = -1.0 - np.random.default_rng(0).random((3, 4, 2))  # every real value is below the padding's 0
    x[0, 2:] = 0.0  # as an LSTM's outputs past the length
    x[1, 3:] = 5.0  # garbage
    x[2, 1:] = 0.0  # a row of length 0 keeps its step 0
    got = masked_max(labkit.tensor(x), np.array([2, 3, 0])).numpy()
    expected = np.stack([x[0, :2].max(axis=0), x[1, :3].max(axis=0), x[2, 0]])
    np.testing.assert_array_equal(got, expected)
    assert (got < 0).all()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_lstm_pooling_matches_numpy_on_the_lstm_outputs(pooling, bidirectional):
    model = small_lstm(pooling, bidirectional)
    lengths = np.array([3, 5, 1])
    x = labkit.tensor(np.random.default_rng(1).standard_normal((3, 5, 3)))
    output, (h_n, _) = model.lstm(x, lengths=lengths)
    output, h_n = output.numpy(), h_n.numpy()
    rows = [output[b, :n] for b, n in enumerate(lengths)]
    if pooling == "max":
        expected = np.stack([r.max(axis=0) for r in rows])
    elif pooling == "mean":
        expected = np.stack([r.mean(axis=0) for r in rows])
    else:
        expected = np.concatenate([h_n[-2], h_n[-1]], axis=1) if bidirectional else h_n[-1]
    np.testing.assert_allclose(model.features(x, lengths).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert expected.shape == (3, 4 if bidirectional else 2)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_lstm_pooling_gradcheck_wrt_inputs_and_parameters(pooling):
    model = small_lstm(pooling)
    lengths = np.array([2, 4])  # the first row is padded
    x = labkit.tensor(np.random.default_rng(2).standard_normal((2, 4, 3)), requires_grad=True)
    params = [p for name, p in model.named_parameters() if not name.startswith("embedding")]
    gradcheck(lambda x, *rest: model.fc(model.features(x, lengths)), [x, *params])


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_lstm_pooling_gradcheck_through_the_embedding(pooling):
    model = small_lstm(pooling)
    ids = labkit.tensor(np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]]))
    gradcheck(lambda *params: model(ids, LENGTHS), list(model.parameters()))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_lstm_pooling_extra_padding_does_not_change_the_logits(pooling):
    model = TextLSTM(30, 4, embed_dim=8, hidden_size=6, pooling=pooling, generator=labkit.Generator(0))
    model.eval()
    batch = model(labkit.tensor(IDS), LENGTHS).numpy()
    longer = np.concatenate([IDS, np.zeros((2, 4), dtype=IDS.dtype)], axis=1)  # four more padded steps
    np.testing.assert_allclose(model(labkit.tensor(longer), LENGTHS).numpy(), batch, rtol=1e-5, atol=1e-6)
    alone = model(labkit.tensor(IDS[:1, :3]), LENGTHS[:1]).numpy()
    np.testing.assert_allclose(alone, batch[:1], rtol=1e-5, atol=1e-6)


def test_lstm_poolings_differ_and_default_is_last():
    assert TextLSTM(30, 4).pooling == "last"
    logits = {
        pooling: TextLSTM(30, 4, pooling=pooling, generator=labkit.Generator(0))(labkit.tensor(IDS), LENGTHS).numpy()
        for pooling in POOLINGS
    }
    assert not np.allclose(logits["max"], logits["last"]) and not np.allclose(logits["max"], logits["mean"])


def test_lstm_bad_pooling_is_named():
    with pytest.raises(ValueError, match=r"TextLSTM: expected pooling in \['last', 'max', 'mean'\], got 'sum'"):
        TextLSTM(30, 4, pooling="sum")


# ---- TextTransformer pooling ------------------------------------------------------------------


def small_transformer(pooling: str) -> TextTransformer:
    model = TextTransformer(12, 3, d_model=4, nhead=2, num_layers=1, dim_feedforward=6, max_len=8, pooling=pooling)
    model.eval()
    return model.double()


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_transformer_pooling_matches_numpy_on_the_encoder_outputs(pooling):
    model = small_transformer(pooling)
    encoded: list[np.ndarray] = []
    model.encoder.register_forward_hook(lambda module, args, output: encoded.append(output.numpy()))
    logits = model(labkit.tensor(IDS), LENGTHS).numpy()
    rows = [encoded[0][b, :n] for b, n in enumerate(LENGTHS)]
    pooled = np.stack([r.max(axis=0) if pooling == "max" else r.mean(axis=0) for r in rows])  # (B, D)
    expected = pooled @ model.fc.weight.numpy().T + model.fc.bias.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_transformer_pooling_gradcheck_and_padding(pooling):
    model = small_transformer(pooling)
    ids = labkit.tensor(IDS)
    gradcheck(lambda *params: model(ids, LENGTHS), list(model.parameters()))
    longer = labkit.tensor(np.concatenate([IDS, np.full((2, 2), 11)], axis=1))  # garbage past each length
    np.testing.assert_allclose(model(longer, LENGTHS).numpy(), model(ids, LENGTHS).numpy(), rtol=1e-10, atol=1e-12)


def test_transformer_bad_pooling_is_named():
    with pytest.raises(ValueError, match=r"TextTransformer: expected pooling in \['mean', 'max'\], got 'last'"):
        TextTransformer(30, 4, pooling="last")
