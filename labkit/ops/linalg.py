"""Matrix products: ``matmul`` (numpy semantics, ``@``) and the fused ``linear`` layer op.

``MatMul`` multiplies stacks of matrices, optionally transposing either operand on the
fly (a strided view handed to BLAS, never a copy), so its backward is again ``MatMul``
and every derivative order stays a GEMM. 1-D operands are promoted to matrices by the
``matmul`` wrapper, as numpy does.
"""

from __future__ import annotations

from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops import shape as shape_ops
from labkit.ops._util import operand
from labkit.ops.broadcast import sum_to

__all__ = ["linear", "matmul", "rmatmul"]


# ---- matmul ---------------------------------------------------------------------


class MatMul(Function):
    """``op(a) @ op(b)`` for operands of >= 2 dims, ``op`` swapping the last two axes when asked.

    Batch dimensions broadcast as in numpy; their gradients are summed back.
    """

    def __init__(self, transpose_a: bool = False, transpose_b: bool = False) -> None:
        self.transpose_a = transpose_a
        self.transpose_b = transpose_b

    def forward(self, a: Any, b: Any) -> Any:
        n_a, n_b = self.needs_input_grad
        self.save_for_backward(a if n_b else None, b if n_a else None)
        self.shapes = (a.shape, b.shape)
        xp = array_module(a)
        return xp.matmul(a.swapaxes(-1, -2) if self.transpose_a else a, b.swapaxes(-1, -2) if self.transpose_b else b)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = self.saved_tensors
        ta, tb = self.transpose_a, self.transpose_b
        n_a, n_b = self.needs_input_grad
        ga = gb = None
        # y = op(a) @ op(b): d op(a) = gy @ op(b)^T, d op(b) = op(a)^T @ gy
        if n_a:
            ga = MatMul(tb, True)(b, gy) if ta else MatMul(False, not tb)(gy, b)
            ga = sum_to(ga, self.shapes[0])
        if n_b:
            gb = MatMul(True, ta)(gy, a) if tb else MatMul(not ta, False)(a, gy)
            gb = sum_to(gb, self.shapes[1])
        return ga, gb


def _check_matmul(x0: Tensor, x1: Tensor) -> None:
    s0, s1 = x0.shape, x1.shape
    if x0.ndim == 0 or x1.ndim == 0:
        raise ValueError(
            f"matmul: both operands need at least 1 dimension, got shapes {s0} and {s1}; use mul for scalars"
        )
    k0 = s0[-1]
    k1 = s1[0] if x1.ndim == 1 else s1[-2]
    if k0 != k1:
        raise ValueError(f"matmul: shapes {s0} and {s1} do not align: {k0} != {k1}")
    b0, b1 = s0[:-2], s1[:-2]
    n = max(len(b0), len(b1))
    for p, q in zip((1,) * (n - len(b0)) + b0, (1,) * (n - len(b1)) + b1, strict=True):
        if p != q and p != 1 and q != 1:
            raise ValueError(f"matmul: batch dimensions of shapes {s0} and {s1} cannot be broadcast: {b0} vs {b1}")
    d0, d1 = x0.dtype, x1.dtype
    if d0 != d1 and d0.kind == "f" and d1.kind == "f":
        raise TypeError(f"matmul: operands must have the same float dtype, got {d0} and {d1}")


def _as_operand(value: Any, like: Tensor) -> Tensor:
    """A non-Tensor operand (array, list) as a Tensor in ``like``'s float dtype."""
    t = operand(value, like, "matmul")
    if t.dtype != like.dtype and like.dtype.kind == "f" and t.dtype.kind in "fiub":
        t = t.to(dtype=like.dtype)
    return t


