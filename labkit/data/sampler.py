"""Samplers: which dataset indices, in which order, in which batches.

Every random sampler holds one integer ``seed`` and an ``epoch``; the order of epoch
``e`` is a pure function of ``(seed, e)``. It is computed from the raw PCG64 stream of
``SeedSequence([seed, purpose, e])`` (both are stable across numpy versions and
platforms by numpy's policy) by a stable argsort of 64-bit keys, so a permutation is
the same on every machine, and resuming at epoch ``e`` needs only ``state_dict()``
(``{"seed", "epoch"}``). The ``DataLoader`` calls ``set_epoch`` before every epoch;
iterating a sampler twice without ``set_epoch`` moves on to the next epoch by itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from labkit.core.random import Generator, resolve

_MASK64 = (1 << 64) - 1
# "purpose" words keep the streams of samplers, batch generators and workers apart
PURPOSE_SHUFFLE, PURPOSE_BATCHES, PURPOSE_BATCH_RNG, PURPOSE_WORKER = 0, 1, 2, 3
PURPOSE_FOLDS = 4  # cross-validation folds (labkit.tasks.classification.cross_validation_fold)


def seed_from(generator: Generator | np.random.Generator | None) -> int:
    """A 64-bit seed drawn from ``generator``'s raw stream (the default generator when None)."""
    return int(resolve(generator).bit_generator.random_raw()) & _MASK64


def bit_stream(seed: int, *key: int) -> np.random.PCG64:
    """The PCG64 bit generator of ``SeedSequence([seed, *key])``: a stable, machine-independent stream."""
    return np.random.PCG64(np.random.SeedSequence([int(seed) & _MASK64, *(int(k) & _MASK64 for k in key)]))


def _shuffled(n: int, bits: np.random.PCG64) -> np.ndarray:
    keys = bits.random_raw(n)
    return np.argsort(keys, kind="stable").astype(np.int64)


def permutation(n: int, seed: int, epoch: int, purpose: int = PURPOSE_SHUFFLE) -> np.ndarray:
    """A permutation of ``range(n)`` (int64) that depends only on ``(seed, epoch, purpose)``."""
    return _shuffled(n, bit_stream(seed, purpose, epoch))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


