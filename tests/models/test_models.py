"""The built-in models: shapes, seeded init, padding invariance, n-gram hashing, generation, errors."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.models import MLP, BagOfEmbeddings, CharLSTMLM, SequenceRNN, SmallCNN, TextLSTM, TextTransformer
from labkit.models.text import hashed_ngrams, masked_mean


def params(model: labkit.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


# ---- images -------------------------------------------------------------------------------


def test_small_cnn_shapes_and_feature_size():
    model = SmallCNN(3, 7, image_size=[10, 12], channels=[4, 8], hidden=16, generator=labkit.Generator(0))
    out = model(labkit.randn(2, 3, 10, 12))
    assert out.shape == (2, 7)
    # two halvings: 10x12 -> 5x6 -> 2x3, 8 channels
    assert model.head[1].weight.shape == (16, 8 * 2 * 3)


def test_small_cnn_same_seed_same_weights_and_grads_flow():
    a = SmallCNN(1, 10, 8, generator=labkit.Generator(3))
    b = SmallCNN(1, 10, 8, generator=labkit.Generator(3))
    c = SmallCNN(1, 10, 8, generator=labkit.Generator(4))
    pa, pb, pc = params(a), params(b), params(c)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert not all(np.array_equal(pa[k], pc[k]) for k in pa)
    loss = F.cross_entropy(a(labkit.randn(4, 1, 8, 8)), np.array([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in a.parameters())


def test_small_cnn_learns_a_tiny_batch():
    rng = np.random.default_rng(0)
    x = labkit.tensor(rng.standard_normal((16, 1, 8, 8)).astype(np.float32))
    y = np.arange(16) % 4
    model = SmallCNN(1, 4, 8, channels=[8], hidden=32, generator=labkit.Generator(0))
    opt = labkit.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_small_cnn_errors_name_the_argument():
    with pytest.raises(ValueError, match="SmallCNN: expected image_size to allow 3 halvings"):
        SmallCNN(1, 10, 4, channels=[8, 8, 8])
    with pytest.raises(TypeError, match="SmallCNN: expected an int num_classes"):
        SmallCNN(1, "10", 8)
    with pytest.raises(ValueError, match=r"SmallCNN: expected dropout in \[0, 1\)"):
        SmallCNN(1, 10, 8, dropout=1.5)


def test_mlp_accepts_image_sizes_or_flat_sizes():
    image = MLP(in_channels=2, image_size=4, num_classes=3, hidden_sizes=[8, 8])
    assert image(labkit.randn(5, 2, 4, 4)).shape == (5, 3)
    flat = MLP(input_size=6, output_size=2, hidden_sizes=[])
    assert flat(labkit.randn(5, 6)).shape == (5, 2)
    assert len(list(flat.parameters())) == 2  # one Linear
    with pytest.raises(ValueError, match="MLP: expected input_size, or in_channels and image_size"):
        MLP(num_classes=3)
    with pytest.raises(ValueError, match="MLP: expected activation in"):
        MLP(4, 2, activation="swish")


# ---- text -----------------------------------------------------------------------------------


def test_masked_mean_ignores_padding():
    x = labkit.tensor(np.arange(12, dtype=np.float32).reshape(2, 3, 2))  # (B=2, T=3, D=2)
    out = masked_mean(x, np.array([2, 3])).numpy()
    np.testing.assert_allclose(out, [[1.0, 2.0], [8.0, 9.0]])


def test_hashed_ngrams_hand_computed():
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    grams, lengths = hashed_ngrams(ids, np.array([3, 2]), n=2, buckets=10, offset=100)
    h = lambda a, b: (a * 1 + b * 116_049_371) % 10 + 100  # noqa: E731
    np.testing.assert_array_equal(lengths, [5, 3])
    np.testing.assert_array_equal(grams[0], [5, 6, 7, h(5, 6), h(6, 7)])
    np.testing.assert_array_equal(grams[1], [8, 9, h(8, 9), 0, 0])
    trigrams, tri_lengths = hashed_ngrams(ids, np.array([3, 2]), n=3, buckets=10, offset=100)
    assert tri_lengths.tolist() == [6, 3]  # a 2-token text has no trigram
    assert 100 <= trigrams[0, 5] < 110


@pytest.mark.parametrize("cls", [BagOfEmbeddings, TextLSTM, TextTransformer])
def test_text_models_ignore_padding(cls):
    model = cls(30, 4, generator=labkit.Generator(0))
    model.eval()
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    batch = model(labkit.tensor(ids), np.array([3, 5])).numpy()
    alone = model(labkit.tensor(ids[:1, :3]), np.array([3])).numpy()
    assert batch.shape == (2, 4)
    np.testing.assert_allclose(batch[:1], alone, rtol=1e-4, atol=1e-5)
    other_pad = ids.copy()
    other_pad[0, 3:] = 11  # whatever sits past the length must not matter
    np.testing.assert_allclose(model(labkit.tensor(other_pad), np.array([3, 5])).numpy(), batch, rtol=1e-4, atol=1e-5)


def test_bag_of_embeddings_uses_ngram_rows_and_padding_row_stays_zero():
    model = BagOfEmbeddings(20, 3, embed_dim=4, ngrams=2, buckets=7, generator=labkit.Generator(0))
    assert model.embedding.weight.shape == (27, 4)
    assert np.all(model.embedding.weight.numpy()[0] == 0)
    out = model(labkit.tensor(np.array([[1, 2, 3]])), np.array([3]))
    F.sum(out).backward()
    grad = model.embedding.weight.grad.numpy()
    touched = np.flatnonzero(np.abs(grad).sum(axis=1))
    assert set(touched[touched < 20]) == {1, 2, 3}
    assert (touched >= 20).sum() >= 1  # bigram rows receive gradient


def test_text_transformer_checks_heads():
    with pytest.raises(ValueError, match="TextTransformer: expected d_model divisible by nhead"):
        TextTransformer(10, 2, d_model=30, nhead=4)


# ---- language model ---------------------------------------------------------------------------


def test_char_lstm_forward_state_continues_the_sequence():
    model = CharLSTMLM(12, embed_dim=8, hidden_size=16, num_layers=2, generator=labkit.Generator(0))
    ids = np.array([[1, 2, 3, 4, 5, 6]])
    whole, _ = model(labkit.tensor(ids))
    _, state = model(labkit.tensor(ids[:, :3]))
    second, _ = model(labkit.tensor(ids[:, 3:]), state)
    assert whole.shape == (1, 6, 12)
    np.testing.assert_allclose(second.numpy(), whole.numpy()[:, 3:], rtol=1e-4, atol=1e-5)


def test_char_lstm_generate_is_seeded_and_greedy_at_zero_temperature():
    model = CharLSTMLM(12, embed_dim=8, hidden_size=16, generator=labkit.Generator(0))
    a = model.generate([1, 2], 20, 1.0, labkit.Generator(5))
    b = model.generate([1, 2], 20, 1.0, labkit.Generator(5))
    assert a == b and len(a) == 20 and all(0 <= i < 12 for i in a)
    greedy = model.generate([1, 2], 5, 0.0)
    logits, _ = model(labkit.tensor(np.array([[1, 2]])))
    assert greedy[0] == int(np.argmax(logits.numpy()[0, -1]))
    assert model.training  # generate restores the mode
    with pytest.raises(ValueError, match=r"CharLSTMLM\.generate: expected a non-empty prefix_ids"):
        model.generate([], 3)


def test_char_lstm_tied_weights_share_the_parameter():
    model = CharLSTMLM(12, embed_dim=16, hidden_size=16, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    with pytest.raises(ValueError, match="tie_weights needs embed_dim == hidden_size"):
        CharLSTMLM(12, embed_dim=8, hidden_size=16, tie_weights=True)


# ---- sequences ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_rnn_uses_each_sequence_end(kind, bidirectional):
    model = SequenceRNN(3, 2, kind=kind, hidden_size=8, bidirectional=bidirectional, generator=labkit.Generator(0))
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    x[0, 4:] = 9.0  # padding of the first sequence
    batch = model(labkit.tensor(x), np.array([4, 6])).numpy()
    alone = model(labkit.tensor(x[:1, :4])).numpy()
    assert batch.shape == (2, 2)
    np.testing.assert_allclose(batch[:1], alone, rtol=1e-4, atol=1e-5)


def test_sequence_rnn_rejects_unknown_kind_and_task():
    with pytest.raises(ValueError, match=r"SequenceRNN: expected kind in \['lstm', 'gru', 'rnn'\], got 'tcn'"):
        SequenceRNN(2, 1, kind="tcn")
    with pytest.raises(ValueError, match="SequenceRNN: expected task in"):
        SequenceRNN(2, 1, task="segment")


def test_sequence_rnn_forget_bias_shifts_only_the_forget_gate():
    plain = SequenceRNN(2, 1, hidden_size=4, generator=labkit.Generator(0))
    biased = SequenceRNN(2, 1, hidden_size=4, forget_bias=1.0, generator=labkit.Generator(0))
    delta = biased.rnn.bias_ih_l0.numpy() - plain.rnn.bias_ih_l0.numpy()
    np.testing.assert_allclose(delta, [0] * 4 + [1] * 4 + [0] * 8, atol=1e-6)
    np.testing.assert_array_equal(biased.rnn.bias_hh_l0.numpy(), plain.rnn.bias_hh_l0.numpy())
    with pytest.raises(ValueError, match="forget_bias applies to kind='lstm' only"):
        SequenceRNN(2, 1, kind="gru", forget_bias=1.0)


@pytest.mark.parametrize("cls", [BagOfEmbeddings, TextLSTM, TextTransformer])
def test_text_models_infer_lengths_from_padding(cls):
    model = cls(30, 4, generator=labkit.Generator(0))
    model.eval()
    ids = labkit.tensor(np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]]))
    np.testing.assert_allclose(model(ids).numpy(), model(ids, np.array([3, 5])).numpy(), rtol=1e-5, atol=1e-6)
