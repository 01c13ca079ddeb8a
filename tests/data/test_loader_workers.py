"""DataLoader workers: niceness of the workers (the rest of the worker behaviour is in test_loader.py)."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from labkit.data import DataLoader, Dataset


class _Niceness(Dataset):
    """Each item is the niceness of the thread that loads it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array([os.getpriority(os.PRIO_PROCESS, threading.get_native_id())])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux-only")
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_worker_nice_lowers_only_the_workers_priority(mode):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    loader = DataLoader(_Niceness(), 4, num_workers=2, worker_mode=mode, worker_nice=5)
    seen = {int(v) for batch in loader for v in batch.numpy().ravel()}
    assert seen == {min(base + 5, 19)}
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the main thread keeps its priority
    with pytest.raises(ValueError, match=r"worker_nice: expected 0\.\.19"):
        DataLoader(_Niceness(), 4, worker_nice=25)
