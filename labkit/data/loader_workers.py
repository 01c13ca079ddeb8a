"""The DataLoader's background workers: fetching batches in threads or processes.

A worker reads tasks from its own queue, loads and collates one batch per task and
puts ``(worker_id, seq, kind, payload)`` on the shared result queue; the main thread
asks each worker in turn, so batches come out in order. Map-style batch ``b`` gets a
generator seeded by ``(seed, epoch, b)`` (``current_generator()``), so random
augmentations do not depend on ``num_workers``, the worker mode or a resume.

Inside a worker, ``get_worker_info()`` says which worker this is; an
``IterableDataset`` uses it to read a distinct shard.
"""

from __future__ import annotations

import contextvars
import itertools
import multiprocessing
import os
import pickle
import queue
import random
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.core import random as lk_random
from labkit.core.random import Generator
from labkit.data.sampler import PURPOSE_BATCH_RNG, PURPOSE_WORKER, bit_stream

OK, END, ERROR = 0, 1, 2
_POLL_S = 0.2  # how often a waiting main thread checks that its workers are still alive


@dataclass(frozen=True)
class WorkerInfo:
    """What a DataLoader worker knows about itself (``get_worker_info()`` inside a worker).

    ``seed`` is this worker's seed for this epoch, from ``(loader seed, epoch, id)``;
    ``dataset`` is the worker's copy of the dataset (the same object in thread mode).
    """

    id: int
    num_workers: int
    seed: int
    dataset: Any
    mode: str  # "thread" | "process"


_worker_info: contextvars.ContextVar[WorkerInfo | None] = contextvars.ContextVar("labkit_worker_info", default=None)
_generator: contextvars.ContextVar[Generator | None] = contextvars.ContextVar("labkit_batch_generator", default=None)


def get_worker_info() -> WorkerInfo | None:
    """This DataLoader worker's ``WorkerInfo``, or None in the main process/thread."""
    return _worker_info.get()


def current_generator() -> Generator | None:
    """The generator of the batch being loaded (None outside a DataLoader).

    Map-style datasets: seeded by ``(loader seed, epoch, batch index)``, the same with
    0, 1 or 8 workers, threads or processes, and after ``load_state_dict``. Iterable
    datasets: one per worker and epoch. Random transforms should draw from it when
    they were given no generator of their own.
    """
    return _generator.get()


def generator_for(seed: int, *key: int) -> Generator:
    """A labkit ``Generator`` on the stable stream of ``SeedSequence([seed, *key])``."""
    gen = Generator.__new__(Generator)
    gen.seed = None
    gen.np = np.random.Generator(bit_stream(seed, *key))
    return gen


def stream_generator(seed: int, epoch: int, worker_id: int) -> Generator:
    """The generator an iterable dataset's stream sees in worker ``worker_id`` (0 in the main thread)."""
    return generator_for(seed, PURPOSE_WORKER, epoch, worker_id, 1)


def worker_seed(seed: int, epoch: int, worker_id: int) -> int:
    return int(bit_stream(seed, PURPOSE_WORKER, epoch, worker_id).random_raw()) & 0xFFFF_FFFF_FFFF_FFFF


class MapFetcher:
    """Loads and collates the batch of given indices of a map-style dataset."""

    def __init__(self, dataset: Any, collate_fn: Callable[[list[Any]], Any], seed: int, epoch: int, where: str):
        self.dataset, self.collate_fn, self.seed, self.epoch, self.where = dataset, collate_fn, seed, epoch, where

    def fetch(self, batch: int, indices: list[int]) -> Any:
        token = _generator.set(generator_for(self.seed, PURPOSE_BATCH_RNG, self.epoch, batch))
        try:
            items = self.load(batch, indices)
            try:
                return self.collate_fn(items)
            except Exception as e:
                shown = indices if len(indices) <= 8 else [*indices[:8], "..."]
                e.add_note(f"DataLoader ({self.where}): failed collating batch {batch} (dataset indices {shown})")
                raise
        finally:
            _generator.reset(token)

    def load(self, batch: int, indices: list[int]) -> list[Any]:
        """The items at ``indices``: ``dataset.__getitems__(indices)`` when the dataset has it, else one by one."""
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            try:
                items = list(getitems(indices))
            except Exception as e:
                shown = indices if len(indices) <= 8 else [*indices[:8], "..."]
                e.add_note(f"DataLoader ({self.where}): failed loading dataset indices {shown} (batch {batch})")
                raise
            if len(items) != len(indices):
                raise ValueError(
                    f"DataLoader ({self.where}): {type(self.dataset).__name__}.__getitems__ returned "
                    f"{len(items)} items for {len(indices)} indices (batch {batch})"
                )
            return items
        items = []
        for index in indices:
            try:
                items.append(self.dataset[index])
            except Exception as e:
                e.add_note(f"DataLoader ({self.where}): failed loading dataset index {index} (batch {batch})")
                raise
        return items


