"""An in-process communicator for tests: N threads exchange arrays through shared slots and a barrier.

It implements ``labkit.distributed.comm.Communicator`` exactly as MPI would behave for the
collectives labkit uses, so the DDP logic (buckets, weights, flags, broadcasts) is tested
in one process in milliseconds; tests/distributed/test_mpi_*.py run the real MPI path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit.distributed.comm import Communicator


class ThreadGroup:
    """The shared state of ``size`` thread ranks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=20)
        self.slots: list[Any] = [None] * size


class ThreadCommunicator(Communicator):
    name = "threads"

    def __init__(self, group: ThreadGroup, rank: int) -> None:
        self.group, self.rank, self.size, self.local_rank = group, rank, group.size, rank

    def _exchange(self, value: Any) -> list[Any]:
        self.group.slots[self.rank] = value
        self.group.barrier.wait()
        values = list(self.group.slots)
        self.group.barrier.wait()  # nobody overwrites a slot before everyone has read them
        return values

    def allreduce_(self, array: Any) -> None:
        values = self._exchange(np.array(array, copy=True))
        total = values[0].copy()
        for v in values[1:]:
            total = total + v
        array[...] = total

    def broadcast_(self, array: Any, root: int = 0) -> None:
        values = self._exchange(np.array(array, copy=True))
        array[...] = values[root]

    def broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        return bytes(self._exchange(data)[root])

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return [bytes(d) for d in self._exchange(data)]


def run_ranks(size: int, fn: Callable[[ThreadCommunicator], Any]) -> list[Any]:
    """``fn(comm)`` on ``size`` thread ranks; their results in rank order (the first error is raised)."""
    group = ThreadGroup(size)
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def target(rank: int) -> None:
        try:
            results[rank] = fn(ThreadCommunicator(group, rank))
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return results
