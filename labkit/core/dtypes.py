"""dtypes: numpy dtype objects (cupy shares them). float32 is the default float."""

from __future__ import annotations

from typing import Any

import numpy as np

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

default_float = float32
default_int = int64

_ALIASES = {"float": float32, "double": float64, "half": float16, "long": int64, "int": int32, "bool": bool_}


def as_dtype(spec: Any) -> np.dtype | None:
    """Parse a dtype spec (``"float32"``, ``np.float64``, ``labkit.int64``...) or None."""
    if spec is None:
        return None
    if isinstance(spec, str) and spec in _ALIASES:
        return _ALIASES[spec]
    try:
        dt = np.dtype(spec)
    except TypeError as exc:
        raise TypeError(f"dtype: expected a dtype like 'float32' or labkit.int64, got {spec!r}") from exc
    if dt.kind not in "biuf":
        raise TypeError(f"dtype: labkit tensors hold bool, integer or float data, got {dt}")
    return dt


def is_floating(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f"


def result_float(dtype: Any) -> np.dtype:
    """The float dtype an op on ``dtype`` data returns (integers become the default float)."""
    dt = np.dtype(dtype)
    return dt if dt.kind == "f" else default_float
