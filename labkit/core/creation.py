"""Making tensors: ``tensor``, ``zeros``, ``randn``, ``from_numpy``, ``from_dlpack``...

dtype rules: Python floats become float32 (the default float), Python ints int64,
bools bool; arrays keep their dtype (so float64 stays float64 for gradient checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.backends.device import CPU, Device, DeviceLike
from labkit.backends.registry import backends
from labkit.core import dtypes
from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor

Shape = int | Sequence[int]


def _infer_dtype(data: Any) -> np.dtype:
    a = np.asarray(data)
    if a.dtype.kind == "f":
        return dtypes.default_float
    if a.dtype.kind in "iu":
        return dtypes.default_int
    if a.dtype.kind == "b":
        return dtypes.bool_
    raise TypeError(f"tensor: cannot make a tensor from data of dtype {a.dtype} ({type(data).__name__})")


def to_array(data: Any, dtype: Any = None, device: DeviceLike | None = None) -> Any:
    """A backend array for ``data`` on ``device`` with ``dtype`` (see the module's dtype rules)."""
    if isinstance(data, Tensor):
        data = data.data
    dt = dtypes.as_dtype(dtype)
    if device is None:
        try:
            backend = backends.for_array(data)
        except TypeError:
            backend = backends.for_device(CPU)
        dev = backend.device_of(data) if backend.device_type != "cpu" else CPU
    else:
        dev = Device.parse(device)
        backend = backends.for_device(dev)
    if dt is None:
        is_array = hasattr(data, "dtype") and hasattr(data, "shape")
        dt = data.dtype if is_array else _infer_dtype(data)
        if dt.kind not in "biuf":
            raise TypeError(f"tensor: labkit tensors hold bool, integer or float data, got {dt}")
    return backend.asarray(data, dt, dev)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: DeviceLike | None = None) -> Tensor:
    """A new tensor from a Python number, nested lists or an array (copied if it must be converted)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def as_tensor(data: Any, dtype: Any = None, device: DeviceLike | None = None) -> Tensor:
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a numpy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array) if array.dtype.kind in "biuf" else Tensor(array)


def from_dlpack(obj: Any, device: DeviceLike | None = None) -> Tensor:
    """A tensor sharing memory with any DLPack producer (numpy, cupy, torch, jax...)."""
    dev_type = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else 1
    # DLPack device types: 1 = CPU, 2 = CUDA, 3 = CUDA host
    if dev_type in (1, 3):
        arr = np.from_dlpack(obj)
    else:
        xp = backends.for_device("cuda").xp
        arr = xp.from_dlpack(obj)
    t = Tensor._wrap(arr)
    return t if device is None else t.to(device)


def _shape(shape: tuple[Any, ...], op: str) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"{op}: expected a shape of non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _xp(device: DeviceLike | None) -> tuple[Any, Device]:
    dev = CPU if device is None else Device.parse(device)
    return backends.for_device(dev), dev


def _fill(
    op: str, shape: tuple[Any, ...], value: Any, dtype: Any, device: DeviceLike | None, requires_grad: bool
) -> Tensor:
    dt = dtypes.as_dtype(dtype) or (dtypes.default_float if isinstance(value, float) else None) or dtypes.default_float
    backend, dev = _xp(device)
    arr = backend.asarray(np.full(_shape(shape, op), value, dtype=dt), dt, dev)
    return Tensor._wrap(arr).requires_grad_(requires_grad) if requires_grad else Tensor._wrap(arr)


def zeros(*shape: Any, dtype: Any = None, device: DeviceLike | None = None, requires_grad: bool = False) -> Tensor:
    return _fill("zeros", shape, 0, dtype, device, requires_grad)


def ones(*shape: Any, dtype: Any = None, device: DeviceLike | None = None, requires_grad: bool = False) -> Tensor:
    return _fill("ones", shape, 1, dtype, device, requires_grad)


def empty(*shape: Any, dtype: Any = None, device: DeviceLike | None = None, requires_grad: bool = False) -> Tensor:
    return _fill("empty", shape, 0, dtype, device, requires_grad)


def full(
    shape: Shape, fill_value: Any, dtype: Any = None, device: DeviceLike | None = None, requires_grad: bool = False
) -> Tensor:
    shp = (shape,) if isinstance(shape, int) else tuple(shape)
    if dtype is None:
        dtype = _infer_dtype(fill_value)
    return _fill("full", shp, fill_value, dtype, device, requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def empty_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return empty(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def arange(
    start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: DeviceLike | None = None
) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = _infer_dtype([start, end, step])
    backend, dev = _xp(device)
    return Tensor._wrap(
        backend.asarray(np.arange(start, end, step, dtype=dtypes.as_dtype(dtype)), dtypes.as_dtype(dtype), dev)
    )


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: DeviceLike | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype) or dtypes.default_float
    backend, dev = _xp(device)
    return Tensor._wrap(backend.asarray(np.linspace(start, end, steps, dtype=dt), dt, dev))


def eye(n: int, m: int | None = None, dtype: Any = None, device: DeviceLike | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype) or dtypes.default_float
    backend, dev = _xp(device)
    return Tensor._wrap(backend.asarray(np.eye(n, m, dtype=dt), dt, dev))


def _random(
    op: str, draw: Any, shape: tuple[Any, ...], dtype: Any, device: DeviceLike | None, requires_grad: bool
) -> Tensor:
    dt = dtypes.as_dtype(dtype) or dtypes.default_float
    if dt.kind != "f":
        raise TypeError(f"{op}: expected a float dtype, got {dt}")
    backend, dev = _xp(device)
    arr = backend.asarray(draw(_shape(shape, op)).astype(dt, copy=False), dt, dev)
    t = Tensor._wrap(arr)
    return t.requires_grad_(True) if requires_grad else t


def randn(
    *shape: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal samples, drawn on the host from ``generator`` (same values on every device)."""
    rng = resolve(generator)
    return _random("randn", rng.standard_normal, shape, dtype, device, requires_grad)


def rand(
    *shape: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in [0, 1), drawn on the host from ``generator``."""
    rng = resolve(generator)
    return _random("rand", rng.random, shape, dtype, device, requires_grad)


def randint(
    low: int,
    high: int,
    size: Shape,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Tensor:
    rng = resolve(generator)
    dt = dtypes.as_dtype(dtype) or dtypes.int64
    backend, dev = _xp(device)
    shp = (size,) if isinstance(size, int) else tuple(size)
    return Tensor._wrap(backend.asarray(rng.integers(low, high, size=shp, dtype=dt), dt, dev))


def randn_like(x: Tensor, generator: Generator | None = None) -> Tensor:
    return randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def rand_like(x: Tensor, generator: Generator | None = None) -> Tensor:
    return rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
