"""Helpers shared by op families: operands from Python values, axis normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.backends.registry import backends
from labkit.core import dtypes
from labkit.core.tensor import Tensor


def operand(value: Any, like: Tensor, op: str) -> Tensor:
    """``value`` as a Tensor beside ``like``: Python scalars take ``like``'s dtype (no upcast)."""
    if isinstance(value, Tensor):
        return value
    xp = backends.for_array(like.data).xp
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        dt = like.data.dtype
        if isinstance(value, (float, np.floating)) and dt.kind != "f":
            dt = dtypes.default_float
        elif isinstance(value, (int, np.integer)) and dt.kind == "b" and not isinstance(value, (bool, np.bool_)):
            dt = dtypes.default_int
        return Tensor._wrap(xp.asarray(value, dtype=dt))
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return Tensor._wrap(xp.asarray(value))
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        dt = like.data.dtype if arr.dtype.kind == "f" and like.data.dtype.kind == "f" else None
        return Tensor(value, dtype=dt, device=like.device)
    raise TypeError(f"{op}: expected a Tensor, array or number as operand, got {type(value).__name__}")


def operands(x0: Any, x1: Any, op: str) -> tuple[Tensor, Tensor]:
    """Two operands of a binary op as Tensors; the non-Tensor one follows the Tensor's dtype."""
    if type(x0) is Tensor and type(x1) is Tensor and x0.data.dtype is x1.data.dtype:
        return x0, x1  # the common case, kept cheap
    if isinstance(x0, Tensor):
        x1 = operand(x1, x0, op)
    elif isinstance(x1, Tensor):
        x0 = operand(x0, x1, op)
    else:
        raise TypeError(f"{op}: expected at least one Tensor, got {type(x0).__name__} and {type(x1).__name__}")
    if x0.data.dtype.kind in "iub" and x1.data.dtype.kind == "f":
        x0 = x0.to(dtype=x1.data.dtype)
    elif x1.data.dtype.kind in "iub" and x0.data.dtype.kind == "f":
        x1 = x1.to(dtype=x0.data.dtype)
    return x0, x1


def normalize_axis(axis: int | Sequence[int] | None, ndim: int, op: str) -> tuple[int, ...] | None:
    """Axes as a sorted tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: expected int axes, got {a!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axes}")
    return tuple(sorted(out))


def broadcast_shapes(s0: tuple[int, ...], s1: tuple[int, ...], op: str) -> tuple[int, ...]:
    """The broadcast shape, or a ValueError naming the op and both shapes."""
    n = max(len(s0), len(s1))
    a = (1,) * (n - len(s0)) + tuple(s0)
    b = (1,) * (n - len(s1)) + tuple(s1)
    out = []
    for i, (p, q) in enumerate(zip(a, b)):
        if p != q and p != 1 and q != 1:
            raise ValueError(
                f"{op}: shapes {tuple(s0)} and {tuple(s1)} cannot be broadcast (dimension {i - n}: {p} vs {q})"
            )
        out.append(q if p == 1 else p)
    return tuple(out)
