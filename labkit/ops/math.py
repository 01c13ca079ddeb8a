"""Elementwise math: exp/log family, trigonometry, clamp, maximum/minimum, where.

Differentiable ops keep the input's float dtype (integer inputs of exp, log, ...
become the default float). ``sign`` returns a constant that does not require grad;
comparisons and logic are in ``labkit.ops.compare``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module
from labkit.core import dtypes
from labkit.core.creation import tensor
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import broadcast_shapes, operand, operands
from labkit.ops.broadcast import sum_to

__all__ = [
    "exp", "log", "log1p", "sqrt", "rsqrt", "abs", "sign", "sin", "cos", "square",
    "clamp", "clip", "maximum", "minimum", "where",
]  # fmt: skip


def _tensor(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def _floating(x: Any, op: str) -> Tensor:
    """``x`` as a float tensor: integer and bool tensors become the default float."""
    x = _tensor(x, op)
    return x if x.dtype.kind == "f" else x.to(dtype=dtypes.default_float)


def _const(array: Any) -> Tensor:
    """A result that carries no gradient (comparisons, masks, sign)."""
    return Tensor._wrap(array_module(array).asarray(array))


# ---- exp, log, powers ---------------------------------------------------------------


class Exp(Function):
    def forward(self, x: Any) -> Any:
        y = array_module(x).asarray(array_module(x).exp(x))
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        (y,) = self.saved_tensors
        return gy * y


class Log(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(array_module(x).log(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy / x


class Log1p(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(array_module(x).log1p(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy / (x + 1.0)


class Sqrt(Function):
    def forward(self, x: Any) -> Any:
        y = array_module(x).asarray(array_module(x).sqrt(x))
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        (y,) = self.saved_tensors
        return gy * 0.5 / y


class Rsqrt(Function):
    def forward(self, x: Any) -> Any:
        y = array_module(x).asarray(1 / array_module(x).sqrt(x))
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        (y,) = self.saved_tensors
        y = y  # d/dx x^(-1/2) = -y^3 / 2
        return gy * (y * y * y) * -0.5


class Square(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(x * x)

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy * x * 2.0


class Abs(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(array_module(x).abs(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy * sign(x)


def exp(x: Tensor) -> Tensor:
    return Exp()(_floating(x, "exp"))


def log(x: Tensor) -> Tensor:
    """Natural logarithm (NaN below 0, -inf at 0, as in numpy)."""
    return Log()(_floating(x, "log"))


def log1p(x: Tensor) -> Tensor:
    """``log(1 + x)``, accurate for small x."""
    return Log1p()(_floating(x, "log1p"))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt()(_floating(x, "sqrt"))


def rsqrt(x: Tensor) -> Tensor:
    """``1 / sqrt(x)``."""
    return Rsqrt()(_floating(x, "rsqrt"))


def square(x: Tensor) -> Tensor:
    """``x * x`` (integer tensors stay integer)."""
    return Square()(_tensor(x, "square"))


def abs(x: Tensor) -> Tensor:  # noqa: A001 - numpy's and PyTorch's name
    """``|x|``; the gradient at 0 is 0 (``sign(0)``), as in PyTorch."""
    return Abs()(_tensor(x, "abs"))


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 in x's dtype; a constant (no gradient)."""
    x = _tensor(x, "sign")
    return _const(array_module(x.data).sign(x.data))


# ---- trigonometry ------------------------------------------------------------------