class IterableFetcher:
    """Reads ``batch_size`` items at a time from an iterable dataset and collates them."""

    def __init__(
        self, dataset: Any, collate_fn: Callable, batch_size: int, drop_last: bool, gen: Generator, where: str
    ):
        self.dataset, self.collate_fn, self.batch_size, self.drop_last = dataset, collate_fn, batch_size, drop_last
        self.gen, self.where = gen, where
        self.iterator: Any = None
        self.done = False
        self.read = 0

    def next_batch(self) -> Any:
        """The next collated batch; ``StopIteration`` when the stream (or a full batch) has run out."""
        if self.done:
            raise StopIteration
        token = _generator.set(self.gen)
        try:
            if self.iterator is None:
                self.iterator = iter(self.dataset)
            try:
                items = list(itertools.islice(self.iterator, self.batch_size))
            except Exception as e:
                e.add_note(f"DataLoader ({self.where}): failed reading item {self.read} of the dataset's stream")
                raise
            self.read += len(items)
            if len(items) < self.batch_size:
                self.done = True
                if not items or self.drop_last:
                    raise StopIteration
            try:
                return self.collate_fn(items)
            except Exception as e:
                e.add_note(f"DataLoader ({self.where}): failed collating stream items {self.read - len(items)}..")
                raise
        finally:
            _generator.reset(token)


@dataclass
class WorkerConfig:
    """Everything a worker needs; pickled once per process in "spawn" mode."""

    dataset: Any
    collate_fn: Callable[[list[Any]], Any]
    seed: int
    epoch: int
    num_workers: int
    mode: str
    iterable: bool
    batch_size: int
    drop_last: bool
    nice: int = 0


def lower_priority(increment: int, mode: str) -> bool:
    """Raise this worker's niceness by ``increment``; whether it could (threads: Linux only)."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        if mode == "process":
            os.nice(increment)
        elif sys.platform.startswith("linux"):  # a Linux thread is a task with its own niceness
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        else:
            return False
    except OSError:
        return False
    return True


def _portable_error(e: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError carrying its text and notes."""
    e.add_note("worker traceback:\n" + "".join(traceback.format_exception(e)).rstrip())
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        out = RuntimeError(f"{type(e).__name__}: {e}")
        for note in getattr(e, "__notes__", []):
            out.add_note(note)
        return out


def _next_task(tasks: Any, stop: Any, mode: str) -> Any:
    """The next task, or None once the pool is stopping (or, in a process, once the parent died)."""
    while not stop.is_set():
        try:
            task = tasks.get(timeout=5 * _POLL_S)
        except queue.Empty:
            parent = multiprocessing.parent_process() if mode == "process" else None
            if parent is not None and not parent.is_alive():
                return None
            continue
        return None if stop.is_set() else task
    return None


