"""``DataLoader``: batches from a dataset, in order, optionally prefetched by workers, resumable.

Determinism: the loader has one integer ``seed`` (given, or one 64-bit draw from
``generator`` / the default generator). Epoch ``e``'s order comes from the sampler's
``(seed, e)`` stream, and map-style batch ``b`` is loaded under a generator seeded by
``(seed, e, b)`` (``current_generator()``), so two loaders with the same seed yield the
same batches on every machine, with any ``num_workers`` and either ``worker_mode``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from labkit.backends.device import DeviceLike
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.collate import default_collate
from labkit.data.dataset import IterableDataset
from labkit.data.loader_workers import (
    END,
    IterableFetcher,
    MapFetcher,
    WorkerConfig,
    WorkerPool,
    current_generator,
    get_worker_info,
    stream_generator,
)
from labkit.data.sampler import BatchSampler, RandomSampler, SequentialSampler, seed_from

__all__ = ["DataLoader", "current_generator", "get_worker_info"]

_MODES = ("thread", "process")
_STATE_KEYS = ("batches_yielded", "epoch", "sampler", "seed")


def move_to(batch: Any, device: DeviceLike) -> Any:
    """``batch`` with every Tensor moved by ``.to(device)`` (recursing into tuples, lists, dicts)."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"DataLoader {name}: expected an int >= {low}, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate a dataset in batches of labkit Tensors.

    Args:
        dataset: map-style (``__getitem__``/``__len__``) or an ``IterableDataset``.
        batch_size, shuffle, drop_last: batching of the default ``BatchSampler``; shuffling
            uses ``RandomSampler(seed=...)`` from the loader's seed.
        sampler / batch_sampler: custom index order (``sampler``) or batches of indices
            (``batch_sampler``, e.g. ``BucketBatchSampler``; excludes batch_size, shuffle,
            sampler and drop_last). ``set_epoch``/``state_dict`` are called where they exist.
        num_workers: 0 loads in the main thread; N > 0 loads and collates in N workers,
            ``prefetch`` batches ahead per worker, while the training step runs. Batches
            still come out in sampler order.
        collate_fn: list of items -> batch (default ``default_collate``; ``pad_collate`` for sequences).
        seed / generator: the loader's seed (see the module docstring); give at most one.
        worker_mode: ``"thread"`` (default) or ``"process"``. Measured by
            ``benchmarks/loader_workers.py`` on this project's 2-core x86_64 machine
            (2,000 PNGs, Pillow decode + numpy normalise/flip, batch 32, shuffle; images/s,
            median of 3; "+ step": a labkit MLP forward/backward per batch in the main thread):

                                 28x28 grey          64x64 RGB
            workers  mode     load only  + step   load only  + step
            0        -            7,760   6,213       3,916   2,235
            1        thread       7,771   6,046       3,889   2,025
            2        thread       5,439   4,535       3,921   2,029
            1        process      6,549   5,015       3,379   1,523
            2        process     11,585   5,701       4,914   1,579

            Pillow releases the GIL while decoding, but images this small spend most of
            their time in Python, so threads do not scale; 2 processes load fastest alone,
            yet with a training step competing for the 2 cores no worker setting beats
            loading in the main thread, and processes pay for pickling every batch and
            ~20 ms of start-up per epoch. So the default is ``num_workers=0``, and
            ``"thread"`` when workers are asked for: as fast as the main thread, instant to
            start, no pickling, any dataset. Workers pay off for slow I/O (files on a network
            disk, decoding large JPEGs) and on machines with more cores; measure there.
        multiprocessing_context: start method for process workers (None: the platform's
            default, "fork" on Linux; "spawn" needs a picklable dataset and collate_fn).
        device: move every batch there with ``.to(device)`` (e.g. ``"cuda"``).
        worker_nice: raise the workers' niceness by this much (0-19; Linux/macOS, threads on
            Linux only) so that they run on the CPU time the training step leaves idle
            instead of competing with its BLAS threads (see benchmarks/data_loader.py).

    Epochs and resuming: each ``iter(loader)`` starts the next epoch (calling
    ``set_epoch(epoch)`` on the sampler). ``state_dict()`` records the epoch, the batches
    already yielded in it, the seed and the sampler's state; after ``load_state_dict()``
    the next iteration continues that epoch with exactly the batches an uninterrupted
    loader would have yielded. Map-style datasets skip the done batches without loading
    them; iterable datasets read and drop them.

    Workers are shut down when the iteration ends, on ``break`` (the iterator is closed or
    collected), on an exception such as ``KeyboardInterrupt``, and on garbage collection.
    An exception in a worker is re-raised in the main thread with a note naming the
    worker and the dataset index that failed.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        drop_last: bool = False,
        prefetch: int = 2,
        seed: int | None = None,
        generator: Generator | np.random.Generator | None = None,
        worker_mode: str = "thread",
        multiprocessing_context: str | None = None,
        device: DeviceLike | None = None,
        worker_nice: int = 0,
    ) -> None:
        self.dataset = dataset
        self.iterable = isinstance(dataset, IterableDataset)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.drop_last = bool(drop_last)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.prefetch = _check_int("prefetch", prefetch, 1)
        self.worker_nice = _check_int("worker_nice", worker_nice, 0)
        if self.worker_nice > 19:
            raise ValueError(f"DataLoader worker_nice: expected 0..19, got {worker_nice!r}")
        if worker_mode not in _MODES:
            raise ValueError(f"DataLoader worker_mode: expected one of {list(_MODES)}, got {worker_mode!r}")
        self.worker_mode = worker_mode
        self.multiprocessing_context = multiprocessing_context
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.device = device
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: expected seed or generator, got both")
        self.seed = int(seed) if seed is not None else seed_from(generator)
        if self.iterable:
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError(
                    "DataLoader: an IterableDataset decides its own order; expected no shuffle or samplers"
                )
            self.sampler, self.batch_sampler = None, None
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader batch_sampler: expected it alone, got it with batch_size, shuffle, sampler or drop_last"
                )
            self.sampler, self.batch_sampler = None, batch_sampler
        else:
            if shuffle and sampler is not None:
                raise ValueError("DataLoader: expected shuffle=True or a sampler, got both")
            if sampler is None:
                sampler = RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            self.sampler = sampler
            self.batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)
        self._epoch = 0  # the epoch in progress, or the next one to start
        self._yielded = 0  # batches yielded in self._epoch
        self._started = False  # whether self._epoch has been started by an iteration
        self._run = 0  # which iteration owns the counters (the latest one)

    # ---- length, epochs, state ---------------------------------------------------

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        if not hasattr(self.dataset, "__len__"):
            raise TypeError(f"len(DataLoader): the IterableDataset {type(self.dataset).__name__} has no __len__")
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch in progress, or the next one an iteration will start."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration start ``epoch`` from its first batch."""
        self._epoch, self._yielded, self._started = _check_int("set_epoch", epoch, 0), 0, False

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batches_yielded", "seed", "sampler"}``: JSON-able, for checkpoints."""
        holder = self.batch_sampler
        sampler_state = holder.state_dict() if holder is not None and hasattr(holder, "state_dict") else {}
        return {"epoch": self._epoch, "batches_yielded": self._yielded, "seed": self.seed, "sampler": sampler_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration resumes its epoch after its yielded batches."""
        if not isinstance(state, dict) or sorted(state) != sorted(_STATE_KEYS):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"DataLoader.load_state_dict: expected keys {sorted(_STATE_KEYS)}, got {got}")
        epoch = _check_int("state epoch", state["epoch"], 0)
        yielded = _check_int("state batches_yielded", state["batches_yielded"], 0)
        self.seed = int(state["seed"])
        if state["sampler"] and self.batch_sampler is not None and hasattr(self.batch_sampler, "load_state_dict"):
            self.batch_sampler.load_state_dict(state["sampler"])
        self._epoch, self._yielded, self._started = epoch, yielded, False

    # ---- iteration ----------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        if self._started:  # the previous iteration ended early (break): begin the next epoch
            self._epoch, self._yielded = self._epoch + 1, 0
        self._started = True
        self._run += 1
        epoch, skip = self._epoch, self._yielded
        if self.batch_sampler is not None and hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        elif self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if self.iterable:
            batches = self._iterable_batches(epoch, skip)
        else:
            batches = self._map_batches(epoch, skip)
        return self._track(batches, self._run)

    def _track(self, batches: Iterator[Any], run: int) -> Iterator[Any]:
        try:
            for batch in batches:
                if self.device is not None:
                    batch = move_to(batch, self.device)
                if run == self._run:
                    self._yielded += 1
                yield batch
            if run == self._run:
                self._epoch, self._yielded, self._started = self._epoch + 1, 0, False
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # shuts the workers down now, not whenever the generator is collected

    def _config(self, epoch: int) -> WorkerConfig:
        return WorkerConfig(
            self.dataset,
            self.collate_fn,
            self.seed,
            epoch,
            self.num_workers,
            self.worker_mode,
            self.iterable,
            self.batch_size,
            self.drop_last,
            self.worker_nice,
        )

    def _map_batches(self, epoch: int, skip: int) -> Iterator[Any]:
        index_batches = enumerate(itertools.islice(iter(self.batch_sampler), skip, None), start=skip)
        if self.num_workers == 0:
            fetcher = MapFetcher(self.dataset, self.collate_fn, self.seed, epoch, "main thread")
            for b, indices in index_batches:
                yield fetcher.fetch(b, list(indices))
            return
        workers = self.num_workers
        pool = WorkerPool(self._config(epoch), self.multiprocessing_context)
        try:
            submitted = 0

            def submit() -> bool:
                nonlocal submitted
                nxt = next(index_batches, None)
                if nxt is None:
                    return False
                pool.submit(submitted % workers, (submitted, nxt[0], [int(i) for i in nxt[1]]))
                submitted += 1
                return True

            while submitted < workers * self.prefetch and submit():
                pass
            seq = 0
            while seq < submitted:
                _, batch = pool.get(seq % workers, seq)
                submit()  # keep the worker that just delivered busy while the caller trains
                seq += 1
                yield batch
        finally:
            pool.shutdown()

    def _iterable_batches(self, epoch: int, skip: int) -> Iterator[Any]:
        """The stream's batches (round-robin over workers), reading and dropping the first ``skip``."""
        stream = self._iterable_stream(epoch)
        try:
            for position, batch in enumerate(stream):
                if position >= skip:
                    yield batch
        finally:
            stream.close()

    def _iterable_stream(self, epoch: int) -> Iterator[Any]:
        if self.num_workers == 0:
            gen = stream_generator(self.seed, epoch, 0)
            fetcher = IterableFetcher(
                self.dataset, self.collate_fn, self.batch_size, self.drop_last, gen, "main thread"
            )
            while True:
                try:
                    batch = fetcher.next_batch()
                except StopIteration:
                    return
                yield batch
        pool = WorkerPool(self._config(epoch), self.multiprocessing_context)
        try:
            submitted = [0] * self.num_workers
            received = [0] * self.num_workers
            for w in range(self.num_workers):
                for _ in range(self.prefetch):
                    pool.submit(w, (submitted[w],))
                    submitted[w] += 1
            turns = deque(range(self.num_workers))  # round-robin over workers whose stream goes on
            while turns:
                w = turns.popleft()
                kind, batch = pool.get(w, received[w])
                received[w] += 1
                if kind == END:
                    continue
                pool.submit(w, (submitted[w],))
                submitted[w] += 1
                turns.append(w)
                yield batch
        finally:
            pool.shutdown()
