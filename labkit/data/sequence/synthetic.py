"""Classic synthetic sequence benchmarks for recurrent models, and an in-memory sequence dataset.

Every generator takes an explicit ``generator`` (``labkit.Generator`` or a numpy
``Generator``; ``None`` uses ``labkit.default_generator``): the same seed gives the
same data on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.core.random import Generator, resolve
from labkit.data.collate import pad_sequences

GeneratorLike = Generator | np.random.Generator | None


def _positive_int(op: str, key: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{op}: {key}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def adding_problem(n: int, T: int, generator: GeneratorLike = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015).

    Each step holds a value drawn uniformly from [0, 1) and a marker; exactly two
    markers are 1, one in the first half of the sequence and one in the second. The
    target is the sum of the two marked values. Always predicting 1 scores an MSE of
    1/6 (the variance of a sum of two uniforms), the baseline a model must beat.

    Returns ``x`` float32 ``(n, T, 2)`` (channel 0 values, channel 1 markers) and
    ``y`` float32 ``(n,)``.
    """
    n = _positive_int("adding_problem", "n", n)
    steps = _positive_int("adding_problem", "T", T, 2)
    rng = resolve(generator)
    values = rng.random((n, steps))
    half = steps // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, steps, size=n)
    markers = np.zeros((n, steps))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, T, 2)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)  # (n,)
    return x, y


def copy_task(
    n: int,
    T: int,  # noqa: N803
    n_symbols: int = 8,
    delay: int = 20,
    generator: GeneratorLike = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The copy-memory task (Hochreiter & Schmidhuber 1997; the layout of Arjovsky et al. 2016).

    Token ids: 0 blank, ``1..n_symbols`` data symbols, ``n_symbols + 1`` the delimiter.
    Input: ``T`` random symbols, ``delay - 1`` blanks, the delimiter, ``T`` blanks.
    Target: ``T + delay`` blanks, then the ``T`` symbols: the model must reproduce them
    after the delimiter. A model that only learns the blanks scores a cross-entropy of
    ``T * log(n_symbols) / (2T + delay)``.

    Returns ``x`` and ``y``, int64 ``(n, 2T + delay)``.
    """
    n = _positive_int("copy_task", "n", n)
    steps = _positive_int("copy_task", "T", T)
    n_symbols = _positive_int("copy_task", "n_symbols", n_symbols, 2)
    delay = _positive_int("copy_task", "delay", delay)
    rng = resolve(generator)
    symbols = rng.integers(1, n_symbols + 1, size=(n, steps))
    length = 2 * steps + delay
    x = np.zeros((n, length), dtype=np.int64)
    y = np.zeros((n, length), dtype=np.int64)
    x[:, :steps] = symbols
    x[:, steps + delay - 1] = n_symbols + 1
    y[:, steps + delay :] = symbols
    return x, y


def parity(
    n: int, min_len: int = 2, max_len: int = 24, generator: GeneratorLike = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Variable-length parity: random bit strings, target 1 when the number of ones is odd.

    Lengths are drawn uniformly from ``[min_len, max_len]``. Returns a list of ``n``
    float32 arrays ``(T_i, 1)`` and the int64 targets ``(n,)``.
    """
    n = _positive_int("parity", "n", n)
    min_len = _positive_int("parity", "min_len", min_len)
    max_len = _positive_int("parity", "max_len", max_len)
    if max_len < min_len:
        raise ValueError(f"parity: expected min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    rng = resolve(generator)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    bits = rng.integers(0, 2, size=(n, max_len))
    seqs = [bits[i, :t, None].astype(np.float32) for i, t in enumerate(lengths)]
    y = np.array([int(s.sum()) % 2 for s in seqs], dtype=np.int64)
    return seqs, y


class SequenceDataset:
    """In-memory sequences and targets: ``dataset[i] -> (x_i, y_i)``.

    ``inputs`` is an array ``(n, T, ...)`` or a list of ``(T_i, ...)`` arrays (variable
    length: batch them with a padding collate and ``lengths``). ``classes`` names the
    labels of a classification set.
    """

    def __init__(
        self,
        inputs: np.ndarray | Sequence[np.ndarray],
        targets: np.ndarray | Sequence[Any],
        classes: Sequence[str] | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"SequenceDataset: expected as many targets as inputs ({len(inputs)}), got {len(targets)}")
        self.inputs = inputs
        self.targets = np.asarray(targets)
        self.lengths = np.array([len(x) for x in inputs], dtype=np.int64)
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        return self.inputs[index], self.targets[index]

    def padded(self, pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """All inputs as one ``(n, T_max, ...)`` array and the lengths ``(n,)``."""
        if isinstance(self.inputs, np.ndarray):
            return self.inputs, self.lengths
        padded, lengths, _ = pad_sequences(self.inputs, pad_value)
        return padded, lengths

    def __repr__(self) -> str:
        lo, hi = (int(self.lengths.min()), int(self.lengths.max())) if len(self) else (0, 0)
        span = f"T={lo}" if lo == hi else f"T={lo}..{hi}"
        return f"SequenceDataset(n={len(self)}, {span})"
