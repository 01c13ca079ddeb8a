"""The numpy backend: device ``cpu``."""

from __future__ import annotations

from typing import Any

import numpy

from labkit.backends.device import CPU, Device


class NumpyBackend:
    name = "numpy"
    device_type = "cpu"
    xp = numpy
    array_types: tuple[type, ...] = (numpy.ndarray,)

    def device_of(self, array: Any) -> Device:
        return CPU

    def asarray(self, data: Any, dtype: Any, device: Device) -> Any:
        if hasattr(data, "__cuda_array_interface__") or type(data).__module__.startswith("cupy"):
            data = data.get()  # cupy -> host
        return numpy.asarray(data, dtype=dtype)

    def to_numpy(self, array: Any) -> Any:
        return array

    def is_available(self) -> bool:
        return True


numpy_backend = NumpyBackend()
