"""Dense layers and shape layers: ``Linear``, ``Bilinear``, ``Identity``, ``Flatten``, ``Unflatten``.

Constructor arguments, parameter names, shapes and default initialisation follow
PyTorch, so a ``state_dict`` converts either way. Initialisers draw from the
``generator`` given to the constructor (``labkit.default_generator`` when None).

The small helpers at the top (``_check_size``, ``_float_dtype``, ``_new_parameter``)
are shared by the other layer modules of ``labkit.nn``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.core import dtypes
from labkit.core.creation import zeros
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.module import Module
from labkit.nn.parameter import Parameter

__all__ = ["Bilinear", "Flatten", "Identity", "Linear", "Unflatten"]


# ---- helpers shared by the layer modules ---------------------------------------------------


def _check_size(layer: str, name: str, value: Any, minimum: int = 1) -> int:
    """An int argument ``>= minimum`` (bools are rejected), or a ValueError/TypeError naming the layer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: expected an int for {name}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{layer}: expected {name} >= {minimum}, got {value}")
    return int(value)


def _float_dtype(layer: str, dtype: Any) -> np.dtype:
    """The parameters' dtype: float32 by default; integer dtypes are an error."""
    dt = dtypes.as_dtype(dtype) or dtypes.default_float
    if dt.kind != "f":
        raise TypeError(f"{layer}: expected a float dtype for the parameters, got {dt}")
    return dt


def _new_parameter(shape: tuple[int, ...], dtype: np.dtype, device: DeviceLike | None) -> Parameter:
    """A zero-filled parameter, to be filled by an initialiser."""
    return Parameter(zeros(shape, dtype=dtype, device=device))


def _fan_in_uniform_(t: Tensor, fan_in: int, generator: Generator | None) -> Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's bias init (and its weight init for Linear/Conv)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return init.uniform_(t, -bound, bound, generator=generator)


def _input_error(layer: str, expected: str, x: Any) -> ValueError | TypeError:
    if not isinstance(x, Tensor):
        return TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
    return ValueError(f"{layer}: expected input {expected}, got {x.shape}")


# ---- Linear ----------------------------------------------------------------------------------


class Linear(Module):
    """``y = x @ weight.T + bias``: ``(..., in_features)`` -> ``(..., out_features)``.

    ``weight (out_features, in_features)`` is Kaiming-uniform with ``a=sqrt(5)``, i.e.
    U(-1/sqrt(in), 1/sqrt(in)), and ``bias (out_features,)`` is U(-1/sqrt(in), 1/sqrt(in)),
    as in PyTorch.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_size("Linear", "in_features", in_features, 0)
        self.out_features = _check_size("Linear", "out_features", out_features, 0)
        dt = _float_dtype("Linear", dtype)
        self.weight = _new_parameter((self.out_features, self.in_features), dt, device)
        if bias:
            self.bias = _new_parameter((self.out_features,), dt, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """Redraw the weights with PyTorch's default scheme."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            _fan_in_uniform_(self.bias, self.in_features, generator)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim == 0 or x.shape[-1] != self.in_features:
            raise _input_error(f"Linear(in_features={self.in_features})", f"(..., {self.in_features})", x)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """``y_k = x1 @ weight[k] @ x2 + bias_k``: ``(..., in1)``, ``(..., in2)`` -> ``(..., out)``.

    ``weight (out, in1, in2)`` and ``bias (out,)`` are U(-1/sqrt(in1), 1/sqrt(in1)), as in PyTorch.
    """

    def __init__(
        self,
        in1_features: int,
        in2_features: int,
        out_features: int,
        bias: bool = True,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.in1_features = _check_size("Bilinear", "in1_features", in1_features)
        self.in2_features = _check_size("Bilinear", "in2_features", in2_features)
        self.out_features = _check_size("Bilinear", "out_features", out_features)
        dt = _float_dtype("Bilinear", dtype)
        self.weight = _new_parameter((self.out_features, self.in1_features, self.in2_features), dt, device)
        if bias:
            self.bias = _new_parameter((self.out_features,), dt, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        _fan_in_uniform_(self.weight, self.in1_features, generator)
        if self.bias is not None:
            _fan_in_uniform_(self.bias, self.in1_features, generator)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        layer = f"Bilinear({self.in1_features}, {self.in2_features}, {self.out_features})"
        if not isinstance(x1, Tensor) or x1.ndim == 0 or x1.shape[-1] != self.in1_features:
            raise _input_error(layer, f"x1 (..., {self.in1_features})", x1)
        if not isinstance(x2, Tensor) or x2.shape[:-1] != x1.shape[:-1] or x2.shape[-1] != self.in2_features:
            raise _input_error(layer, f"x2 {(*x1.shape[:-1], self.in2_features)} to match x1 {x1.shape}", x2)
        out, in1, in2 = self.weight.shape
        # one GEMM: t[..., k, i] = sum_j weight[k, i, j] x2[..., j]
        t = F.linear(x2, F.reshape(self.weight, (out * in1, in2)))  # (..., out * in1)
        t = F.reshape(t, (*x1.shape[:-1], out, in1))  # (..., out, in1)
        y = F.sum(t * F.unsqueeze(x1, -2), axis=-1)  # (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


# ---- shape layers ----------------------------------------------------------------------------


class Identity(Module):
    """Returns its input; takes (and ignores) any constructor arguments, like PyTorch's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Merge dims ``start_dim..end_dim``: ``(N, C, H, W)`` -> ``(N, C*H*W)`` with the defaults."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Flatten: expected an int for {name}, got {type(value).__name__}")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Flatten: expected a Tensor input, got {type(x).__name__}")
        n = max(x.ndim, 1)
        if not (-n <= self.start_dim < n and -n <= self.end_dim < n):
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}): expected an input that has "
                f"dims {self.start_dim} and {self.end_dim}, got {x.shape}"
            )
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: ``(N, 12)`` -> ``(N, 3, 4)`` for ``Unflatten(1, (3, 4))``.

    One entry of ``unflattened_size`` may be -1 (inferred).
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"Unflatten: expected an int for dim, got {type(dim).__name__}")
        if not isinstance(unflattened_size, (tuple, list)) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in unflattened_size
        ):
            raise TypeError(f"Unflatten: expected a tuple of ints for unflattened_size, got {unflattened_size!r}")
        if not unflattened_size or sum(s == -1 for s in unflattened_size) > 1 or any(s < -1 for s in unflattened_size):
            raise ValueError(
                f"Unflatten: expected a non-empty unflattened_size of sizes >= 0 with at most one -1, "
                f"got {unflattened_size!r}"
            )
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        layer = f"Unflatten(dim={self.dim}, unflattened_size={self.unflattened_size})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{layer}: expected an input with dim {self.dim}, got {x.shape}")
        axis = self.dim % x.ndim
        size = x.shape[axis]
        known = math.prod(s for s in self.unflattened_size if s != -1)
        if (-1 in self.unflattened_size and (known == 0 or size % known)) or (
            -1 not in self.unflattened_size and known != size
        ):
            raise ValueError(f"{layer}: cannot split dim {self.dim} of size {size} (input {x.shape})")
        return F.reshape(x, (*x.shape[:axis], *self.unflattened_size, *x.shape[axis + 1 :]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
