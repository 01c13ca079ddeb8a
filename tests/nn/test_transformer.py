"""TransformerEncoderLayer, TransformerEncoder and the positional embeddings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.nn.attention import causal_mask, padding_mask
from labkit.nn.normalization import LayerNorm
from labkit.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEmbedding, sinusoidal_table
from labkit.nn.transformer import TransformerEncoder, TransformerEncoderLayer
from labkit.testing import gradcheck


def _randomize(module: labkit.nn.Module, seed: int) -> None:
    """Random values everywhere (zero biases and unit norms would leave terms untested)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5


# ---- TransformerEncoderLayer ---------------------------------------------------------------------


def test_layer_structure_and_errors() -> None:
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, generator=labkit.Generator(0))
    names = [name for name, _ in layer.named_modules()][1:]
    assert names == [
        "self_attn", "self_attn.out_proj", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2",
    ]  # fmt: skip
    assert layer.self_attn.dropout == 0.1 and layer.dropout.p == 0.1
    assert "activation=relu, norm_first=False" in repr(layer)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: expected activation in \['gelu', 'relu'\]"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="MultiheadAttention: expected embed_dim divisible by num_heads, got 8 and 3"):
        TransformerEncoderLayer(8, 3)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=8\): expected src \(S, B, 8\) or \(S, 8\)"):
        layer(labkit.randn(3, 2, 4))
    with pytest.raises(ValueError, match="TransformerEncoder: expected num_layers >= 1, got 0"):
        TransformerEncoder(layer, 0)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_layer_gradcheck(norm_first: bool, activation: str) -> None:
    layer = TransformerEncoderLayer(
        4, 2, dim_feedforward=6, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True
    ).double()
    _randomize(layer, 1)
    x = labkit.tensor(np.random.default_rng(2).standard_normal((2, 3, 4)), requires_grad=True)
    kpm = padding_mask([3, 2], 3)
    assert gradcheck(lambda x, *p: layer(x, src_key_padding_mask=kpm, is_causal=True), [x, *layer.parameters()])


def test_callable_activation_and_training_dropout() -> None:
    layer = TransformerEncoderLayer(8, 2, 16, activation=F.tanh, batch_first=True, generator=labkit.Generator(0))
    x = labkit.randn(2, 4, 8, generator=labkit.Generator(1))
    a, b = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(a, b)  # dropout draws new masks each call in training mode
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


# ---- TransformerEncoder --------------------------------------------------------------------------


def test_encoder_copies_weights_and_shares_generators() -> None:
    gen = labkit.Generator(0)
    layer = TransformerEncoderLayer(8, 2, 16, generator=gen)
    encoder = TransformerEncoder(layer, 3, norm=LayerNorm(8))
    assert len(encoder.layers) == 3 and "num_layers=3" in repr(encoder)
    for copy in encoder.layers:
        assert copy is not layer and copy.dropout.generator is gen and copy.self_attn.generator is gen
        for (name, p), q in zip(copy.named_parameters(), layer.parameters()):
            assert p is not q, name
            np.testing.assert_array_equal(p.numpy(), q.numpy())
    encoder.layers[0].linear1.weight.data[...] = 0  # the copies own their arrays
    assert encoder.layers[1].linear1.weight.numpy().any()
    keys = list(encoder.state_dict())
    assert keys[0] == "layers.0.self_attn.in_proj_weight" and keys[-2:] == ["norm.weight", "norm.bias"]


def test_encoder_gradcheck() -> None:
    layer = TransformerEncoderLayer(4, 2, dim_feedforward=4, dropout=0.0, norm_first=True)
    encoder = TransformerEncoder(layer, 2, norm=LayerNorm(4)).double()
    _randomize(encoder, 3)
    x = labkit.tensor(np.random.default_rng(4).standard_normal((3, 2, 4)), requires_grad=True)  # (S, B, E)
    mask = np.random.default_rng(5).standard_normal((3, 3))  # float mask, added
    assert gradcheck(lambda x, *p: encoder(x, mask=mask), [x, *encoder.parameters()])


# ---- PyTorch parity --------------------------------------------------------------------------------


