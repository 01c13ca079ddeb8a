"""Comparisons and logic: ``eq ne lt le gt ge``, ``isnan isfinite isinf``, ``logical_*``.

They return bool constants that do not require grad; scalars are accepted on either side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module
from labkit.core.tensor import Tensor
from labkit.ops._util import broadcast_shapes, operands
from labkit.ops.math import _const, _tensor

__all__ = [
    "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isfinite", "isinf",
    "logical_not", "logical_and", "logical_or", "logical_xor",
]  # fmt: skip


# ---- comparisons and logic (no gradient) ------------------------------------------------


def _comparable(v: Any) -> bool:
    return isinstance(v, (Tensor, bool, int, float, np.number, np.bool_, list, tuple)) or (
        hasattr(v, "shape") and hasattr(v, "dtype")
    )


def _compare(x0: Any, x1: Any, op: str, ufunc: str) -> Any:
    if not (_comparable(x0) and _comparable(x1)):
        return NotImplemented  # so `t == None` is False and `t < "a"` a TypeError, as in Python
    x0, x1 = operands(x0, x1, op)
    broadcast_shapes(x0.shape, x1.shape, op)
    if type(x0.data) is not type(x1.data) or x0.device != x1.device:
        raise ValueError(f"{op}: both inputs must be on the same device, got {x0.device} and {x1.device}")
    xp = array_module(x0.data)
    return _const(getattr(xp, ufunc)(x0.data, x1.data))


def eq(x0: Any, x1: Any) -> Tensor:
    """``x0 == x1`` elementwise (bool). Returns NotImplemented for non-numeric operands such as None."""
    return _compare(x0, x1, "eq", "equal")


def ne(x0: Any, x1: Any) -> Tensor:
    """``x0 != x1`` elementwise (bool)."""
    return _compare(x0, x1, "ne", "not_equal")


def lt(x0: Any, x1: Any) -> Tensor:
    """``x0 < x1`` elementwise (bool)."""
    return _compare(x0, x1, "lt", "less")


def le(x0: Any, x1: Any) -> Tensor:
    """``x0 <= x1`` elementwise (bool)."""
    return _compare(x0, x1, "le", "less_equal")


def gt(x0: Any, x1: Any) -> Tensor:
    """``x0 > x1`` elementwise (bool)."""
    return _compare(x0, x1, "gt", "greater")


def ge(x0: Any, x1: Any) -> Tensor:
    """``x0 >= x1`` elementwise (bool)."""
    return _compare(x0, x1, "ge", "greater_equal")


def isnan(x: Tensor) -> Tensor:
    x = _tensor(x, "isnan")
    return _const(array_module(x.data).isnan(x.data))


def isfinite(x: Tensor) -> Tensor:
    x = _tensor(x, "isfinite")
    return _const(array_module(x.data).isfinite(x.data))


def isinf(x: Tensor) -> Tensor:
    x = _tensor(x, "isinf")
    return _const(array_module(x.data).isinf(x.data))


def logical_not(x: Tensor) -> Tensor:
    x = _tensor(x, "logical_not")
    return _const(array_module(x.data).logical_not(x.data))


def _logical(x0: Any, x1: Any, op: str) -> Tensor:
    x0, x1 = operands(x0, x1, op)
    broadcast_shapes(x0.shape, x1.shape, op)
    xp = array_module(x0.data)
    return _const(getattr(xp, op)(x0.data, x1.data))


def logical_and(x0: Any, x1: Any) -> Tensor:
    return _logical(x0, x1, "logical_and")


def logical_or(x0: Any, x1: Any) -> Tensor:
    return _logical(x0, x1, "logical_or")


def logical_xor(x0: Any, x1: Any) -> Tensor:
    return _logical(x0, x1, "logical_xor")
