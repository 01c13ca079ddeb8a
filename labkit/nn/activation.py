"""Activation layers: thin modules over ``labkit.functional`` with PyTorch's arguments and reprs.

Every layer maps any shape to the same shape (``Softmax``/``LogSoftmax`` normalise
along ``dim``). ``inplace`` is accepted for PyTorch compatibility; labkit always
returns a new tensor.
"""

from __future__ import annotations

import warnings
from typing import Any

import labkit.functional as F
from labkit.core.tensor import Tensor
from labkit.nn.module import Module

__all__ = ["ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh"]


def _number(layer: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{layer}: expected a number for {name}, got {type(value).__name__}")
    return float(value)


def _inplace_repr(inplace: bool) -> str:
    return "inplace=True" if inplace else ""


class ReLU(Module):
    """``max(x, 0)``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class LeakyReLU(Module):
    """``x`` where ``x >= 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = _number("ELU", "alpha", alpha)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """``x * Phi(x)``; ``approximate="tanh"`` uses the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate to be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``x * sigmoid(x)`` (swish)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """``tanh(x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _number("Softplus", "beta", beta)
        self.threshold = _number("Softplus", "threshold", threshold)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def _softmax_dim(layer: str, dim: int | None, x: Any) -> int:
    """``dim``, or PyTorch's legacy implicit choice (0 for 0-, 1- and 3-d inputs, else 1) with a warning."""
    if dim is not None:
        return dim
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
    warnings.warn(
        f"{layer}: implicit dimension choice is deprecated (as in PyTorch); pass dim explicitly",
        UserWarning,
        stacklevel=3,
    )
    return 0 if x.ndim in (0, 1, 3) else 1


def _check_dim(layer: str, dim: Any) -> int | None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"{layer}: expected an int or None for dim, got {type(dim).__name__}")
    return dim


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``dim``."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = _check_dim("Softmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, _softmax_dim("Softmax", self.dim, x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = _check_dim("LogSoftmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, _softmax_dim("LogSoftmax", self.dim, x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
