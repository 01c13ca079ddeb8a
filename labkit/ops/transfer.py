"""Moving between devices and casting dtypes, both differentiable."""

from __future__ import annotations

from typing import Any

from labkit.backends.device import Device, DeviceLike
from labkit.backends.registry import backends
from labkit.core import dtypes
from labkit.core.function import Function
from labkit.core.tensor import Tensor

__all__ = ["astype", "to_device"]


class ToDevice(Function):
    op_name = "to"

    def __init__(self, device: Device) -> None:
        self.device = device

    def forward(self, x: Any) -> Any:
        src = backends.for_array(x)
        self.src_device = src.device_of(x)
        dst = backends.for_device(self.device)
        return dst.asarray(src.to_numpy(x) if src is not dst and dst.device_type == "cpu" else x, x.dtype, self.device)

    def backward(self, gy: Tensor) -> Tensor:
        return to_device(gy, self.src_device)


class AsType(Function):
    op_name = "astype"

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        self.src_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy: Tensor) -> Tensor:
        return astype(gy, self.src_dtype)


def to_device(x: Tensor, device: DeviceLike) -> Tensor:
    dev = Device.parse(device)
    if x.device == dev:
        return x
    return ToDevice(dev)(x)


def astype(x: Tensor, dtype: Any) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if x.data.dtype == dt:
        return x
    if x.requires_grad and dt.kind != "f":
        return Tensor._wrap(x.data.astype(dt))  # casting to ints/bools cuts the graph
    return AsType(dt)(x)
