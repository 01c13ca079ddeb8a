"""The cupy backend: devices ``cuda`` and ``cuda:N``. The only module that imports cupy.

It is registered lazily (see ``labkit.backends``), so importing labkit never
imports cupy; it is loaded the first time a tensor moves to ``cuda``.
"""

from __future__ import annotations

from typing import Any

from labkit.backends.device import Device

try:
    import cupy
except ImportError as exc:  # pragma: no cover - depends on the machine
    cupy = None
    _IMPORT_ERROR: Exception | None = exc
else:
    _IMPORT_ERROR = None


class CupyBackend:
    name = "cupy"
    device_type = "cuda"

    def __init__(self) -> None:
        self.xp = cupy
        self.array_types: tuple[type, ...] = (cupy.ndarray,) if cupy is not None else ()

    def _require(self) -> None:
        if cupy is None:
            raise RuntimeError(
                "device 'cuda' needs cupy, which failed to import "
                f"({_IMPORT_ERROR}); install labkit[gpu] (CUDA 12) or labkit[gpu-cuda13]"
            )

    def device_of(self, array: Any) -> Device:
        return Device("cuda", int(array.device.id))

    def asarray(self, data: Any, dtype: Any, device: Device) -> Any:
        self._require()
        with cupy.cuda.Device(device.index or 0):
            return cupy.asarray(data, dtype=dtype)

    def to_numpy(self, array: Any) -> Any:
        return cupy.asnumpy(array)

    def is_available(self) -> bool:
        if cupy is None:
            return False
        try:
            return cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:
            return False


cupy_backend = CupyBackend()
if cupy is None:
    # keep the registry importable, but fail with the import error on use
    cupy_backend._require()  # raises RuntimeError with install advice
