"""Sharding of the train loader by rank: the ranks together read exactly one process's global batches."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.core.random import Generator
from labkit.data.dataset import IterableDataset, TensorDataset
from labkit.data.loader import DataLoader
from labkit.data.sampler import BucketBatchSampler
from labkit.distributed.sampler import ShardedBatchSampler, jump_generator, rank_seed, shard_loader


def _dataset(n: int) -> TensorDataset:
    return TensorDataset(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64) * 10)


def _ids(batch) -> list[int]:
    return batch[0].numpy().tolist()


@pytest.mark.parametrize(("n", "ranks", "batch"), [(53, 2, 4), (64, 4, 4), (50, 3, 5), (17, 2, 8)])
def test_the_shards_of_every_step_make_up_one_process_batch(n, ranks, batch):
    single = DataLoader(_dataset(n), batch_size=batch * ranks, shuffle=True, seed=11)
    shards = [
        shard_loader(DataLoader(_dataset(n), batch_size=batch, shuffle=True, seed=11), ranks, r) for r in range(ranks)
    ]
    for epoch in range(2):  # the order changes with the epoch, the same way for every rank
        expected = [_ids(b) for b in single]
        per_rank = [[_ids(b) for b in loader] for loader in shards]
        assert all(len(steps) == len(per_rank[0]) for steps in per_rank)  # every rank takes the same steps
        kept = [b for b in expected if len(b) >= ranks]  # a last batch with fewer examples than ranks is dropped
        assert len(per_rank[0]) == len(kept) == len(shards[0]), epoch
        for step, global_batch in enumerate(kept):
            parts = [per_rank[r][step] for r in range(ranks)]
            assert [i for part in parts for i in part] == global_batch  # contiguous parts, in rank order
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_tiny_last_batch_is_dropped_so_no_rank_gets_an_empty_one():
    loader = shard_loader(DataLoader(_dataset(17), batch_size=4, shuffle=False), 2, 1)  # global 8: 8, 8, 1
    assert len(loader) == 2 and [len(_ids(b)) for b in loader] == [4, 4]
    assert loader.batch_sampler.dropped == 1


def test_sharded_loader_resumes_mid_epoch_with_the_same_shards():
    def make(rank: int) -> DataLoader:
        return shard_loader(DataLoader(_dataset(40), batch_size=3, shuffle=True, seed=5), 2, rank)

    for rank in (0, 1):
        full = [_ids(b) for b in make(rank)]
        first = make(rank)
        it = iter(first)
        head = [_ids(next(it)) for _ in range(3)]
        state = first.state_dict()
        resumed = make(rank)
        resumed.load_state_dict(state)
        assert head + [_ids(b) for b in resumed] == full


def test_own_batch_samplers_are_sharded_round_robin():
    lengths = np.random.default_rng(0).integers(1, 30, size=45)
    inner = list(BucketBatchSampler(lengths, 4, seed=3))
    shards = [list(ShardedBatchSampler(BucketBatchSampler(lengths, 4, seed=3), 3, r, "round_robin")) for r in range(3)]
    groups = len(inner) // 3
    assert [len(s) for s in shards] == [groups] * 3
    for r in range(3):
        assert shards[r] == inner[r : 3 * groups : 3]
    loader = shard_loader(DataLoader(_dataset(45), batch_sampler=BucketBatchSampler(lengths, 4, seed=3)), 3, 2)
    assert len(loader) == groups and [_ids(b) for b in loader] == inner[2 : 3 * groups : 3]


def test_per_rank_seeds_and_streams_differ_and_are_deterministic():
    assert rank_seed(123, 0) == 123
    assert rank_seed(123, 1) == rank_seed(123, 1) != rank_seed(123, 2) != 123
    loaders = [shard_loader(DataLoader(_dataset(8), batch_size=2, shuffle=True, seed=9), 2, r) for r in (0, 1)]
    assert loaders[0].seed == 9 and loaders[1].seed == rank_seed(9, 1)  # per-batch augmentation streams
    draws = []
    for rank in (0, 1, 1):
        g = Generator(4)
        jump_generator(g, rank)
        draws.append(g.np.random(3).tolist())
    assert draws[0] == Generator(4).np.random(3).tolist()  # rank 0 keeps the single-process stream
    assert draws[1] == draws[2] and draws[1] != draws[0]


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="rank: expected 0 <= rank < num_replicas=2, got 2"):
        shard_loader(DataLoader(_dataset(4), batch_size=2), 2, 2)
    with pytest.raises(ValueError, match="mode: expected 'split' or 'round_robin'"):
        ShardedBatchSampler([[0]], 2, 0, "interleave")

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(4))

    with pytest.raises(TypeError, match=r"map-style dataset .* over an IterableDataset"):
        shard_loader(DataLoader(Stream(), batch_size=2), 2, 0)
    g = Generator(0)
    g.np = np.random.Generator(np.random.SFC64(0))
    with pytest.raises(TypeError, match="can jump"):
        jump_generator(g, 1)