def _compare_with_torch(torch: Any, ours: labkit.nn.Module, theirs: Any, x_np: np.ndarray, **masks: Any) -> None:
    """Same weights in both; outputs and every gradient agree within 1e-5 in float32."""
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    x = labkit.tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    t_masks = {k: torch.from_numpy(np.asarray(v.numpy() if hasattr(v, "numpy") else v)) for k, v in masks.items()}
    out = ours(x, **masks)
    t_out = theirs(tx, **t_masks)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    cot = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    F.sum(out * labkit.tensor(cot)).backward()
    (t_out * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


LAYER_CASES = [
    pytest.param({"batch_first": True}, "train", id="post_norm_batch_first_train"),
    pytest.param({"batch_first": False, "norm_first": True}, "train", id="pre_norm_seq_first_train"),
    pytest.param({"batch_first": True, "activation": "gelu", "dropout": 0.1}, "eval", id="gelu_eval"),
    pytest.param({"batch_first": False, "norm_first": True, "bias": False, "dropout": 0.1}, "eval", id="no_bias_eval"),
]


@pytest.mark.parametrize(("kwargs", "mode"), LAYER_CASES)
def test_encoder_layer_matches_torch(kwargs: dict[str, Any], mode: str) -> None:
    torch = pytest.importorskip("torch")
    kwargs = {"dropout": 0.0, **kwargs}  # train mode is compared with dropout 0, eval mode with dropout on
    ours = TransformerEncoderLayer(8, 2, dim_feedforward=16, generator=labkit.Generator(1), **kwargs)
    _randomize(ours, 2)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, **kwargs)
    if mode == "eval":
        ours.eval()
        theirs.eval()
    bf = kwargs["batch_first"]
    x = np.random.default_rng(3).standard_normal((2, 5, 8) if bf else (5, 2, 8)).astype(np.float32)
    masks = {"src_key_padding_mask": padding_mask([5, 3], 5), "src_mask": causal_mask(5)}
    _compare_with_torch(torch, ours, theirs, x, **masks)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_encoder_matches_torch(mode: str) -> None:
    torch = pytest.importorskip("torch")
    dropout = 0.0 if mode == "train" else 0.1
    layer = TransformerEncoderLayer(8, 2, 16, dropout=dropout, batch_first=True, generator=labkit.Generator(4))
    ours = TransformerEncoder(layer, 2, norm=LayerNorm(8))
    _randomize(ours, 5)  # different weights per layer after the copy
    t_layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=dropout, batch_first=True)
    # no nested-tensor fast path: it returns zeros at padded positions instead of computing them
    theirs = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    if mode == "eval":
        ours.eval()
        theirs.eval()
    x = np.random.default_rng(6).standard_normal((2, 5, 8)).astype(np.float32)
    mask = np.random.default_rng(7).standard_normal((5, 5)).astype(np.float32)
    kpm = np.where(padding_mask([5, 4], 5).numpy(), -np.inf, 0.0).astype(np.float32)  # float, like the mask
    _compare_with_torch(torch, ours, theirs, x, mask=mask, src_key_padding_mask=kpm)


# ---- positional embeddings ----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [6, 5])
def test_sinusoidal_table_follows_vaswani(dim: int) -> None:
    table = sinusoidal_table(7, dim)
    for t in range(7):
        for j in range(dim):
            angle = t / 10000 ** (2 * (j // 2) / dim)
            assert table[t, j] == pytest.approx(math.sin(angle) if j % 2 == 0 else math.cos(angle), abs=1e-12)


def test_sinusoidal_embedding_adds_a_non_persistent_buffer() -> None:
    pe = SinusoidalPositionalEmbedding(10, 6)
    assert pe.state_dict() == {} and list(pe.parameters()) == [] and pe.pe.shape == (10, 6)
    x = labkit.randn(2, 4, 6, requires_grad=True)
    out = pe(x)
    np.testing.assert_allclose(out.numpy(), x.numpy() + sinusoidal_table(10, 6)[None, :4], rtol=1e-6, atol=1e-6)
    shifted = pe(x[:, :1], offset=3)  # decoding step 3 of a sequence
    np.testing.assert_allclose(shifted.numpy()[:, 0], x.numpy()[:, 0] + sinusoidal_table(10, 6)[3], atol=1e-6)
    F.sum(out).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 1.0)
    assert pe.double()(x.double()).dtype == np.float64
    with pytest.raises(ValueError, match=r"SinusoidalPositionalEmbedding\(max_len=10, dim=6\): expected at most "):
        pe(labkit.randn(1, 11, 6))
    with pytest.raises(ValueError, match=r"expected input \(B, T, 6\) or \(T, 6\), got \(2, 4, 5\)"):
        pe(labkit.randn(2, 4, 5))


def test_learned_embedding_init_gradient_and_errors() -> None:
    emb = LearnedPositionalEmbedding(64, 32, generator=labkit.Generator(0))
    assert [name for name, _ in emb.named_parameters()] == ["weight"]
    assert emb.weight.numpy().std() == pytest.approx(0.02, rel=0.1)
    x = labkit.randn(3, 5, 32)
    out = emb(x)
    np.testing.assert_allclose(out.numpy(), x.numpy() + emb.weight.numpy()[None, :5], rtol=1e-6)
    F.sum(out).backward()
    grad = emb.weight.grad.numpy()
    np.testing.assert_array_equal(grad[:5], 3.0)  # each row is used once per batch element
    np.testing.assert_array_equal(grad[5:], 0.0)
    with pytest.raises(ValueError, match=r"got positions up to 66 \(offset 2 \+ sequence length 64"):
        emb(labkit.randn(1, 64, 32), offset=2)
    with pytest.raises(ValueError, match="LearnedPositionalEmbedding: expected max_len >= 1, got 0"):
        LearnedPositionalEmbedding(0, 4)
    double = LearnedPositionalEmbedding(4, 3).double()
    xd = labkit.tensor(np.random.default_rng(0).standard_normal((2, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: double(x, offset=1), [xd, double.weight])