class Sampler:
    """Yields dataset indices. Subclasses implement ``__iter__`` and ``__len__``."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Pin the epoch whose order the next iteration yields (a no-op for ordered samplers)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _EpochState:
    """The ``seed``/``epoch`` bookkeeping shared by the random samplers."""

    seed: int
    epoch: int
    _epoch_used: bool

    def _init_seed(self, generator: Generator | np.random.Generator | None, seed: int | None) -> None:
        if generator is not None and seed is not None:
            raise ValueError(f"{type(self).__name__}: expected generator or seed, got both")
        self.seed = int(seed) & _MASK64 if seed is not None else seed_from(generator)
        self.epoch = 0
        self._epoch_used = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = _check_int("set_epoch", epoch, 0)
        self._epoch_used = False

    def _next_epoch(self) -> int:
        if self._epoch_used:
            self.epoch += 1
        self._epoch_used = True
        return self.epoch

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"seed", "epoch"} - set(state)
        if missing:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected keys ['epoch', 'seed'], got {sorted(state)}"
            )
        self.seed = int(state["seed"]) & _MASK64
        self.set_epoch(int(state["epoch"]))


class RandomSampler(_EpochState, Sampler):
    """A random order of ``range(len(data_source))``, new each epoch.

    ``replacement=True`` draws ``num_samples`` indices uniformly with replacement;
    without replacement, ``num_samples`` larger than the dataset chains permutations.
    ``num_replicas``/``rank`` shard the epoch's order for data-parallel training: it is
    padded by wrapping around to a multiple of ``num_replicas`` and replica ``rank``
    takes every ``num_replicas``-th index from position ``rank``, so every replica gets
    the same count and the replicas together cover the epoch.
    """

    def __init__(
        self,
        data_source: Any,
        generator: Generator | np.random.Generator | None = None,
        replacement: bool = False,
        num_samples: int | None = None,
        seed: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = None if num_samples is None else _check_int("RandomSampler num_samples", num_samples, 1)
        self.num_replicas = _check_int("RandomSampler num_replicas", num_replicas, 1)
        self.rank = _check_int("RandomSampler rank", rank, 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"RandomSampler rank: expected 0 <= rank < num_replicas={num_replicas}, got {rank}")
        if len(data_source) == 0:
            raise ValueError("RandomSampler: expected a non-empty data_source, got 0 items")
        self._init_seed(generator, seed)

    @property
    def num_samples(self) -> int:
        """Indices per epoch before sharding."""
        return self._num_samples if self._num_samples is not None else len(self.data_source)

    def indices(self, epoch: int) -> np.ndarray:
        """This replica's indices for ``epoch`` (int64), without touching the sampler's state."""
        n, k = len(self.data_source), self.num_samples
        bits = bit_stream(self.seed, PURPOSE_SHUFFLE, epoch)
        if self.replacement:
            # modulo bias is below n / 2**64: negligible, and exact integer arithmetic everywhere
            order = (bits.random_raw(k) % np.uint64(n)).astype(np.int64)
        else:
            order = np.concatenate([_shuffled(n, bits) for _ in range(math.ceil(k / n))])[:k]
        if self.num_replicas > 1:
            total = math.ceil(k / self.num_replicas) * self.num_replicas
            order = np.resize(order, total)[self.rank :: self.num_replicas]  # np.resize repeats
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self._next_epoch()).tolist())

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas)


class BatchSampler(Sampler):
    """Groups ``sampler``'s indices into lists of ``batch_size``; ``drop_last`` drops a short last batch."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool = False) -> None:
        self.sampler = sampler
        self.batch_size = _check_int("BatchSampler batch_size", batch_size, 1)
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)


class BucketBatchSampler(_EpochState, Sampler):
    """Batches of similar length for RNN/text data, covering every index once per epoch.

    Each epoch: shuffle all indices (``shuffle=True``), cut them into chunks of
    ``bucket_size`` (rounded up to a multiple of ``batch_size``; default 50 batches),
    sort each chunk by ``lengths`` (stable), cut it into batches, then shuffle the order
    of the batches. Only the final chunk can leave a short batch; ``drop_last`` drops it.
    With ``shuffle=False`` chunks follow index order and batches keep their order.

    ``lengths``: (N,) non-negative ints, e.g. ``[len(tokens) for tokens in texts]``.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        generator: Generator | np.random.Generator | None = None,
        bucket_size: int | None = None,
        drop_last: bool = False,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or lengths.size == 0 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
            raise ValueError(
                f"BucketBatchSampler lengths: expected a non-empty 1-D sequence of non-negative ints, "
                f"got shape {lengths.shape} dtype {lengths.dtype}"
            )
        self.lengths = lengths.astype(np.int64)
        self.batch_size = _check_int("BucketBatchSampler batch_size", batch_size, 1)
        bucket = (
            50 * self.batch_size
            if bucket_size is None
            else _check_int("BucketBatchSampler bucket_size", bucket_size, 1)
        )
        self.bucket_size = math.ceil(bucket / self.batch_size) * self.batch_size
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self._init_seed(generator, seed)

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, without touching the sampler's state."""
        n, bs = len(self.lengths), self.batch_size
        bits = bit_stream(self.seed, PURPOSE_BATCHES, epoch)
        order = _shuffled(n, bits) if self.shuffle else np.arange(n, dtype=np.int64)
        out: list[list[int]] = []
        for start in range(0, n, self.bucket_size):
            chunk = order[start : start + self.bucket_size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out.extend(chunk[i : i + bs].tolist() for i in range(0, len(chunk), bs))
        if self.drop_last and len(out[-1]) < bs:
            out.pop()
        if self.shuffle:
            out = [out[i] for i in _shuffled(len(out), bits)]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self._next_epoch()))

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
