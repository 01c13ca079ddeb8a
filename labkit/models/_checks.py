"""Argument checks shared by the model constructors (errors name the model and the argument)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def positive_int(model: str, name: str, value: Any) -> int:
    """An int ``>= 1`` (bools refused), else a TypeError/ValueError naming ``model`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{model}: expected an int {name}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{model}: expected {name} >= 1, got {value}")
    return int(value)


def int_tuple(model: str, name: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """A sequence of positive ints (an int is a one-element sequence); YAML lists arrive as ListConfig."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{model}: expected a list of ints for {name}, got {type(value).__name__} {value!r}")
    out = tuple(positive_int(model, name, v) for v in value)
    if not out and not allow_empty:
        raise ValueError(f"{model}: expected at least one size in {name}, got an empty list")
    return out


def probability(model: str, name: str, value: Any) -> float:
    """A float in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{model}: expected {name} in [0, 1), got {value!r}")
    return float(value)


def image_hw(model: str, image_size: Any) -> tuple[int, int]:
    """``image_size`` as ``(H, W)``: an int for square images or a pair."""
    sizes = int_tuple(model, "image_size", image_size)
    if len(sizes) == 1:
        return sizes[0], sizes[0]
    if len(sizes) != 2:
        raise ValueError(f"{model}: expected image_size as an int or (H, W), got {tuple(sizes)}")
    return sizes[0], sizes[1]


def choice(model: str, name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{model}: expected {name} in {list(options)}, got {value!r}")
    return str(value)
