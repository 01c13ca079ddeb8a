"""Datasets: map-style (``__getitem__`` + ``__len__``) and iterable, plus the combinators.

Datasets return numpy arrays and Python values, never labkit Tensors: the
``DataLoader``'s collate function turns a batch of items into Tensors.

``random_split`` draws its permutation from the raw PCG64 stream (see
``labkit.data.sampler.permutation``), so a split is identical on every machine
and numpy version.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.sampler import permutation, seed_from


class Dataset:
    """A map-style dataset: ``dataset[i]`` for ``0 <= i < len(dataset)``.

    Subclasses implement ``__getitem__(index) -> item`` and ``__len__() -> int``.
    ``a + b`` concatenates two datasets.
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset:
    """A dataset read as a stream: ``for item in dataset``.

    With ``DataLoader(num_workers=N)`` every worker iterates its own copy; to avoid
    duplicates, shard inside ``__iter__`` with ``labkit.data.loader.get_worker_info()``::

        info = get_worker_info()  # None in the main process
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, total, step): yield load(i)
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


def _as_numpy(array: Any, position: int) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().numpy()
    out = np.asarray(array)
    if out.ndim == 0:
        raise ValueError(
            f"TensorDataset: expected arrays with a first (sample) dimension, got a scalar at argument {position}"
        )
    return out


class TensorDataset(Dataset):
    """Item ``i`` is ``tuple(array[i] for array in arrays)``; every array has the same first dimension N.

    Accepts numpy arrays, nested lists and labkit Tensors (kept as numpy arrays).
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        self.arrays = tuple(_as_numpy(a, i) for i, a in enumerate(arrays))
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays[1:], start=1):
            if len(a) != n:
                raise ValueError(
                    f"TensorDataset: expected every array to have {n} rows like argument 0, "
                    f"got {len(a)} rows in argument {i} (shape {a.shape})"
                )

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])


class Subset(Dataset):
    """The items of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        if hasattr(dataset, "__len__"):
            n = len(dataset)
            bad = [i for i in self.indices if not -n <= i < n]
            if bad:
                raise IndexError(f"Subset: expected indices in [0, {n}), got {bad[:5]}")

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """The items at ``indices``, fetched together when the wrapped dataset has ``__getitems__``."""
        mapped = [self.indices[i] for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        return list(getitems(mapped)) if getitems is not None else [self.dataset[i] for i in mapped]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after another."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset, got none")
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset) or not hasattr(d, "__len__"):
                raise TypeError(f"ConcatDataset: expected map-style datasets, got {type(d).__name__} at position {i}")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for {n} items")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _split_lengths(lengths: Sequence[float], n: int) -> list[int]:
    """Integer lengths; fractions summing to 1 are floored and the remainder spread one by one."""
    if not lengths:
        raise ValueError("random_split: expected at least one length, got none")
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        counts = [int(x) for x in lengths]
        if any(c < 0 for c in counts) or sum(counts) != n:
            raise ValueError(f"random_split: expected non-negative lengths summing to {n} (the dataset), got {counts}")
        return counts
    fractions = [float(x) for x in lengths]
    if any(f < 0 or f > 1 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"random_split: expected int lengths or fractions in [0, 1] summing to 1, got {list(lengths)}")
    counts = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(counts)):  # round-robin, like torch
        counts[i % len(counts)] += 1
    return counts


def random_split(
    dataset: Any,
    lengths: Sequence[float],
    generator: Generator | np.random.Generator | None = None,
    seed: int | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given ``lengths``.

    ``lengths`` are ints summing to ``len(dataset)`` or fractions summing to 1. The
    permutation depends only on ``seed`` (or on one 64-bit draw from ``generator``), so
    ``random_split(ds, [0.8, 0.2], seed=0)`` is the same split on every machine.
    """
    if generator is not None and seed is not None:
        raise ValueError("random_split: expected generator or seed, got both")
    n = len(dataset)
    counts = _split_lengths(lengths, n)
    key = int(seed) if seed is not None else seed_from(generator)
    order = permutation(n, key, 0).tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, order[start : start + c]))
        start += c
    return out
