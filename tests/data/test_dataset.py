"""Datasets, random_split and samplers: contents, determinism, state, errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import labkit
from labkit.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from labkit.data.sampler import (
    BatchSampler,
    BucketBatchSampler,
    RandomSampler,
    SequentialSampler,
    permutation,
)


class Squares(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index * index


# ---- datasets ------------------------------------------------------------------------


def test_tensor_dataset_items_and_tensors_become_numpy():
    x = np.arange(12.0).reshape(6, 2)
    y = labkit.tensor(np.arange(6))
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, [8.0, 9.0])
    assert isinstance(yi, np.integer) and yi == 4


def test_tensor_dataset_length_mismatch_names_the_argument():
    with pytest.raises(ValueError, match=r"expected every array to have 5 rows.*got 4 rows in argument 1"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="expected at least one array"):
        TensorDataset()


def test_subset_concat_and_add():
    ds = Squares(5)
    sub = Subset(ds, [4, 0, 2])
    assert [sub[i] for i in range(len(sub))] == [16, 0, 4]
    both = ConcatDataset([Squares(3), Squares(2)])
    assert len(both) == 5
    assert [both[i] for i in range(5)] == [0, 1, 4, 0, 1]
    assert both[-1] == 1
    assert [(Squares(2) + Squares(1))[i] for i in range(3)] == [0, 1, 0]
    with pytest.raises(IndexError, match="out of range"):
        both[5]
    with pytest.raises(IndexError, match=r"expected indices in \[0, 5\)"):
        Subset(ds, [0, 7])


# ---- random_split ------------------------------------------------------------------------


def test_random_split_is_reproducible_and_pinned():
    ds = Squares(10)
    a = random_split(ds, [7, 3], seed=0)
    b = random_split(ds, [7, 3], seed=0)
    assert [s.indices for s in a] == [s.indices for s in b]
    # the split is a pure function of the seed: the same numbers on every machine
    assert a[0].indices == [3, 2, 1, 8, 6, 0, 7] and a[1].indices == [4, 5, 9]
    assert random_split(ds, [7, 3], seed=1)[0].indices != a[0].indices
    g1 = [s.indices for s in random_split(ds, [5, 5], generator=labkit.Generator(3))]
    g2 = [s.indices for s in random_split(ds, [5, 5], generator=labkit.Generator(3))]
    assert g1 == g2


@pytest.mark.parametrize(
    ("fractions", "n", "expected"),
    [([0.8, 0.2], 10, [8, 2]), ([0.34, 0.33, 0.33], 10, [4, 3, 3]), ([0.5, 0.5], 7, [4, 3]), ([1.0], 3, [3])],
)
def test_random_split_fractions(fractions, n, expected):
    parts = random_split(Squares(n), fractions, seed=5)
    assert [len(p) for p in parts] == expected
    everything = sorted(i for p in parts for i in p.indices)
    assert everything == list(range(n))  # disjoint and complete


def test_random_split_bad_lengths():
    with pytest.raises(ValueError, match="summing to 10"):
        random_split(Squares(10), [6, 3], seed=0)
    with pytest.raises(ValueError, match="fractions in"):
        random_split(Squares(10), [0.6, 0.3], seed=0)
    with pytest.raises(ValueError, match="expected generator or seed, got both"):
        random_split(Squares(10), [5, 5], generator=labkit.Generator(0), seed=0)


# ---- samplers ---------------------------------------------------------------------------


def test_permutation_is_pinned():
    assert permutation(8, 0, 0).tolist() == [3, 2, 1, 6, 0, 7, 4, 5]
    assert permutation(8, 0, 1).tolist() == [7, 6, 4, 5, 3, 1, 0, 2]


def test_sequential_sampler():
    assert list(SequentialSampler(Squares(4))) == [0, 1, 2, 3]


def test_random_sampler_epochs_are_pure_functions_of_seed_and_epoch():
    ds = Squares(50)
    s = RandomSampler(ds, seed=7)
    first, second = list(s), list(s)  # iterating again moves on to the next epoch
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != second
    other = RandomSampler(ds, generator=labkit.Generator(1), seed=None)
    other.load_state_dict(json.loads(json.dumps(s.state_dict())))  # state is JSON-able
    assert other.epoch == 1
    assert list(other) == second
    other.set_epoch(0)
    assert list(other) == first
    fresh = RandomSampler(ds, seed=7)
    fresh.set_epoch(1)
    assert list(fresh) == second


def test_random_sampler_replacement_and_num_samples():
    ds = Squares(5)
    drawn = list(RandomSampler(ds, seed=0, replacement=True, num_samples=200))
    assert len(drawn) == 200 and set(drawn) == set(range(5))
    chained = list(RandomSampler(ds, seed=0, num_samples=12))
    assert len(chained) == 12 and sorted(chained[:5]) == list(range(5)) and sorted(chained[5:10]) == list(range(5))


def test_random_sampler_shards_cover_the_epoch():
    ds = Squares(11)
    shards = [list(RandomSampler(ds, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*map(set, shards)) == set(range(11))
    with pytest.raises(ValueError, match="rank"):
        RandomSampler(ds, seed=0, num_replicas=2, rank=2)


def test_random_sampler_errors():
    with pytest.raises(ValueError, match="expected generator or seed, got both"):
        RandomSampler(Squares(3), generator=labkit.Generator(0), seed=1)
    with pytest.raises(ValueError, match="expected keys"):
        RandomSampler(Squares(3), seed=1).load_state_dict({"epoch": 1})


def test_batch_sampler_drop_last():
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        BatchSampler(range(7), 0)


def _lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 200, size=n)


def test_bucket_batches_cover_every_index_once_with_low_spread():
    lengths = _lengths()
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=320)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1000))  # every index exactly once
        assert len(batches) == len(sampler) == 63
        assert sum(len(b) < 16 for b in batches) == 1
        spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
        random_spread = np.mean([lengths[b].max() - lengths[b].min() for b in np.array_split(np.arange(1000), 63)])
        assert spread < 0.1 * random_spread  # random batches spread ~170; buckets of 320 ~10
    sampler.set_epoch(0)
    again = BucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=320)
    again.set_epoch(0)
    assert list(sampler) == list(again)
    sampler.set_epoch(1)
    assert list(sampler) != again.batches(0)


def test_bucket_drop_last_no_shuffle_and_errors():
    lengths = _lengths(100)
    dropped = list(BucketBatchSampler(lengths, 16, seed=0, drop_last=True))
    assert len(dropped) == 6 and all(len(b) == 16 for b in dropped)
    ordered = BucketBatchSampler(lengths, 10, shuffle=False, bucket_size=50)
    batches = list(ordered)
    assert sorted(batches[0] + batches[1] + batches[2] + batches[3] + batches[4]) == list(range(50))
    assert [lengths[b].max() <= lengths[n].min() for b, n in itertools.pairwise(batches[:5])] == [True] * 4
    with pytest.raises(ValueError, match="non-negative ints"):
        BucketBatchSampler([1.5, 2.0], 2, seed=0)
    with pytest.raises(ValueError, match="non-negative ints"):
        BucketBatchSampler([], 2, seed=0)
