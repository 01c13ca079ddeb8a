"""Collation: a list of dataset items -> one batch of labkit Tensors.

``default_collate`` stacks numpy arrays, numbers and Tensors along a new first
dimension and recurses into tuples, lists, namedtuples and dicts. dtypes: Python
ints -> int64, Python floats -> float32, bools -> bool; numpy arrays and numpy
scalars keep their dtype (so float64 stays float64, uint8 images stay uint8).
Strings, bytes and None pass through as lists. ``pad_collate`` pads variable-length
sequences and returns their lengths and a mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labkit.core.tensor import Tensor

_PASS_THROUGH = (str, bytes, type(None))


def _describe(path: str) -> str:
    return f"field {path}" if path else "the items"


def _as_array(value: Any, path: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    if isinstance(value, bool):
        return np.asarray(value, dtype=np.bool_)
    if isinstance(value, int):
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, float):
        return np.asarray(value, dtype=np.float32)
    raise TypeError(
        f"default_collate: expected numpy arrays, numbers, Tensors, str, tuples, lists or dicts in "
        f"{_describe(path)}, got {type(value).__name__}"
    )


def _shape_groups(shapes: list[tuple[int, ...]]) -> str:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(s, []).append(i)
    parts = []
    for shape, items in groups.items():
        shown = ", ".join(map(str, items[:4])) + (" ..." if len(items) > 4 else "")
        parts.append(f"{shape} at item{'s' if len(items) > 1 else ''} {shown}")
    return "; ".join(parts)


def stack_arrays(values: Sequence[Any], path: str = "") -> np.ndarray:
    """Stack same-shape items into one (B, ...) numpy array, or raise naming the field and shapes."""
    if all(type(v) in (int, float, bool) for v in values):  # one conversion for plain Python numbers
        array = np.asarray(values)
        return array.astype(
            np.float32 if array.dtype.kind == "f" else array.dtype if array.dtype.kind == "b" else np.int64
        )
    arrays = [_as_array(v, path) for v in values]
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) > 1:
        raise ValueError(
            f"default_collate: cannot stack {_describe(path)}: expected every item to have the same shape, "
            f"got {_shape_groups(shapes)}; pad variable-length sequences with pad_collate"
        )
    kinds = {a.dtype.kind for a in arrays}
    if not kinds <= set("biuf"):
        raise TypeError(f"default_collate: expected bool, int or float data in {_describe(path)}, got dtypes {kinds}")
    return np.stack(arrays)


def _collate(batch: Sequence[Any], path: str) -> Any:
    first = batch[0]
    if isinstance(first, _PASS_THROUGH):
        return list(batch)
    if isinstance(first, Mapping):
        keys = list(first)
        for i, item in enumerate(batch):
            if not isinstance(item, Mapping) or set(item) != set(keys):
                got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                raise ValueError(
                    f"default_collate: expected every item of {_describe(path)} to have keys {sorted(keys)}, "
                    f"got {got} at item {i}"
                )
        return {k: _collate([item[k] for item in batch], f"{path}[{k!r}]") for k in keys}
    if isinstance(first, (tuple, list)):
        n = len(first)
        for i, item in enumerate(batch):
            if not isinstance(item, (tuple, list)) or len(item) != n:
                got = f"length {len(item)}" if isinstance(item, (tuple, list)) else type(item).__name__
                raise ValueError(
                    f"default_collate: expected every item of {_describe(path)} to be a sequence of length {n}, "
                    f"got {got} at item {i}"
                )
        fields = [_collate([item[j] for item in batch], f"{path}[{j}]") for j in range(n)]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # namedtuple
            return type(first)(*fields)
        return tuple(fields) if isinstance(first, tuple) else fields
    return Tensor._wrap(stack_arrays(batch, path))


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of B items into a batch whose leaves are (B, ...) labkit Tensors.

    An item may be an array, a number, a Tensor, a str, or a tuple/list/dict of those
    (nested). Items whose arrays differ in shape raise ``ValueError`` naming the field
    (``[0]``, ``['image']``) and the shapes seen.
    """
    if not isinstance(batch, Sequence) or isinstance(batch, _PASS_THROUGH) or len(batch) == 0:
        raise ValueError(f"default_collate: expected a non-empty list of items, got {type(batch).__name__}")
    return _collate(batch, "")


def _sequence_array(sequence: Any, index: int) -> np.ndarray:
    """One sequence as an array: lists follow the Python-number rules, arrays keep their dtype."""
    if isinstance(sequence, Tensor):
        array = sequence.detach().numpy()
    elif isinstance(sequence, np.ndarray):
        array = sequence
    else:
        array = np.asarray(sequence)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
    if array.ndim == 0 or array.dtype.kind not in "biuf":
        raise ValueError(
            f"pad_collate: expected item {index} to be a sequence of numbers (T, ...), "
            f"got {type(sequence).__name__} of shape {array.shape} dtype {array.dtype}"
        )
    return array


def pad_sequences(
    sequences: Sequence[Any], padding_value: float = 0, batch_first: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy padding: (B, T, ...) or (T, B, ...) array, (B,) int64 lengths, (B, T) or (T, B) bool mask."""
    arrays = [_sequence_array(s, i) for i, s in enumerate(sequences)]
    trailing = [a.shape[1:] for a in arrays]
    if len(set(trailing)) > 1:
        raise ValueError(
            f"pad_collate: expected every sequence to have the same shape after the time dimension, "
            f"got {_shape_groups(trailing)}"
        )
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    dtype = np.result_type(*arrays)
    batch, steps = len(arrays), int(lengths.max(initial=0))
    padded = np.full((batch, steps, *trailing[0]), padding_value, dtype=dtype)
    for i, a in enumerate(arrays):
        padded[i, : len(a)] = a
    mask = np.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    if not batch_first:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))
        mask = np.ascontiguousarray(mask.T)
    return padded, lengths, mask


def pad_collate(batch: Sequence[Any], padding_value: float = 0, batch_first: bool = True) -> tuple[Any, ...]:
    """Collate variable-length sequences: ``(padded, lengths, mask, *rest)`` as labkit Tensors.

    Items are sequences (arrays of shape (T_i, ...), or lists of numbers) or tuples
    ``(sequence, *rest)``; ``rest`` (labels ...) goes through ``default_collate``.
    ``padded``: (B, T, ...) with ``batch_first`` else (T, B, ...), T = the longest length,
    filled with ``padding_value``; ``lengths``: (B,) int64; ``mask``: bool, True on real
    steps, (B, T) with ``batch_first`` else (T, B).
    """
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise ValueError(f"pad_collate: expected a non-empty list of items, got {type(batch).__name__}")
    with_rest = isinstance(batch[0], tuple)
    if with_rest:
        for i, item in enumerate(batch):
            if not isinstance(item, tuple) or len(item) != len(batch[0]):
                raise ValueError(
                    f"pad_collate: expected every item to be a tuple of length {len(batch[0])} like item 0, "
                    f"got {type(item).__name__} at item {i}"
                )
    sequences = [item[0] for item in batch] if with_rest else list(batch)
    padded, lengths, mask = pad_sequences(sequences, padding_value, batch_first)
    out = (Tensor._wrap(padded), Tensor._wrap(lengths), Tensor._wrap(mask))
    if with_rest and len(batch[0]) > 1:
        out += tuple(_collate([item[j] for item in batch], f"[{j}]") for j in range(1, len(batch[0])))
    return out
