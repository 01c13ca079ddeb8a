"""dropout and embedding: values, gradients, reproducible masks, padding_idx, errors."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.ops.nn import EmbeddingGrad
from labkit.testing.opspec import OpSpec, check_op


def _dropout_ref(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    keep = np.random.default_rng(seed).random(x.shape, dtype=np.float32) >= p
    return x * keep / (1 - p)


IDS = np.array([[0, 3, 3], [5, 1, 0]])
IDS_PAD = np.array([2, 0, 2, 4, 1])

SPECS = [
    OpSpec(
        "dropout",
        lambda x: F.dropout(x, 0.3, generator=labkit.Generator(11)),
        lambda x: _dropout_ref(x, 0.3, 11),
        [(4, 5)],
    ),
    OpSpec(
        "dropout_numpy_generator",
        lambda x: F.dropout(x, 0.5, generator=np.random.default_rng(2)),
        lambda x: _dropout_ref(x, 0.5, 2),
        [(3, 2, 2)],
    ),
    OpSpec("dropout_eval", lambda x: F.dropout(x, 0.5, training=False), lambda x: x, [(3,)]),
    OpSpec("embedding", lambda w, ids: F.embedding(ids, w), lambda w, ids: w[ids], [(6, 4)], extra=[IDS]),
    OpSpec("embedding_1d_ids", lambda w, ids: F.embedding(ids, w), lambda w, ids: w[ids], [(5, 3)], extra=[IDS_PAD]),
    # the scatter-add backward (padding row zeroed) is itself differentiable
    OpSpec(
        "embedding_backward_padding",
        lambda gy: EmbeddingGrad(IDS_PAD, 5, 2)(gy),
        lambda gy: _scatter_ref(gy, IDS_PAD, 5, 2),
        [(5, 3)],
    ),
]


def _scatter_ref(gy: np.ndarray, ids: np.ndarray, n: int, padding_idx: int) -> np.ndarray:
    out = np.zeros((n, gy.shape[-1]), dtype=gy.dtype)
    np.add.at(out, ids, gy)
    out[padding_idx] = 0
    return out


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_nn(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


# ---- dropout ------------------------------------------------------------------------------


def test_dropout_same_seed_same_mask(device: str) -> None:
    x = labkit.ones(50, 40, device=device)
    a = F.dropout(x, 0.4, generator=labkit.Generator(3))
    b = F.dropout(x, 0.4, generator=labkit.Generator(3))
    c = F.dropout(x, 0.4, generator=labkit.Generator(4))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (a.numpy() != c.numpy()).any()
    labkit.manual_seed(9)
    d = F.dropout(x, 0.4)
    labkit.manual_seed(9)
    np.testing.assert_array_equal(d.numpy(), F.dropout(x, 0.4).numpy())


def test_dropout_preserves_expectation_and_scales_kept_values() -> None:
    x = labkit.ones(200_000)
    y = F.dropout(x, 0.3, generator=labkit.Generator(0)).numpy()
    assert y.dtype == np.float32
    assert abs(y.mean() - 1.0) < 0.01
    assert abs((y == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)


def test_dropout_gradient_is_the_mask() -> None:
    x = labkit.randn(6, 7, requires_grad=True)
    y = F.dropout(x, 0.5, generator=labkit.Generator(1))
    y.backward(labkit.ones(6, 7))
    np.testing.assert_allclose(x.grad.numpy(), (y.numpy() != 0) * 2.0)


def test_dropout_identity_cases() -> None:
    x = labkit.randn(3, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_rejects_bad_p() -> None:
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout: p must be a probability in \[0, 1\)"):
            F.dropout(labkit.ones(3), p)


# ---- embedding ------------------------------------------------------------------------------


def test_embedding_padding_row_gets_zero_gradient(device: str) -> None:
    w = labkit.randn(5, 3, requires_grad=True, device=device)
    ids = labkit.tensor(IDS_PAD, device=device)
    out = F.embedding(ids, w, padding_idx=2)
    np.testing.assert_allclose(out.numpy(), w.numpy()[IDS_PAD])  # the padding row is still looked up
    out.sum().backward()
    counts = np.bincount(IDS_PAD, minlength=5).astype(np.float32)
    counts[2] = 0
    np.testing.assert_allclose(w.grad.numpy(), np.repeat(counts[:, None], 3, axis=1))


def test_embedding_negative_padding_idx_counts_from_the_end() -> None:
    w = labkit.randn(5, 2, requires_grad=True)
    F.embedding(labkit.tensor([4, 4, 1]), w, padding_idx=-1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy()[:, 0], [0, 1, 0, 0, 0])


def test_embedding_double_backward_respects_padding() -> None:
    w = labkit.randn(5, 3, dtype=labkit.float64, requires_grad=True)
    out = F.embedding(labkit.tensor(IDS_PAD), w, padding_idx=2)
    gy = labkit.randn(5, 3, dtype=labkit.float64, requires_grad=True)
    (gw,) = labkit.grad(out, [w], gy, create_graph=True)
    (ggy,) = labkit.grad((gw * gw).sum(), [gy])
    expected = 2 * gw.numpy()[IDS_PAD]
    expected[IDS_PAD == 2] = 0
    np.testing.assert_allclose(ggy.numpy(), expected)


def test_embedding_accepts_arrays_and_keeps_float32() -> None:
    w = labkit.randn(4, 2)
    out = F.embedding(np.array([[1, 2]]), w)
    assert out.shape == (1, 2, 2) and out.dtype == labkit.float32


def test_embedding_errors() -> None:
    w = labkit.randn(10, 3)
    with pytest.raises(ValueError, match=r"embedding: index 12 is out of range for 10 embeddings \(expected 0..9\)"):
        F.embedding(labkit.tensor([1, 12]), w)
    with pytest.raises(ValueError, match=r"embedding: index -1 is out of range"):
        F.embedding(labkit.tensor([-1, 2]), w)
    with pytest.raises(TypeError, match="embedding: ids must be an integer tensor, got dtype float32"):
        F.embedding(labkit.tensor([1.0]), w)
    with pytest.raises(ValueError, match=r"embedding: weight must be 2-D"):
        F.embedding(labkit.tensor([1]), labkit.randn(10))
    with pytest.raises(ValueError, match=r"embedding: padding_idx must be in \[-10, 10\), got 10"):
        F.embedding(labkit.tensor([1]), w, padding_idx=10)
