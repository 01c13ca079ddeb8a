"""DataLoader: batching, determinism, mid-epoch resume, workers (threads and processes), shutdown, errors."""

from __future__ import annotations

import gc
import json
import multiprocessing
import threading
import time

import numpy as np
import pytest

import labkit
from labkit.data.collate import pad_collate
from labkit.data.dataset import Dataset, IterableDataset, TensorDataset
from labkit.data.loader import DataLoader, current_generator, get_worker_info
from labkit.data.sampler import BucketBatchSampler

WORKERS = [(0, "thread"), (2, "thread"), (2, "process")]


class Noisy(Dataset):
    """Item i: (i + noise from the batch's generator, i); raises at ``bad``."""

    def __init__(self, n: int, bad: int | None = None) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if index == self.bad:
            raise ValueError(f"corrupt record {index}")
        gen = current_generator()
        noise = 0.0 if gen is None else float(gen.np.random())
        return np.array([index, noise], dtype=np.float64), index


class Counting(IterableDataset):
    """0..n-1, sharded across workers with get_worker_info()."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def _epoch(loader) -> list[list[list[float]]]:
    return [batch[0].tolist() for batch in loader]


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("labkit-data-")]


def _wait_gone(check, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.02)
    return False


def test_batches_len_drop_last_and_sequential_order():
    ds = TensorDataset(np.arange(10), np.arange(10) * 2)
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][1].dtype == np.int64
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(b[0]) for b in dropped] == [4, 4]


def test_batches_move_to_the_device(device):
    ds = [{"x": np.full(3, i, np.float32), "y": i, "name": str(i)} for i in range(4)]
    batch = next(iter(DataLoader(ds, batch_size=2, device=device, num_workers=1)))
    assert batch["x"].device.type == device and batch["y"].device.type == device
    assert batch["name"] == ["0", "1"]
    np.testing.assert_array_equal(batch["x"].numpy(), [[0, 0, 0], [1, 1, 1]])


@pytest.mark.parametrize(("workers", "mode"), WORKERS)
def test_same_seed_same_batches_with_any_workers(workers, mode):
    ds = Noisy(23)
    reference = DataLoader(ds, batch_size=5, shuffle=True, seed=11)
    loader = DataLoader(ds, batch_size=5, shuffle=True, seed=11, num_workers=workers, worker_mode=mode)
    for _ in range(2):  # two epochs: a new order each, identical between the loaders
        expected, got = _epoch(reference), _epoch(loader)
        assert got == expected
    first, second = _epoch(DataLoader(ds, batch_size=5, shuffle=True, seed=11)), expected
    assert first != second  # epochs differ
    assert sorted(row[0] for batch in first for row in batch) == list(range(23))
    assert _epoch(DataLoader(ds, batch_size=5, shuffle=True, seed=12)) != first
    labkit.manual_seed(3)
    a = _epoch(DataLoader(ds, batch_size=5, shuffle=True))
    labkit.manual_seed(3)
    assert _epoch(DataLoader(ds, batch_size=5, shuffle=True)) == a  # seed drawn from the default generator


@pytest.mark.parametrize(("workers", "mode"), WORKERS)
def test_mid_epoch_resume_matches_an_uninterrupted_run(workers, mode):
    ds = Noisy(30)
    kwargs = {"batch_size": 4, "shuffle": True, "seed": 5, "num_workers": workers, "worker_mode": mode}
    reference = DataLoader(ds, **kwargs)
    epochs = [_epoch(reference) for _ in range(3)]
    interrupted = DataLoader(ds, **kwargs)
    _epoch(interrupted)
    seen = []
    for batch in interrupted:
        seen.append(batch[0].tolist())
        if len(seen) == 3:
            break
    state = json.loads(json.dumps(interrupted.state_dict()))
    assert state["epoch"] == 1 and state["batches_yielded"] == 3
    resumed = DataLoader(ds, **{**kwargs, "seed": 999})  # the seed comes back from the state
    resumed.load_state_dict(state)
    assert seen + _epoch(resumed) == epochs[1]
    assert resumed.epoch == 2 and _epoch(resumed) == epochs[2]


def test_resume_with_bucket_batch_sampler_and_pad_collate():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(int(t), 2)) for t in rng.integers(1, 30, size=40)]
    lengths = [len(s) for s in seqs]

    def loader(seed: int) -> DataLoader:
        sampler = BucketBatchSampler(lengths, batch_size=4, seed=seed, bucket_size=16)
        return DataLoader([(s, i) for i, s in enumerate(seqs)], batch_sampler=sampler, collate_fn=pad_collate)

    reference = [b[3].tolist() for b in loader(1)]
    first = loader(1)
    it = iter(first)
    head = [next(it)[3].tolist() for _ in range(4)]
    state = first.state_dict()
    resumed = loader(2)
    resumed.load_state_dict(state)
    assert head + [b[3].tolist() for b in resumed] == reference
    batch = next(iter(loader(1)))
    padded, blen, mask = batch[0], batch[1], batch[2]
    assert padded.shape[1] == int(blen.numpy().max()) and mask.numpy().sum() == blen.numpy().sum()


def test_break_starts_the_next_epoch_and_set_epoch():
    loader = DataLoader(Noisy(12), batch_size=3, shuffle=True, seed=0)
    full = [_epoch(loader) for _ in range(2)]
    loader = DataLoader(Noisy(12), batch_size=3, shuffle=True, seed=0)
    for _ in loader:
        break
    assert loader.epoch == 0 and loader.state_dict()["batches_yielded"] == 1
    assert _epoch(loader) == full[1]
    loader.set_epoch(0)
    assert _epoch(loader) == full[0]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_worker_error_is_reraised_with_the_index(mode):
    loader = DataLoader(Noisy(20, bad=13), batch_size=4, num_workers=2, worker_mode=mode)
    with pytest.raises(ValueError, match="corrupt record 13") as info:
        list(loader)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "dataset index 13 (batch 3)" in notes and f"{mode}" in notes
    assert _wait_gone(_worker_threads) and _wait_gone(multiprocessing.active_children)


def test_main_thread_error_and_collate_error_notes():
    with pytest.raises(ValueError, match="corrupt record 2") as info:
        list(DataLoader(Noisy(5, bad=2), batch_size=2))
    assert any("dataset index 2" in note for note in info.value.__notes__)
    ragged = [(np.zeros(i + 1),) for i in range(4)]
    with pytest.raises(ValueError, match=r"cannot stack field \[0\]") as info:
        list(DataLoader(ragged, batch_size=2, num_workers=1))
    assert any("collating batch 0" in note for note in info.value.__notes__)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_workers_shut_down_on_break_gc_and_keyboard_interrupt(mode):
    loader = DataLoader(Noisy(200), batch_size=2, num_workers=2, worker_mode=mode, prefetch=3)
    alive = _worker_threads if mode == "thread" else multiprocessing.active_children
    for _ in loader:
        assert alive()
        break
    assert _wait_gone(alive)
    it = iter(loader)
    next(it)
    del it
    gc.collect()
    assert _wait_gone(alive)
    with pytest.raises(KeyboardInterrupt):
        for _ in loader:
            raise KeyboardInterrupt
    assert _wait_gone(alive)


@pytest.mark.parametrize(("workers", "mode"), WORKERS)
def test_iterable_dataset_shards_and_resume(workers, mode):
    loader = DataLoader(Counting(22), batch_size=4, num_workers=workers, worker_mode=mode)
    batches = [b.tolist() for b in loader]
    assert sorted(i for b in batches for i in b) == list(range(22))  # each item exactly once
    assert all(len(b) == 4 for b in batches[:-2])
    it = iter(loader)
    head = [next(it).tolist() for _ in range(2)]
    state = loader.state_dict()
    del it
    resumed = DataLoader(Counting(22), batch_size=4, num_workers=workers, worker_mode=mode)
    resumed.load_state_dict(state)
    assert head + [b.tolist() for b in resumed] == batches
    dropped = [b.tolist() for b in DataLoader(Counting(22), batch_size=4, drop_last=True)]
    assert len(dropped) == 5 and len(DataLoader(Counting(22), batch_size=4)) == 6


def test_process_workers_with_spawn():
    loader = DataLoader(
        Noisy(8),
        batch_size=4,
        shuffle=True,
        seed=2,
        num_workers=1,
        worker_mode="process",
        multiprocessing_context="spawn",
    )
    assert _epoch(loader) == _epoch(DataLoader(Noisy(8), batch_size=4, shuffle=True, seed=2))


def test_argument_and_state_errors():
    ds = Noisy(4)
    with pytest.raises(ValueError, match="worker_mode: expected one of"):
        DataLoader(ds, worker_mode="fiber")
    with pytest.raises(ValueError, match="batch_sampler: expected it alone"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0, 1]])
    with pytest.raises(ValueError, match="shuffle=True or a sampler, got both"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="num_workers: expected an int >= 0"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="expected no shuffle"):
        DataLoader(Counting(3), shuffle=True)
    with pytest.raises(ValueError, match=r"load_state_dict: expected keys \['batches_yielded'"):
        DataLoader(ds).load_state_dict({"epoch": 0})

    class Endless(IterableDataset):
        def __iter__(self):
            return iter(range(10**9))

    with pytest.raises(TypeError, match="has no __len__"):
        len(DataLoader(Endless()))
