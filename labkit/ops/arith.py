"""Arithmetic: ``+ - * / ** neg``, broadcasting-aware."""

from __future__ import annotations

from typing import Any

from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import broadcast_shapes, operands
from labkit.ops.broadcast import sum_to

__all__ = ["add", "sub", "mul", "div", "pow", "neg", "rsub", "rdiv", "rpow"]


class _Binary(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        self.shapes = (x0.shape, x1.shape)
        try:
            return self._compute(x0, x1)
        except ValueError:
            broadcast_shapes(x0.shape, x1.shape, self.op_name)  # raises the clear message
            raise

    def _compute(self, x0: Any, x1: Any) -> Any:
        raise NotImplementedError


class Add(_Binary):
    def _compute(self, x0: Any, x1: Any) -> Any:
        return x0 + x1

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (sum_to(gy, s0) if n0 else None, sum_to(gy, s1) if n1 else None)


class Sub(_Binary):
    def _compute(self, x0: Any, x1: Any) -> Any:
        return x0 - x1

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (sum_to(gy, s0) if n0 else None, sum_to(-gy, s1) if n1 else None)


class Mul(_Binary):
    def _compute(self, x0: Any, x1: Any) -> Any:
        n0, n1 = self.needs_input_grad
        self.save_for_backward(x0 if n1 else None, x1 if n0 else None)
        return x0 * x1

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x0, x1 = self.saved_tensors
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (sum_to(gy * x1, s0) if n0 else None, sum_to(gy * x0, s1) if n1 else None)


class Div(_Binary):
    def _compute(self, x0: Any, x1: Any) -> Any:
        self.save_for_backward(x0, x1)
        return x0 / x1

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x0, x1 = self.saved_tensors
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        gx0 = gy / x1
        return (
            sum_to(gx0, s0) if n0 else None,
            sum_to(-gx0 * x0 / x1, s1) if n1 else None,
        )


class Pow(_Binary):
    """``x0 ** x1`` with a tensor exponent (the gradient in x1 needs x0 > 0)."""

    def _compute(self, x0: Any, x1: Any) -> Any:
        y = x0**x1
        self.save_for_backward(x0, x1, y)
        return y

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        from labkit.ops.math import log

        x0, x1, y = self.saved_tensors
        s0, s1 = self.shapes
        n0, n1 = self.needs_input_grad
        return (
            sum_to(gy * x1 * x0 ** (x1 - 1), s0) if n0 else None,
            sum_to(gy * y * log(x0), s1) if n1 else None,
        )


class PowScalar(Function):
    op_name = "pow"

    def __init__(self, exponent: float) -> None:
        self.exponent = exponent

    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return x**self.exponent

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        c = self.exponent
        if c == 2:
            return gy * MulScalar(2.0)(x)
        return gy * MulScalar(c)(PowScalar(c - 1)(x)) if c - 1 != 1 else gy * MulScalar(c)(x)


class Neg(Function):
    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, gy: Tensor) -> Tensor:
        return -gy


# ---- tensor (op) Python scalar: no constant tensor, the scalar is a parameter ---------


class AddScalar(Function):
    op_name = "add"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x + self.c

    def backward(self, gy: Tensor) -> Tensor:
        return gy


class MulScalar(Function):
    op_name = "mul"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x * self.c

    def backward(self, gy: Tensor) -> Tensor:
        return MulScalar(self.c)(gy)


class RSubScalar(Function):
    """c - x"""

    op_name = "rsub"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.c - x

    def backward(self, gy: Tensor) -> Tensor:
        return Neg()(gy)


class DivScalar(Function):
    """x / c"""

    op_name = "div"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x / self.c

    def backward(self, gy: Tensor) -> Tensor:
        return DivScalar(self.c)(gy)


class RDivScalar(Function):
    """c / x"""

    op_name = "rdiv"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return self.c / x

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return MulScalar(-self.c)(gy) / (x * x)


_SCALARS = (int, float)


def _scalar_ok(x: Any, c: Any, int_result_ok: bool = True) -> bool:
    """Whether ``x (op) c`` can take the scalar path: a Tensor and a Python number of a kind that keeps x's dtype."""
    if type(c) not in _SCALARS or type(x) is not Tensor:
        return False
    kind = x.data.dtype.kind
    return kind == "f" or (int_result_ok and kind in "iu" and type(c) is int)


def add(x0: Any, x1: Any) -> Tensor:
    if _scalar_ok(x0, x1):
        return AddScalar(x1)(x0)
    if _scalar_ok(x1, x0):
        return AddScalar(x0)(x1)
    x0, x1 = operands(x0, x1, "add")
    return Add()(x0, x1)


def sub(x0: Any, x1: Any) -> Tensor:
    if _scalar_ok(x0, x1):
        return AddScalar(-x1)(x0)
    if _scalar_ok(x1, x0):
        return RSubScalar(x0)(x1)
    x0, x1 = operands(x0, x1, "sub")
    return Sub()(x0, x1)


def mul(x0: Any, x1: Any) -> Tensor:
    if _scalar_ok(x0, x1):
        return MulScalar(x1)(x0)
    if _scalar_ok(x1, x0):
        return MulScalar(x0)(x1)
    x0, x1 = operands(x0, x1, "mul")
    return Mul()(x0, x1)


def div(x0: Any, x1: Any) -> Tensor:
    if _scalar_ok(x0, x1, int_result_ok=False):
        return DivScalar(x1)(x0)
    if _scalar_ok(x1, x0, int_result_ok=False):
        return RDivScalar(x0)(x1)
    x0, x1 = operands(x0, x1, "div")
    if x0.data.dtype.kind in "iub" and x1.data.dtype.kind in "iub":
        x0 = x0.to(dtype="float32")
        x1 = x1.to(dtype="float32")
    return Div()(x0, x1)


def pow(x0: Any, x1: Any) -> Tensor:  # noqa: A001 - PyTorch's name
    if isinstance(x0, Tensor) and isinstance(x1, (int, float)) and not isinstance(x1, bool):
        if x1 == 1:
            return x0
        return PowScalar(x1)(x0)
    x0, x1 = operands(x0, x1, "pow")
    return Pow()(x0, x1)


def neg(x: Tensor) -> Tensor:
    return Neg()(x)


def rsub(x0: Tensor, x1: Any) -> Tensor:
    return sub(x1, x0)


def rdiv(x0: Tensor, x1: Any) -> Tensor:
    return div(x1, x0)


def rpow(x0: Tensor, x1: Any) -> Tensor:
    return pow(x1, x0)
