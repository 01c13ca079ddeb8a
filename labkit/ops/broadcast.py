"""Broadcasting and its adjoint: ``broadcast_to`` / ``expand`` and ``sum_to``."""

from __future__ import annotations

from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import broadcast_shapes

__all__ = ["broadcast_to", "expand", "sum_to"]


class BroadcastTo(Function):
    op_name = "broadcast_to"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy: Tensor) -> Tensor:
        return sum_to(gy, self.x_shape)


class SumTo(Function):
    op_name = "sum_to"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return _sum_to_array(x, self.shape)

    def backward(self, gy: Tensor) -> Tensor:
        return broadcast_to(gy, self.x_shape)


def _sum_to_array(x: Any, shape: tuple[int, ...]) -> Any:
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=axes, keepdims=True) if axes else x
    if lead:
        y = y.reshape(shape)
    return y


def broadcast_to(x: Tensor, shape: tuple[int, ...] | list[int]) -> Tensor:
    """``x`` broadcast to ``shape`` (a view; the gradient sums back)."""
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:
        return x
    if broadcast_shapes(x.shape, shape, "broadcast_to") != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape)(x)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: like ``broadcast_to``, where -1 keeps a dimension."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: the target {shape} has fewer dimensions than the tensor {x.shape}")
    full = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    return broadcast_to(x, full)


def sum_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``x`` down to ``shape`` (the adjoint of broadcasting to ``x.shape``)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo(shape)(x)
