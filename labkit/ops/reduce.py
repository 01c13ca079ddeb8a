"""Reductions: sum, mean, var, std, max, min, logsumexp, prod (differentiable twice), argmax, argmin, any, all.

Every reduction takes numpy-style ``axis``/``keepdims`` and the PyTorch aliases
``dim``/``keepdim``. ``axis`` may be an int, a sequence of ints or None (all axes).
A reduced axis disappears from the output shape unless ``keepdims=True`` keeps it as 1.
"""

from __future__ import annotations

import math as _math
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.backends.registry import array_module
from labkit.core import dtypes
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import normalize_axis
from labkit.ops.broadcast import broadcast_to
from labkit.ops.math import exp, sqrt
from labkit.ops.shape import Reshape

__all__ = ["sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "logsumexp", "prod", "any", "all"]

Axis = int | Sequence[int] | None


# ---- argument handling -------------------------------------------------------------


def _check_tensor(x: Any, op: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def _resolve(
    x: Tensor, op: str, axis: Axis, dim: Axis, keepdims: bool, keepdim: bool | None
) -> tuple[tuple[int, ...], bool]:
    """The reduced axes (an explicit sorted tuple) and keepdims, from numpy or PyTorch names."""
    _check_tensor(x, op)
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    axes = normalize_axis(axis, x.ndim, op)
    if x.ndim == 0:
        return (), bool(keepdims)  # a 0-d tensor reduces to itself (axis 0 / -1 allowed, like PyTorch)
    return (tuple(range(x.ndim)) if axes is None else axes), bool(keepdims)


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return _math.prod(shape[i] for i in axes)


def _check_nonempty(x: Tensor, axes: tuple[int, ...], op: str) -> None:
    if _count(x.shape, axes) == 0 or x.data.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape} over axes {axes} (no identity)")


# ---- helpers for backward ------------------------------------------------------------


def _reshape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return x if x.shape == tuple(shape) else Reshape(tuple(shape))(x)


def _keep(y: Tensor, x_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """A reduction's output (or its gradient) with the reduced axes kept as size 1."""
    return y if keepdims else _reshape(y, _kept_shape(x_shape, axes))


def _expand(gy: Tensor, x_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """A reduction's output gradient broadcast back over the reduced axes to ``x_shape``."""
    return broadcast_to(_keep(gy, x_shape, axes, keepdims), x_shape)


class _Reduction(Function):
    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes = axes
        self.keepdims = keepdims


# ---- sum, mean, var ---------------------------------------------------------------


class Sum(_Reduction):
    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return array_module(x).asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy: Tensor) -> Tensor:
        return _expand(gy, self.x_shape, self.axes, self.keepdims)


class Mean(_Reduction):
    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return array_module(x).asarray(x.mean(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy: Tensor) -> Tensor:
        return _expand(gy, self.x_shape, self.axes, self.keepdims) / _count(self.x_shape, self.axes)


class Var(_Reduction):
    def __init__(self, axes: tuple[int, ...], keepdims: bool, correction: float) -> None:
        super().__init__(axes, keepdims)
        self.correction = correction

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        self.save_for_backward(x)
        return array_module(x).asarray(x.var(axis=self.axes, ddof=self.correction, keepdims=self.keepdims))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        centred = x - mean(x, self.axes, keepdims=True)
        scale = 2.0 / (_count(self.x_shape, self.axes) - self.correction)
        return _expand(gy, self.x_shape, self.axes, self.keepdims) * centred * scale


def sum(  # noqa: A001 - numpy's and PyTorch's name
    x: Tensor,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
    dtype: Any = None,
) -> Tensor:
    """Sum over ``axis``. Bool and integer tensors sum to int64 (no gradient); floats keep their dtype."""
    axes, keep = _resolve(x, "sum", axis, dim, keepdims, keepdim)
    if dtype is not None:
        x = x.to(dtype=dtype)
    if x.dtype.kind in "biu":
        return Tensor._wrap(array_module(x.data).asarray(x.data.sum(axis=axes, keepdims=keep, dtype=dtypes.int64)))
    return Sum(axes, keep)(x)


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype.kind == "f" else x.to(dtype=dtypes.default_float)


def mean(
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Mean over ``axis``; integer and bool tensors give the default float."""
    axes, keep = _resolve(x, "mean", axis, dim, keepdims, keepdim)
    return Mean(axes, keep)(_as_float(x))


def _correction(op: str, correction: float | None, ddof: float | None, unbiased: bool | None) -> float:
    given = [name for name, v in (("correction", correction), ("ddof", ddof), ("unbiased", unbiased)) if v is not None]
    if len(given) > 1:
        raise TypeError(f"{op}: pass only one of correction=, ddof= and unbiased=, got {' and '.join(given)}")
    if unbiased is not None:
        return 1 if unbiased else 0
    value = correction if correction is not None else ddof if ddof is not None else 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{op}: expected a non-negative correction, got {value!r}")
    return value


def var(
    x: Tensor,
    axis: Axis = None,
    keepdims: bool = False,
    correction: float | None = None,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
    ddof: float | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Variance over ``axis`` with ``sum((x - mean)**2) / (N - correction)``; correction=1 (unbiased) by default."""
    axes, keep = _resolve(x, "var", axis, dim, keepdims, keepdim)
    c = _correction("var", correction, ddof, unbiased)
    return Var(axes, keep, c)(_as_float(x))


def std(
    x: Tensor,
    axis: Axis = None,
    keepdims: bool = False,
    correction: float | None = None,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
    ddof: float | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Standard deviation: ``sqrt(var(...))`` with the same arguments (its gradient is infinite where it is 0)."""
    axes, keep = _resolve(x, "std", axis, dim, keepdims, keepdim)
    c = _correction("std", correction, ddof, unbiased)
    return sqrt(Var(axes, keep, c)(_as_float(x)))


# ---- max, min, argmax, argmin -------------------------------------------------------


class Max(_Reduction):
    """Largest value over ``axes``; the gradient is split evenly among tied maxima (like ``torch.amax``)."""

    _pick = "max"

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        self.x_shape = x.shape
        y = getattr(x, self._pick)(axis=self.axes, keepdims=True)
        if self.needs_input_grad[0]:
            hit = (x == y).astype(x.dtype)
            self.save_for_backward(hit / hit.sum(axis=self.axes, keepdims=True))
        return xp.asarray(y if self.keepdims else y.reshape(_reduced_shape(x.shape, self.axes)))

    def backward(self, gy: Tensor) -> Tensor:
        (weights,) = self.saved_tensors  # constant: the derivative of max is piecewise linear
        return _expand(gy, self.x_shape, self.axes, self.keepdims) * weights


class Min(Max):
    _pick = "min"


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def max(  # noqa: A001 - numpy's name
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Largest values over ``axis`` (values only, numpy semantics; see ``argmax`` for indices)."""
    axes, keep = _resolve(x, "max", axis, dim, keepdims, keepdim)
    _check_nonempty(x, axes, "max")
    return Max(axes, keep)(x)


def min(  # noqa: A001 - numpy's name
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Smallest values over ``axis`` (values only, numpy semantics; see ``argmin`` for indices)."""
    axes, keep = _resolve(x, "min", axis, dim, keepdims, keepdim)
    _check_nonempty(x, axes, "min")
    return Min(axes, keep)(x)


def _arg(x: Tensor, op: str, axis: int | None, dim: int | None, keepdims: bool, keepdim: bool | None) -> Tensor:
    _check_tensor(x, op)
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
        axis = dim
    keep = bool(keepdim if keepdim is not None else keepdims)
    if axis is not None and not isinstance(axis, int):
        raise TypeError(f"{op}: expected one int axis or None, got {axis!r}")
    axes = normalize_axis(axis, x.ndim, op)
    if x.data.size == 0:
        raise ValueError(f"{op}: cannot take {op} of an empty tensor of shape {x.shape}")
    xp = array_module(x.data)
    data = x.data
    if axes is None or x.ndim == 0:
        idx = getattr(data.reshape(-1), op)()
        shape = (1,) * x.ndim if keep else ()
    else:
        idx = getattr(data, op)(axis=axes[0])
        shape = _kept_shape(x.shape, axes) if keep else idx.shape
    return Tensor._wrap(xp.asarray(idx, dtype=dtypes.int64).reshape(shape))


def argmax(
    x: Tensor, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None, keepdim: bool | None = None
) -> Tensor:
    """Index (int64, no gradient) of the first largest value along ``axis``, or in the flattened tensor."""
    return _arg(x, "argmax", axis, dim, keepdims, keepdim)


def argmin(
    x: Tensor, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None, keepdim: bool | None = None
) -> Tensor:
    """Index (int64, no gradient) of the first smallest value along ``axis``, or in the flattened tensor."""
    return _arg(x, "argmin", axis, dim, keepdims, keepdim)


# ---- logsumexp, prod ----------------------------------------------------------------


class LogSumExp(_Reduction):
    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        self.x_shape = x.shape
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # all -inf (or inf) slices: shift by 0
        with np.errstate(divide="ignore"):  # an all -inf slice is -inf, not a warning (numpy only warns)
            y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        y = xp.asarray(y if self.keepdims else y.reshape(_reduced_shape(x.shape, self.axes)))
        self.save_for_backward(x, y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        x, y = self.saved_tensors  # y is the output, so double backward differentiates through it
        y = _keep(y, self.x_shape, self.axes, self.keepdims)
        return _expand(gy, self.x_shape, self.axes, self.keepdims) * exp(x - y)


class Prod(_Reduction):
    """Product over ``axes``. The gradient ``prod / x`` is exact only where x has no zeros."""

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        y = array_module(x).asarray(x.prod(axis=self.axes, keepdims=self.keepdims))
        self.save_for_backward(x, y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        x, y = self.saved_tensors
        return _expand(gy * y, self.x_shape, self.axes, self.keepdims) / x


def logsumexp(
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed stably (shifted by the maximum)."""
    axes, keep = _resolve(x, "logsumexp", axis, dim, keepdims, keepdim)
    return LogSumExp(axes, keep)(_as_float(x))


def prod(
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Product over ``axis``. Its gradient assumes x has no zeros (it divides by x)."""
    axes, keep = _resolve(x, "prod", axis, dim, keepdims, keepdim)
    if x.dtype.kind in "biu":
        return Tensor._wrap(array_module(x.data).asarray(x.data.prod(axis=axes, keepdims=keep, dtype=dtypes.int64)))
    return Prod(axes, keep)(x)


# ---- any, all ------------------------------------------------------------------------


def any(  # noqa: A001 - numpy's name
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Whether any element along ``axis`` is nonzero (bool, no gradient)."""
    axes, keep = _resolve(x, "any", axis, dim, keepdims, keepdim)
    return Tensor._wrap(array_module(x.data).asarray(x.data.any(axis=axes, keepdims=keep)))


def all(  # noqa: A001 - numpy's name
    x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """Whether every element along ``axis`` is nonzero (bool, no gradient)."""
    axes, keep = _resolve(x, "all", axis, dim, keepdims, keepdim)
    return Tensor._wrap(array_module(x.data).asarray(x.data.all(axis=axes, keepdims=keep)))
