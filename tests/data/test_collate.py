"""default_collate and pad_collate: dtypes, nesting, padding, and the errors users see."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import labkit
from labkit.data.collate import default_collate, pad_collate

Pair = namedtuple("Pair", ["image", "label"])


def test_dtype_rules():
    out = default_collate([(1, 0.5, True, np.float64(2.0)), (2, 1.5, False, np.float64(3.0))])
    ints, floats, flags, doubles = out
    assert isinstance(ints, labkit.Tensor)
    assert ints.dtype == np.int64 and ints.tolist() == [1, 2]
    assert floats.dtype == np.float32 and floats.tolist() == [0.5, 1.5]
    assert flags.dtype == np.bool_ and flags.tolist() == [True, False]
    assert doubles.dtype == np.float64
    images = default_collate([np.zeros((2, 3), np.uint8), np.ones((2, 3), np.uint8)])
    assert images.shape == (2, 2, 3) and images.dtype == np.uint8
    assert default_collate([np.zeros(3), np.ones(3)]).dtype == np.float64  # float64 arrays stay float64
    assert default_collate([np.zeros(3, np.float32)]).dtype == np.float32


def test_nesting_dicts_namedtuples_strings_and_tensors():
    batch = [
        {"x": np.full(2, i, np.float32), "meta": {"name": f"n{i}", "id": i}, "t": labkit.tensor([i, i])}
        for i in range(3)
    ]
    out = default_collate(batch)
    assert out["x"].shape == (3, 2)
    assert out["meta"]["name"] == ["n0", "n1", "n2"]
    assert out["meta"]["id"].tolist() == [0, 1, 2]
    assert out["t"].tolist() == [[0, 0], [1, 1], [2, 2]]
    pairs = default_collate([Pair(np.zeros(4), 1), Pair(np.ones(4), 2)])
    assert isinstance(pairs, Pair) and pairs.image.shape == (2, 4) and pairs.label.tolist() == [1, 2]
    as_list = default_collate([[1, 2], [3, 4]])
    assert isinstance(as_list, list) and [t.tolist() for t in as_list] == [[1, 3], [2, 4]]


def test_shape_mismatch_names_the_field_and_shapes():
    batch = [{"image": np.zeros((3, 4))}, {"image": np.zeros((3, 5))}, {"image": np.zeros((3, 4))}]
    with pytest.raises(ValueError, match=r"field \['image'\].*\(3, 4\) at items 0, 2; \(3, 5\) at item 1.*pad_collate"):
        default_collate(batch)
    with pytest.raises(ValueError, match=r"field \[0\]"):
        default_collate([(np.zeros(2), 1), (np.zeros(3), 1)])


def test_structure_mismatch_errors():
    with pytest.raises(ValueError, match=r"keys \['a', 'b'\], got \['a'\] at item 1"):
        default_collate([{"a": 1, "b": 2}, {"a": 1}])
    with pytest.raises(ValueError, match="sequence of length 2, got length 3 at item 1"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(TypeError, match=r"field \[1\], got object"):
        default_collate([(1, object()), (2, object())])
    with pytest.raises(ValueError, match="non-empty list"):
        default_collate([])


def test_pad_collate_values_lengths_mask():
    seqs = [np.arange(3, dtype=np.float32), np.arange(1, dtype=np.float32), np.arange(4, dtype=np.float32)]
    padded, lengths, mask = pad_collate(seqs, padding_value=-1)
    assert padded.shape == (3, 4) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded.numpy(), [[0, 1, 2, -1], [0, -1, -1, -1], [0, 1, 2, 3]])
    assert lengths.dtype == np.int64 and lengths.tolist() == [3, 1, 4]
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask.numpy(), padded.numpy() != -1)


def test_pad_collate_features_labels_and_time_major():
    rng = np.random.default_rng(0)
    batch = [(rng.normal(size=(t, 2)), label) for t, label in [(2, 0), (5, 1), (3, 2)]]
    padded, _, mask, labels = pad_collate(batch)
    assert padded.shape == (3, 5, 2) and padded.dtype == np.float64
    assert labels.tolist() == [0, 1, 2] and labels.dtype == np.int64
    np.testing.assert_array_equal(padded.numpy()[1], batch[1][0])
    assert float(np.abs(padded.numpy()[0, 2:]).sum()) == 0.0
    time_major, _, mask_t, _ = pad_collate(batch, batch_first=False)
    assert time_major.shape == (5, 3, 2) and mask_t.shape == (5, 3)
    np.testing.assert_array_equal(time_major.numpy(), padded.numpy().transpose(1, 0, 2))
    np.testing.assert_array_equal(mask_t.numpy(), mask.numpy().T)
    tokens, _, _ = pad_collate([[5, 6, 7], [8]])
    assert tokens.dtype == np.int64 and tokens.tolist() == [[5, 6, 7], [8, 0, 0]]


def test_pad_collate_errors():
    with pytest.raises(ValueError, match=r"same shape after the time dimension.*\(2,\) at item 0; \(3,\) at item 1"):
        pad_collate([np.zeros((4, 2)), np.zeros((4, 3))])
    with pytest.raises(ValueError, match="expected item 1 to be a sequence"):
        pad_collate([np.zeros(3), 5])


def test_pad_collate_matches_torch():
    torch = pytest.importorskip("torch")
    seqs = [np.random.default_rng(i).normal(size=(t, 3)).astype(np.float32) for i, t in enumerate([4, 2, 6])]
    padded, _, _ = pad_collate(seqs, padding_value=0.5)
    expected = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=True, padding_value=0.5)
    np.testing.assert_array_equal(padded.numpy(), expected.numpy())
