"""pad_sequence, lengths_to_mask, unpad_sequence."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.nn.recurrent import GRU
from labkit.nn.sequence import lengths_to_mask, pad_sequence, unpad_sequence
from labkit.testing import gradcheck


def _seqs(rng: np.random.Generator, lengths: list[int], features: int = 2) -> list[labkit.Tensor]:
    return [labkit.tensor(rng.standard_normal((n, features)), requires_grad=True) for n in lengths]


def test_pad_sequence_layouts_and_padding_value() -> None:
    seqs = _seqs(np.random.default_rng(0), [2, 4, 1])
    time_major = pad_sequence(seqs, padding_value=-1.0)
    assert time_major.shape == (4, 3, 2)
    np.testing.assert_array_equal(time_major.numpy()[:2, 0], seqs[0].numpy())
    assert (time_major.numpy()[2:, 0] == -1.0).all() and (time_major.numpy()[1:, 2] == -1.0).all()
    batch_major = pad_sequence(seqs, batch_first=True)
    np.testing.assert_array_equal(batch_major.numpy(), pad_sequence(seqs).numpy().transpose(1, 0, 2))
    assert not batch_major.numpy()[0, 2:].any()
    left = pad_sequence(seqs, batch_first=True, padding_side="left")
    np.testing.assert_array_equal(left.numpy()[2, 3], seqs[2].numpy()[0])
    assert not left.numpy()[2, :3].any()


def test_pad_sequence_is_differentiable_and_matches_torch() -> None:
    rng = np.random.default_rng(1)
    seqs = _seqs(rng, [3, 1, 2])
    gradcheck(lambda *s: pad_sequence(list(s), batch_first=True), seqs)
    torch = pytest.importorskip("torch")
    ours = pad_sequence(seqs, padding_value=0.5).numpy()
    theirs = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s.numpy()) for s in seqs], padding_value=0.5)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_pad_sequence_with_lengths_feeds_a_recurrent_layer() -> None:
    rng = np.random.default_rng(2)
    gru = GRU(2, 3, batch_first=True, generator=labkit.Generator(0))
    lengths = [3, 1, 2]
    seqs = [labkit.tensor(rng.standard_normal((n, 2)).astype(np.float32)) for n in lengths]
    out, h = gru(pad_sequence(seqs, batch_first=True), lengths=lengths)
    for b, (s, piece) in enumerate(zip(seqs, unpad_sequence(out, lengths, batch_first=True), strict=True)):
        alone, h_alone = gru(s.reshape(1, *s.shape))
        np.testing.assert_allclose(piece.numpy(), alone.numpy()[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h.numpy()[:, b], h_alone.numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask([2, 0, 3])
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask.numpy(), [[True, True, False], [False, False, False], [True, True, True]])
    assert lengths_to_mask(labkit.tensor([1, 2]), max_len=4).shape == (2, 4)
    assert lengths_to_mask(np.array([1, 2], dtype=np.int32)).numpy().sum() == 3


def test_unpad_sequence_inverts_pad_sequence() -> None:
    seqs = _seqs(np.random.default_rng(3), [2, 5, 3], features=1)
    for batch_first in (False, True):
        back = unpad_sequence(pad_sequence(seqs, batch_first=batch_first), [2, 5, 3], batch_first=batch_first)
        for a, b in zip(back, seqs, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_errors_name_the_function() -> None:
    with pytest.raises(TypeError, match="pad_sequence: expected a list or tuple of Tensors, got Tensor"):
        pad_sequence(labkit.zeros(2, 3))
    with pytest.raises(ValueError, match="pad_sequence: expected at least one sequence"):
        pad_sequence([])
    with pytest.raises(ValueError, match=r"pad_sequence: expected every sequence of shape \(L, \*\(2,\)\)"):
        pad_sequence([labkit.zeros(2, 2), labkit.zeros(2, 3)])
    with pytest.raises(ValueError, match="pad_sequence: expected padding_side 'right' or 'left', got 'top'"):
        pad_sequence([labkit.zeros(2, 2)], padding_side="top")
    with pytest.raises(ValueError, match=r"lengths_to_mask: expected lengths >= 0 and at most the padded length 2"):
        lengths_to_mask([1, 3], max_len=2)
    with pytest.raises(TypeError, match="lengths_to_mask: expected integer lengths, got dtype float64"):
        lengths_to_mask([1.5, 2.0])
    with pytest.raises(ValueError, match=r"unpad_sequence: expected one length per sequence, shape \(3,\)"):
        unpad_sequence(labkit.zeros(4, 3, 2), [1, 2])
