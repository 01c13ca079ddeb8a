"""Padding: ``pad`` with torch.nn.functional.pad's conventions (constant, reflect, replicate, circular)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops.shape import _check_tensor, _ints

__all__ = ["pad"]


# ---- padding ---------------------------------------------------------------------------

_NUMPY_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _source(j: int, n: int, before: int, mode: str) -> int:
    """The input position that output position ``j`` of a padded axis copies."""
    i = j - before
    if mode == "reflect":
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    return i % n  # circular


class Pad(Function):
    def __init__(self, widths: tuple[tuple[int, int], ...], mode: str, value: float) -> None:
        self.widths = widths  # (before, after) for every axis
        self.mode = mode
        self.value = value

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        self.x_shape = x.shape
        if self.mode == "constant":
            return xp.pad(x, self.widths, mode="constant", constant_values=self.value)
        return xp.pad(x, self.widths, mode=_NUMPY_MODES[self.mode])

    def backward(self, gy: Tensor) -> Tensor:
        return PadGrad(self.widths, self.mode, self.x_shape)(gy)


class PadGrad(Function):
    """The adjoint of ``pad``: crop, and for non-constant modes fold the border back in."""

    op_name = "pad_grad"

    def __init__(self, widths: tuple[tuple[int, int], ...], mode: str, x_shape: tuple[int, ...]) -> None:
        self.widths = widths
        self.mode = mode
        self.x_shape = x_shape

    def forward(self, gy: Any) -> Any:
        if self.mode == "constant":
            return gy[tuple(slice(b, b + n) for (b, _), n in zip(self.widths, self.x_shape, strict=True))].copy()
        # fold axis by axis; later axes still carry their border, so crop them step by step
        part = gy
        for axis, ((b, e), n) in enumerate(zip(self.widths, self.x_shape, strict=True)):
            lead = (slice(None),) * axis
            folded = part[(*lead, slice(b, b + n))].copy()
            for j in (*range(b), *range(b + n, b + n + e)):
                folded[(*lead, _source(j, n, b, self.mode))] += part[(*lead, j)]
            part = folded
        return part

    def backward(self, ggx: Tensor) -> Tensor:
        return Pad(self.widths, self.mode, 0.0)(ggx)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0) -> Tensor:
    """``torch.nn.functional.pad``: ``pad`` holds (before, after) pairs from the LAST axis
    backwards, e.g. ``(1, 1, 2, 0)`` pads the last axis by 1 on both sides and the one
    before it by 2 in front. Modes: constant (with ``value``), reflect, replicate, circular.
    """
    _check_tensor(x, "pad")
    if mode not in _NUMPY_MODES:
        raise ValueError(f"pad: unknown mode {mode!r}; expected one of {sorted(_NUMPY_MODES)}")
    widths_flat = _ints(tuple(pad), "pad")
    if len(widths_flat) % 2 or len(widths_flat) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of pad sizes, at most {2 * x.ndim}, got {widths_flat}")
    if any(p < 0 for p in widths_flat):
        raise ValueError(f"pad: negative padding is not supported, got {widths_flat}")
    pairs = [(0, 0)] * x.ndim
    for k in range(len(widths_flat) // 2):
        pairs[x.ndim - 1 - k] = (widths_flat[2 * k], widths_flat[2 * k + 1])
    for d, ((b, e), n) in enumerate(zip(pairs, x.shape, strict=True)):
        if mode == "reflect" and (b or e) and max(b, e) >= n:
            raise ValueError(
                f"pad: reflect padding ({b}, {e}) must be smaller than dimension {d} of size {n} ({x.shape})"
            )
        if mode == "circular" and max(b, e) > n:
            raise ValueError(f"pad: circular padding ({b}, {e}) must not exceed dimension {d} of size {n} ({x.shape})")
        if mode == "replicate" and (b or e) and n == 0:
            raise ValueError(f"pad: cannot replicate-pad the empty dimension {d} of {x.shape}")
    if not any(b or e for b, e in pairs):
        return x
    return Pad(tuple(pairs), mode, 0.0 if value is None else value)(x)