def worker_loop(worker_id: int, config: WorkerConfig, tasks: Any, results: Any, stop: Any) -> None:
    """Serve tasks until ``stop`` is set or a ``None`` arrives.

    A task is ``(seq, batch, indices)`` for a map-style dataset, ``(seq,)`` for an iterable one.
    """
    seed = worker_seed(config.seed, config.epoch, worker_id)
    _worker_info.set(WorkerInfo(worker_id, config.num_workers, seed, config.dataset, config.mode))
    where = f"worker {worker_id}, {config.mode}"
    lower_priority(config.nice, config.mode)
    if config.mode == "process":  # a forked child would repeat the parent's global streams
        random.seed(seed)
        np.random.seed(seed % 2**32)
        lk_random.default_generator.manual_seed(seed)
    if config.iterable:
        gen = stream_generator(config.seed, config.epoch, worker_id)
        fetcher: Any = IterableFetcher(
            config.dataset, config.collate_fn, config.batch_size, config.drop_last, gen, where
        )
    else:
        fetcher = MapFetcher(config.dataset, config.collate_fn, config.seed, config.epoch, where)
    try:
        while (task := _next_task(tasks, stop, config.mode)) is not None:
            seq = task[0]
            try:
                out = fetcher.next_batch() if config.iterable else fetcher.fetch(task[1], task[2])
                results.put((worker_id, seq, OK, out))
            except StopIteration:
                results.put((worker_id, seq, END, None))
            except Exception as e:
                results.put((worker_id, seq, ERROR, e if config.mode == "thread" else _portable_error(e)))
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group; the main process reports it
        pass
    finally:
        if config.mode == "process":
            results.cancel_join_thread()  # exit without waiting for the main process to drain the pipe


def _process_main(worker_id: int, config: WorkerConfig, tasks: Any, results: Any, stop: Any) -> None:
    worker_loop(worker_id, config, tasks, results, stop)


class WorkerPool:
    """``num_workers`` threads or processes; ``submit`` work to one, ``get`` its results in order."""

    def __init__(self, config: WorkerConfig, mp_context: str | None = None) -> None:
        self.config = config
        self.mode = config.mode
        self.buffers: list[deque[tuple[int, int, Any]]] = [deque() for _ in range(config.num_workers)]
        self.workers: list[Any] = []
        self.closed = False
        if self.mode == "thread":
            self.results: Any = queue.SimpleQueue()
            self.tasks: list[Any] = [queue.SimpleQueue() for _ in range(config.num_workers)]
            self.stop: Any = threading.Event()
            for w in range(config.num_workers):
                t = threading.Thread(
                    target=worker_loop,
                    args=(w, config, self.tasks[w], self.results, self.stop),
                    daemon=True,
                    name=f"labkit-data-{w}",
                )
                self.workers.append(t)
        else:
            ctx = multiprocessing.get_context(mp_context)
            self.results = ctx.Queue()
            self.tasks = [ctx.Queue() for _ in range(config.num_workers)]
            self.stop = ctx.Event()
            for w in range(config.num_workers):
                p = ctx.Process(
                    target=_process_main, args=(w, config, self.tasks[w], self.results, self.stop), daemon=True
                )
                self.workers.append(p)
        for worker in self.workers:
            worker.start()

    def submit(self, worker_id: int, task: tuple[Any, ...]) -> None:
        self.tasks[worker_id].put(task)

    def get(self, worker_id: int, seq: int) -> tuple[int, Any]:
        """``(kind, payload)`` of task ``seq`` of worker ``worker_id``; re-raises a worker's exception."""
        buffer = self.buffers[worker_id]
        while not buffer:
            try:
                w, s, kind, payload = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            self.buffers[w].append((s, kind, payload))
        s, kind, payload = buffer.popleft()
        if s != seq:  # a bug here, not a user error: results of one worker arrive in task order
            raise RuntimeError(f"DataLoader: worker {worker_id} returned task {s}, expected {seq}")
        if kind == ERROR:
            raise payload
        return kind, payload

    def _check_alive(self) -> None:
        for w, worker in enumerate(self.workers):
            if not worker.is_alive():
                if self.mode == "thread":
                    why = "its traceback was printed above"
                else:
                    why = (
                        f"exit code {worker.exitcode}; a negative code is the signal that killed it (-9: out of memory)"
                    )
                raise RuntimeError(f"DataLoader worker {w} ({self.mode}) stopped unexpectedly ({why})")

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every worker: skip their queued tasks, wait up to ``timeout`` s in all, then terminate processes."""
        if self.closed:
            return
        self.closed = True
        self.stop.set()
        for q in self.tasks:
            try:
                q.put(None)  # wakes a worker blocked on its queue at once
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            # daemon threads: one stuck in user code cannot block interpreter exit
            worker.join(max(0.0, deadline - time.monotonic()))
        if self.mode == "thread":
            return
        for p in self.workers:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
        for q in [*self.tasks, self.results]:
            q.cancel_join_thread()
            q.close()

    def __del__(self) -> None:
        try:
            self.shutdown(timeout=1.0)
        except Exception:
            pass
