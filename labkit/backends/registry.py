"""Backend registry: which array library serves which device.

A backend is found from an array's type (for ops: ``array_module(*arrays)``) or
from a device type (for ``tensor.to(device)``). Backends whose library is heavy or
optional (cupy) are registered lazily by module path and imported on first use.
This module imports nothing from ``labkit.core``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as _numpy

from labkit.backends.device import Device, DeviceLike


@runtime_checkable
class Backend(Protocol):
    """What an array library must provide to serve labkit's ops.

    ``xp`` is a numpy-compatible module; ops are written once against it.
    """

    name: str
    device_type: str
    xp: Any
    array_types: tuple[type, ...]

    def device_of(self, array: Any) -> Device: ...

    def asarray(self, data: Any, dtype: Any, device: Device) -> Any: ...

    def to_numpy(self, array: Any) -> Any: ...

    def is_available(self) -> bool: ...


class BackendRegistry:
    """Maps device types and array types to backends; lazy entries import on demand."""

    def __init__(self) -> None:
        self._by_device: dict[str, Backend] = {}
        self._by_type: dict[type, Backend] = {}
        self._by_name: dict[str, Backend] = {}
        # device type -> (module path, attribute), imported when first asked for
        self._lazy: dict[str, tuple[str, str]] = {}
        # array type module prefix -> device type, to find a lazy backend from an array
        self._lazy_modules: dict[str, str] = {}

    def register(self, backend: Backend) -> None:
        if backend.name in self._by_name and self._by_name[backend.name] is not backend:
            raise ValueError(f"backend {backend.name!r} is already registered")
        self._by_name[backend.name] = backend
        self._by_device[backend.device_type] = backend
        for t in backend.array_types:
            self._by_type[t] = backend
        self._lazy.pop(backend.device_type, None)

    def register_lazy(self, device_type: str, module: str, attr: str, array_module_prefix: str) -> None:
        """Register a backend that is imported only when its device or arrays are used."""
        self._lazy[device_type] = (module, attr)
        self._lazy_modules[array_module_prefix] = device_type

    def _load(self, device_type: str) -> Backend:
        module, attr = self._lazy[device_type]
        backend = getattr(importlib.import_module(module), attr)
        self.register(backend)
        return backend

    def for_device(self, device: DeviceLike) -> Backend:
        dev = Device.parse(device)
        backend = self._by_device.get(dev.type)
        if backend is None:
            if dev.type in self._lazy:
                backend = self._load(dev.type)
            else:
                known = sorted(set(self._by_device) | set(self._lazy))
                raise ValueError(f"device {str(dev)!r}: no backend serves {dev.type!r}; known device types: {known}")
        return backend

    def for_array(self, array: Any) -> Backend:
        backend = self._by_type.get(type(array))
        if backend is not None:
            return backend
        module = type(array).__module__.split(".")[0]
        if module in self._lazy_modules:
            backend = self.for_device(self._lazy_modules[module])
            self._by_type[type(array)] = backend  # subclasses and views of the same library
            return backend
        for t, b in list(self._by_type.items()):
            if isinstance(array, t):
                self._by_type[type(array)] = b
                return b
        raise TypeError(f"no labkit backend handles arrays of type {type(array).__module__}.{type(array).__name__}")

    def names(self) -> list[str]:
        return sorted(set(self._by_name) | {f"{d} (lazy)" for d in self._lazy})


backends = BackendRegistry()
_ndarray = _numpy.ndarray


def array_module(*arrays: Any) -> Any:
    """The numpy-compatible module (``numpy``, ``cupy``, ...) for these arrays."""
    if arrays and type(arrays[0]) is _ndarray:
        return _numpy
    for a in arrays:
        if a is not None and not isinstance(a, (int, float, bool, complex)):
            return backends.for_array(a).xp
    return _numpy
