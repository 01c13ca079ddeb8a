"""Array backends: numpy on the CPU (always), cupy on NVIDIA GPUs (lazy, optional)."""

from labkit.backends.device import CPU, Device, DeviceLike
from labkit.backends.numpy_backend import numpy_backend
from labkit.backends.registry import Backend, BackendRegistry, array_module, backends

backends.register(numpy_backend)
backends.register_lazy("cuda", "labkit.backends.cupy_backend", "cupy_backend", array_module_prefix="cupy")

__all__ = ["CPU", "Backend", "BackendRegistry", "Device", "DeviceLike", "array_module", "backends"]
