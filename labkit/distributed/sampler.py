"""Each rank's shard of every batch, and per-rank random streams.

The global batch of one data-parallel step is what one process would train on: with
``data.batch_size = B`` on ``N`` ranks it is ``N * B`` examples drawn by the run's seeded
sampler, and rank ``r`` reads the ``r``-th of its ``N`` contiguous parts. Every rank builds
the same sampler from the same seed, so no indices are exchanged; together the ranks read
exactly the batches a single process with batch size ``N * B`` would read, in the same order.

A short last global batch is split as evenly as possible (``np.array_split``); one with
fewer than ``N`` examples is dropped so every rank takes the same number of steps (ranks
that disagree on that would wait for each other forever). Loaders with their own batch
sampler (``BucketBatchSampler``) are sharded by batches instead: rank ``r`` takes batches
``r, r + N, r + 2N, ...`` and a last incomplete group of ``N`` is dropped.

Randomness that must differ between ranks (dropout masks, per-batch augmentation) comes
from streams that rank ``r > 0`` jumps ``r`` times ahead (``PCG64.jumped``); rank 0 keeps
the streams of a single-process run, so a 1-rank ``ddp`` run equals a ``single`` one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from labkit.core.random import Generator
from labkit.data.sampler import BatchSampler, bit_stream

log = logging.getLogger("labkit.distributed")

#: the purpose word of per-rank loader seeds (labkit.data.sampler uses 0-3)
PURPOSE_RANK_SEED = 7


def _check_rank(where: str, num_replicas: Any, rank: Any) -> tuple[int, int]:
    for key, value, low in (("num_replicas", num_replicas, 1), ("rank", rank, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{where} {key}: expected an int >= {low}, got {value!r}")
    if rank >= num_replicas:
        raise ValueError(f"{where} rank: expected 0 <= rank < num_replicas={num_replicas}, got {rank}")
    return int(num_replicas), int(rank)


class ShardedBatchSampler:
    """Rank ``rank``'s part of every batch of ``batch_sampler`` (which yields the global batches).

    ``mode="split"``: each global batch (a list of indices) is cut into ``num_replicas``
    contiguous parts. ``mode="round_robin"``: batch ``i`` goes to rank ``i % num_replicas``.
    ``set_epoch``, ``state_dict`` and ``load_state_dict`` go to ``batch_sampler``, so the
    loader's resume state is the same on every rank.
    """

    def __init__(self, batch_sampler: Any, num_replicas: int, rank: int, mode: str = "split") -> None:
        self.num_replicas, self.rank = _check_rank("ShardedBatchSampler", num_replicas, rank)
        if mode not in ("split", "round_robin"):
            raise ValueError(f"ShardedBatchSampler mode: expected 'split' or 'round_robin', got {mode!r}")
        self.batch_sampler, self.mode = batch_sampler, mode
        self.dropped = 0  # global batches dropped because they had fewer examples than ranks

    def __iter__(self) -> Iterator[list[int]]:
        n, r = self.num_replicas, self.rank
        if self.mode == "round_robin":
            group: list[list[int]] = []
            for batch in self.batch_sampler:
                group.append(list(batch))
                if len(group) == n:
                    yield group[r]
                    group = []
            return
        for batch in self.batch_sampler:
            if len(batch) < n:
                self.dropped += 1
                log.debug("dropping a last batch of %d examples: fewer than the %d ranks", len(batch), n)
                continue
            yield [int(i) for i in np.array_split(np.asarray(batch), n)[r]]

    def __len__(self) -> int:
        total = len(self.batch_sampler)
        if self.mode == "round_robin":
            return total // self.num_replicas
        last = _last_batch_size(self.batch_sampler)
        return total - 1 if last is not None and 0 < last < self.num_replicas else total

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.batch_sampler.state_dict() if hasattr(self.batch_sampler, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.batch_sampler, "load_state_dict"):
            self.batch_sampler.load_state_dict(state)


def _last_batch_size(batch_sampler: Any) -> int | None:
    """The size of a ``BatchSampler``'s last batch, when it can be known without iterating."""
    if not isinstance(batch_sampler, BatchSampler):
        return None
    n = len(batch_sampler.sampler)
    rest = n % batch_sampler.batch_size
    return 0 if batch_sampler.drop_last else rest


def shard_loader(loader: Any, num_replicas: int, rank: int) -> Any:
    """Make ``loader`` (a ``labkit.data.DataLoader``) yield rank ``rank``'s shard of every global batch.

    A loader with the default ``BatchSampler`` (batch size ``B``) is given a global batch
    sampler of ``num_replicas * B`` indices over the same sampler, split by rank; a loader
    with its own ``batch_sampler`` is sharded round-robin by batches. The loader's seed for
    per-batch randomness (augmentation) becomes :func:`rank_seed` of it. Changes ``loader``
    in place and returns it.

    Raises:
        TypeError: ``loader`` has no index batches to shard (an ``IterableDataset``, another class).
    """
    num_replicas, rank = _check_rank("shard_loader", num_replicas, rank)
    batch_sampler = getattr(loader, "batch_sampler", None)
    if batch_sampler is None:
        raise TypeError(
            "trainer.strategy=ddp: expected a train loader over a map-style dataset (a labkit DataLoader with a "
            f"batch sampler), got {type(loader).__name__}"
            + (" over an IterableDataset" if getattr(loader, "iterable", False) else "")
        )
    if num_replicas == 1:
        return loader
    if type(batch_sampler) is BatchSampler:
        global_batches = BatchSampler(batch_sampler.sampler, batch_sampler.batch_size * num_replicas, loader.drop_last)
        loader.batch_sampler = ShardedBatchSampler(global_batches, num_replicas, rank, "split")
    else:
        loader.batch_sampler = ShardedBatchSampler(batch_sampler, num_replicas, rank, "round_robin")
    loader.seed = rank_seed(loader.seed, rank)
    return loader


def rank_seed(seed: int, rank: int) -> int:
    """A 64-bit seed for rank ``rank`` derived from ``seed`` (``seed`` itself for rank 0)."""
    if rank == 0:
        return int(seed)
    return int(bit_stream(seed, PURPOSE_RANK_SEED, rank).random_raw()) & 0xFFFF_FFFF_FFFF_FFFF


def jump_generator(generator: Generator, rank: int) -> None:
    """Move ``generator`` to rank ``rank``'s stream, in place: its PCG64 state jumped ``rank`` times.

    Modules holding the generator (dropout layers) draw from the rank's stream from then on.
    """
    if rank == 0:
        return
    bits = generator.np.bit_generator
    if not hasattr(bits, "jumped"):
        raise TypeError(
            f"trainer.strategy=ddp: expected generators whose bit generator can jump (PCG64), got {type(bits).__name__}"
        )
    generator.np = np.random.Generator(bits.jumped(rank))