def matmul(x0: Any, x1: Any) -> Tensor:
    """Matrix product with numpy semantics.

    Shapes: ``(..., n, k) @ (..., k, m) -> (..., n, m)`` with broadcast batch dims;
    a 1-D left operand ``(k,)`` acts as ``(1, k)`` and a 1-D right operand as ``(k, 1)``,
    the added dimension being dropped from the result.
    """
    if not isinstance(x0, Tensor):
        if not isinstance(x1, Tensor):
            raise TypeError(f"matmul: expected at least one Tensor, got {type(x0).__name__} and {type(x1).__name__}")
        x0 = _as_operand(x0, x1)
    elif not isinstance(x1, Tensor):
        x1 = _as_operand(x1, x0)
    _check_matmul(x0, x1)
    if x0.ndim >= 2 and x1.ndim >= 2:
        return MatMul()(x0, x1)
    reshape = shape_ops.reshape
    a = reshape(x0, (1, x0.shape[0])) if x0.ndim == 1 else x0
    b = reshape(x1, (x1.shape[0], 1)) if x1.ndim == 1 else x1
    y = MatMul()(a, b)
    out = y.shape[:-2] + ((y.shape[-2],) if x0.ndim > 1 else ()) + ((y.shape[-1],) if x1.ndim > 1 else ())
    return reshape(y, out)


def rmatmul(x0: Tensor, x1: Any) -> Tensor:
    """``x1 @ x0`` (for ``ndarray @ Tensor``)."""
    return matmul(x1, x0)


# ---- linear -----------------------------------------------------------------------


class Linear(Function):
    """``y = x @ W.T + b`` with ``x (..., in)``, ``W (out, in)``, ``b (out,)`` as one GEMM.

    Leading dimensions of ``x`` are flattened into the GEMM's rows (a view for contiguous
    ``x``), so the forward and each backward product is a single BLAS call.
    """

    def forward(self, x: Any, weight: Any, bias: Any = None) -> Any:
        n_x, n_w = self.needs_input_grad[:2]
        self.save_for_backward(x if n_w else None, weight if n_x else None)
        self.x_shape = x.shape
        x2d = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        xp = array_module(x)
        y = xp.matmul(x2d, weight.T)  # (rows, out), C-contiguous
        if bias is not None:
            y += bias
        return y if x.ndim == 2 else y.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = self.saved_tensors
        needs = self.needs_input_grad
        reshape = shape_ops.reshape
        x_shape = self.x_shape
        flat = len(x_shape) != 2
        gy2d = reshape(gy, (-1, gy.shape[-1])) if flat else gy  # (rows, out)
        gx = gw = None
        if needs[0]:
            gx = MatMul()(gy2d, weight)  # (rows, in)
            if flat:
                gx = reshape(gx, x_shape)
        if needs[1]:
            x2d = reshape(x, (-1, x_shape[-1])) if flat else x
            gw = MatMul(True, False)(gy2d, x2d)  # (out, in)
        if len(needs) == 2:
            return gx, gw
        gb = sum_to(gy2d, (gy.shape[-1],)) if needs[2] else None
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """PyTorch's ``F.linear``: ``x @ weight.T + bias``.

    Shapes: ``x (..., in)``, ``weight (out, in)``, ``bias (out,)`` -> ``(..., out)``.
    """
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(
            f"linear: expected Tensors for x and weight, got {type(x).__name__} and {type(weight).__name__}"
        )
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not match weight of shape {weight.shape}: "
            f"expected last dimension {weight.shape[1]}, got {x.shape[-1] if x.ndim else 'a 0-d tensor'}"
        )
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input and weight must have the same dtype, got {x.dtype} and {weight.dtype}")
    if bias is None:
        return Linear()(x, weight)
    if not isinstance(bias, Tensor):
        raise TypeError(f"linear: expected a Tensor or None for bias, got {type(bias).__name__}")
    if bias.shape != (weight.shape[0],):
        raise ValueError(
            f"linear: bias must have shape ({weight.shape[0]},) to match weight {weight.shape}, got {bias.shape}"
        )
    if bias.dtype != x.dtype:
        raise TypeError(f"linear: bias must have the input's dtype {x.dtype}, got {bias.dtype}")
    return Linear()(x, weight, bias)