class Sin(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(array_module(x).sin(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy * cos(x)


class Cos(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(array_module(x).cos(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return -(gy * sin(x))


def sin(x: Tensor) -> Tensor:
    return Sin()(_floating(x, "sin"))


def cos(x: Tensor) -> Tensor:
    return Cos()(_floating(x, "cos"))


# ---- clamp, maximum, minimum ----------------------------------------------------------


class Clamp(Function):
    """Clamp to ``[lo, hi]``; the gradient is 1 where ``lo <= x <= hi`` and 0 elsewhere (PyTorch's rule)."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo = lo
        self.hi = hi

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        y = x
        inside = None
        if self.lo is not None:
            lo = xp.asarray(self.lo, dtype=x.dtype)
            y = xp.maximum(y, lo)
            inside = x >= lo
        if self.hi is not None:
            hi = xp.asarray(self.hi, dtype=x.dtype)
            y = xp.minimum(y, hi)
            inside = x <= hi if inside is None else inside & (x <= hi)
        if self.needs_input_grad[0]:
            self.save_for_backward(inside.astype(x.dtype))
        return xp.asarray(y)

    def backward(self, gy: Tensor) -> Tensor:
        (inside,) = self.saved_tensors
        return gy * inside


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
    """``x`` limited to ``[min, max]`` (either may be None; Tensor bounds broadcast and get gradients)."""
    x = _tensor(x, "clamp")
    if min is None and max is None:
        raise ValueError("clamp: expected at least one of min and max, got neither")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not _is_number(bound) and not isinstance(bound, Tensor):
            raise TypeError(f"clamp: expected a number or Tensor for {name}, got {type(bound).__name__}")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        y = x if min is None else maximum(x, min)
        return y if max is None else minimum(y, max)
    if x.dtype.kind != "f" and any(isinstance(b, (float, np.floating)) for b in (min, max)):
        x = x.to(dtype=dtypes.default_float)
    return Clamp(min, max)(x)


def clip(x: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
    """Alias of ``clamp``."""
    return clamp(x, min, max)


class Maximum(Function):
    """Elementwise larger value; at ties the gradient is split half and half."""

    def forward(self, x0: Any, x1: Any) -> Any:
        xp = array_module(x0)
        self.shapes = (x0.shape, x1.shape)
        if any(self.needs_input_grad):
            first = self._first(x0, x1).astype(x0.dtype) + (x0 == x1).astype(x0.dtype) * 0.5
            self.save_for_backward(first)
        return xp.asarray(self._pick(xp, x0, x1))

    @staticmethod
    def _first(x0: Any, x1: Any) -> Any:
        return x0 > x1

    @staticmethod
    def _pick(xp: Any, x0: Any, x1: Any) -> Any:
        return xp.maximum(x0, x1)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        (first,) = self.saved_tensors  # constant weights: 1 where x0 was picked, 0.5 at ties
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (sum_to(gy * first, s0) if n0 else None, sum_to(gy * (1.0 - first), s1) if n1 else None)


class Minimum(Maximum):
    @staticmethod
    def _first(x0: Any, x1: Any) -> Any:
        return x0 < x1

    @staticmethod
    def _pick(xp: Any, x0: Any, x1: Any) -> Any:
        return xp.minimum(x0, x1)


def _binary(x0: Any, x1: Any, op: str) -> tuple[Tensor, Tensor]:
    """Operands as Tensors of one float dtype (float32 with float64 -> float64), shapes checked."""
    x0, x1 = operands(x0, x1, op)
    broadcast_shapes(x0.shape, x1.shape, op)
    if x0.dtype != x1.dtype and x0.dtype.kind == "f" and x1.dtype.kind == "f":
        common = np.promote_types(x0.dtype, x1.dtype)
        x0, x1 = x0.to(dtype=common), x1.to(dtype=common)
    return x0, x1


def maximum(x0: Any, x1: Any) -> Tensor:
    """Elementwise maximum, broadcasting; either side may be a Python number."""
    return Maximum()(*_binary(x0, x1, "maximum"))


def minimum(x0: Any, x1: Any) -> Tensor:
    """Elementwise minimum, broadcasting; either side may be a Python number."""
    return Minimum()(*_binary(x0, x1, "minimum"))


# ---- where ------------------------------------------------------------------------------


class Where(Function):
    """``x0`` where ``cond`` else ``x1``; ``cond`` (a bool array) is a parameter, not an input."""

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def forward(self, x0: Any, x1: Any) -> Any:
        self.shapes = (x0.shape, x1.shape)
        cond, self.cond = self.cond, None  # the saved slot keeps it only until backward has run
        self.save_for_backward(cond)
        return array_module(x0).asarray(array_module(x0).where(cond, x0, x1))

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        (cond,) = self.saved_tensors
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (
            sum_to(where(cond, gy, 0.0), s0) if n0 else None,
            sum_to(where(cond, 0.0, gy), s1) if n1 else None,
        )


def where(condition: Any, x0: Any, x1: Any) -> Tensor:
    """Pick ``x0`` where ``condition`` (bool) is True, else ``x1``; all three broadcast together."""
    like = next((v for v in (x0, x1, condition) if isinstance(v, Tensor)), None)
    if like is None:
        raise TypeError(
            f"where: expected a Tensor among condition, x0 and x1, got {type(condition).__name__}, "
            f"{type(x0).__name__} and {type(x1).__name__}"
        )
    cond = condition if isinstance(condition, Tensor) else tensor(condition, device=like.device)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: expected a bool condition, got {cond.dtype}")
    if cond.device != like.device:
        raise ValueError(f"where: the condition is on {cond.device} and the values on {like.device}")
    if not isinstance(x0, Tensor) and not isinstance(x1, Tensor):
        x0 = operand(x0, cond, "where")
    x0, x1 = _binary(x0, x1, "where")
    broadcast_shapes(cond.shape, broadcast_shapes(x0.shape, x1.shape, "where"), "where")
    return Where(cond.data)(x0, x1)
