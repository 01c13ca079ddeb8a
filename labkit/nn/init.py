"""Weight initialisers that fill a tensor in place from an explicit generator.

Values are drawn on the host in float64 from ``generator`` (``None`` uses
``labkit.default_generator``), cast to the tensor's dtype and copied into its
existing array on its device. The same seed therefore gives identical weights on
every run and every device. Each function returns the tensor it filled.
Fan conventions follow PyTorch: for a weight of shape ``(out, in, *kernel)``,
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labkit.backends.registry import backends
from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_GAIN = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
_NONLINEARITIES = (*_LINEAR_GAIN, "tanh", "relu", "leaky_relu", "selu")


def _check_tensor(op: str, t: Any, floating: bool = True) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(t).__name__}")
    if floating and t.data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got {t.data.dtype}")


def _fill(t: Tensor, values: Any) -> Tensor:
    """Copy host ``values`` into ``t.data`` in place, keeping its dtype and device."""
    backend = backends.for_array(t.data)
    host = np.asarray(values, dtype=t.data.dtype)
    t.data[...] = (
        host if backend.device_type == "cpu" else backend.asarray(host, t.data.dtype, backend.device_of(t.data))
    )
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table); ``param`` is leaky_relu's slope."""
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: expected a number as leaky_relu's negative slope, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of {list(_NONLINEARITIES)}")


def _calculate_fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``; needs at least 2 dimensions."""
    shape = tuple(t.shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out: expected a tensor with at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


# ---- plain distributions ---------------------------------------------------------------


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with U(a, b)."""
    _check_tensor("uniform_", t)
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill(t, resolve(generator).uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2)."""
    _check_tensor("normal_", t)
    if std < 0:
        raise ValueError(f"normal_: expected std >= 0, got {std}")
    return _fill(t, resolve(generator).normal(mean, std, size=t.shape))


def trunc_normal_(
    t: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator: Generator | None = None
) -> Tensor:
    """Fill with N(mean, std^2) restricted to [a, b] (absolute bounds, as in PyTorch), by resampling."""
    _check_tensor("trunc_normal_", t)
    if std < 0 or not a < b:
        raise ValueError(f"trunc_normal_: expected std >= 0 and a < b, got std={std}, a={a}, b={b}")
    rng = resolve(generator)
    values = rng.normal(mean, std, size=t.shape)
    bad = (values < a) | (values > b)
    for _ in range(1000):
        if not bad.any():
            break
        values[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = (values < a) | (values > b)
    return _fill(t, np.clip(values, a, b))


def constant_(t: Tensor, value: float) -> Tensor:
    _check_tensor("constant_", t, floating=False)
    t.data[...] = value
    return t


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1)


def eye_(t: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity (ones on the diagonal)."""
    _check_tensor("eye_", t, floating=False)
    if t.ndim != 2:
        raise ValueError(f"eye_: expected a 2-D tensor, got shape {tuple(t.shape)}")
    return _fill(t, np.eye(*t.shape))


# ---- scaled by fan ----------------------------------------------------------------------


def xavier_uniform_(t: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _check_tensor("xavier_uniform_", t)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return _fill(t, resolve(generator).uniform(-bound, bound, size=t.shape))


def xavier_normal_(t: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_tensor("xavier_normal_", t)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    std = gain * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return _fill(t, resolve(generator).normal(0.0, std, size=t.shape))


def kaiming_uniform_(
    t: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan); ``a`` is leaky_relu's negative slope."""
    _check_tensor("kaiming_uniform_", t)
    if t.numel() == 0:
        return t
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    bound = math.sqrt(3.0) * std
    return _fill(t, resolve(generator).uniform(-bound, bound, size=t.shape))


def kaiming_normal_(
    t: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    _check_tensor("kaiming_normal_", t)
    if t.numel() == 0:
        return t
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    return _fill(t, resolve(generator).normal(0.0, std, size=t.shape))


def orthogonal_(t: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR of a Gaussian; trailing dims are flattened.

    For ``(rows, cols)`` with rows <= cols the rows are orthonormal (W W^T = I),
    otherwise the columns are (W^T W = I); then everything is scaled by ``gain``.
    """
    _check_tensor("orthogonal_", t)
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: expected a tensor with at least 2 dimensions, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        return t
    rows = t.shape[0]
    cols = t.numel() // rows
    flat = resolve(generator).normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the decomposition unique, so Q is uniformly distributed
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(t.shape))
