"""Losses with PyTorch semantics: cross-entropy (fused), NLL, MSE, L1, smooth L1, BCE with logits.

Classification losses take ``input (N, C)`` or ``(N, C, d1, ...)`` (or unbatched ``(C,)``)
and integer class targets ``(N,)`` / ``(N, d1, ...)``; targets equal to ``ignore_index``
contribute nothing, and ``reduction="mean"`` divides by the summed weights of the
targets that count. Class weights and ``pos_weight`` are constants (no gradient).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.mode import get_mode
from labkit.core.tensor import Tensor
from labkit.ops import activation as activation_ops
from labkit.ops import math as math_ops
from labkit.ops import shape as shape_ops
from labkit.ops._util import operand
from labkit.ops.broadcast import sum_to

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]

REDUCTIONS = ("mean", "sum", "none")


# ---- shared checks ----------------------------------------------------------------


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    total = sum_to(loss, ())
    return total * (1.0 / max(loss.numel(), 1)) if reduction == "mean" else total


class _Targets:
    """Class-index targets resolved once: the class axis, safe indices, per-element weights."""

    def __init__(self, op: str, x: Tensor, target: Any, weight: Any, ignore_index: int) -> None:
        if not isinstance(x, Tensor) or x.dtype.kind != "f":
            raise TypeError(f"{op}: expected a float Tensor input, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim == 0:
            raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
        target = operand(target, x, op)
        if target.dtype.kind not in "iu":
            raise TypeError(
                f"{op}: expected integer class-index targets, got dtype {target.dtype} "
                "(class-probability targets are not supported)"
            )
        self.axis = 1 if x.ndim >= 2 else 0
        n_classes = x.shape[self.axis]
        expected = x.shape[: self.axis] + x.shape[self.axis + 1 :]
        if target.shape != expected:
            raise ValueError(
                f"{op}: target of shape {target.shape} does not match input of shape {x.shape}: expected {expected}"
            )
        t = target.data
        xp = array_module(x.data)
        valid = t != ignore_index
        if t.size:
            bad = valid & ((t < 0) | (t >= n_classes))
            if bool(bad.any()):
                value = int(t[bad].reshape(-1)[0])
                raise ValueError(
                    f"{op}: target {value} is out of range for {n_classes} classes "
                    f"(expected 0..{n_classes - 1} or ignore_index={ignore_index})"
                )
        self.weight = None
        if weight is not None:
            weight = operand(weight, x, op)
            if weight.shape != (n_classes,):
                raise ValueError(
                    f"{op}: weight must have shape ({n_classes},) for input of shape {x.shape}, got {weight.shape}"
                )
            self.weight = weight.data.astype(x.dtype, copy=False)
        t_safe = xp.where(valid, t, 0)
        self.index = xp.expand_dims(t_safe, self.axis)  # (N, 1, d1, ...)
        if self.weight is None:
            self.coef = valid.astype(x.dtype)
        else:
            self.coef = xp.where(valid, self.weight[t_safe], 0).astype(x.dtype, copy=False)
        self.valid = valid
        self.n_classes = n_classes

    def class_shape(self, ndim: int) -> tuple[int, ...]:
        """Shape that puts a (C,) vector along the class axis."""
        return tuple(self.n_classes if i == self.axis else 1 for i in range(ndim))

    def one_hot(self, xp: Any, ndim: int, dtype: Any) -> Any:
        classes = xp.arange(self.n_classes).reshape(self.class_shape(ndim))
        return (classes == self.index).astype(dtype)


def _expand_grad(gy: Tensor, scale: Any, axis: int, reduction: str) -> Tensor:
    """Upstream gradient times the reduction's scale, broadcastable against the input."""
    if reduction != "none":
        return gy * scale if scale is not None else gy
    shape = (*gy.shape[:axis], 1, *gy.shape[axis:])
    return shape_ops.reshape(gy, shape)


# ---- cross-entropy and NLL -------------------------------------------------------


class CrossEntropy(Function):
    """Fused stable log-softmax + NLL (+ label smoothing) along the class axis.

    backward: ``(softmax(x) * rowsum(A) - A) * gy * scale``, where ``A`` holds the per-class
    coefficients of ``-log p`` (weighted one-hot plus the smoothing term).
    """

    op_name = "cross_entropy"

    def __init__(self, targets: _Targets, label_smoothing: float, reduction: str) -> None:
        self.targets = targets
        self.smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        tg, eps, ax = self.targets, self.smoothing, self.targets.axis
        z = x - x.max(axis=ax, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=ax, keepdims=True)
        logp = z - xp.log(s)
        nll = -xp.take_along_axis(logp, tg.index, axis=ax).squeeze(ax)
        loss = nll * tg.coef if eps == 0 else nll * (tg.coef * (1.0 - eps))
        if eps:
            w = logp if tg.weight is None else logp * tg.weight.reshape(tg.class_shape(x.ndim))
            smooth = -w.sum(axis=ax)
            loss = loss + smooth * (tg.valid * (eps / tg.n_classes)).astype(x.dtype)
        self.scale = None
        if self.reduction != "none":
            loss = loss.sum()
            if self.reduction == "mean":
                self.scale = 1.0 / tg.coef.sum()  # a 0-d array of x's dtype
                loss = loss * self.scale
            loss = xp.asarray(loss, dtype=x.dtype)
        e /= s  # softmax, reused by backward
        self.save_for_backward(x, e)
        return loss

    def backward(self, gy: Tensor) -> Tensor:
        x, p = self.saved_tensors
        tg, eps = self.targets, self.smoothing
        xp = array_module(p.data)
        dtype = p.dtype
        coef = tg.coef * (1.0 - eps) if eps else tg.coef
        a = tg.one_hot(xp, p.ndim, dtype) * xp.expand_dims(coef, tg.axis)
        row = coef
        if eps:
            w = xp.ones(tg.n_classes, dtype=dtype) if tg.weight is None else tg.weight
            valid = xp.expand_dims(tg.valid, tg.axis).astype(dtype) * (eps / tg.n_classes)
            a = a + w.reshape(tg.class_shape(p.ndim)) * valid
            row = row + tg.valid.astype(dtype) * (w.sum() * (eps / tg.n_classes))
        if get_mode().grad_enabled:  # create_graph: softmax as an op so the gradient is differentiable
            p = activation_ops.softmax(x, tg.axis)
        gx = p * Tensor._wrap(xp.expand_dims(row, tg.axis).astype(dtype, copy=False)) - Tensor._wrap(a)
        scale = None if self.scale is None else Tensor._wrap(xp.asarray(self.scale, dtype=dtype))
        return gx * _expand_grad(gy, scale, tg.axis, self.reduction)


class NLLLoss(Function):
    """``-weight[t] * x[t]`` picked along the class axis (input: log-probabilities)."""

    op_name = "nll_loss"

    def __init__(self, targets: _Targets, reduction: str) -> None:
        self.targets = targets
        self.reduction = reduction

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        tg = self.targets
        loss = -xp.take_along_axis(x, tg.index, axis=tg.axis).squeeze(tg.axis) * tg.coef
        self.scale = None
        if self.reduction != "none":
            loss = loss.sum()
            if self.reduction == "mean":
                self.scale = 1.0 / tg.coef.sum()
                loss = loss * self.scale
            loss = xp.asarray(loss, dtype=x.dtype)
        self.x_meta = (x.ndim, x.dtype)
        return loss

    def backward(self, gy: Tensor) -> Tensor:
        tg = self.targets
        ndim, dtype = self.x_meta
        xp = array_module(gy.data)
        a = tg.one_hot(xp, ndim, dtype) * xp.expand_dims(-tg.coef, tg.axis)
        scale = None if self.scale is None else Tensor._wrap(xp.asarray(self.scale, dtype=dtype))
        return Tensor._wrap(a) * _expand_grad(gy, scale, tg.axis, self.reduction)


def cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Softmax cross-entropy from logits ``(N, C, ...)`` and class indices ``(N, ...)`` (torch semantics)."""
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    targets = _Targets("cross_entropy", input, target, weight, ignore_index)
    return CrossEntropy(targets, float(label_smoothing), reduction)(input)


def nll_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood from log-probabilities ``(N, C, ...)`` and class indices ``(N, ...)``."""
    _check_reduction(reduction, "nll_loss")
    targets = _Targets("nll_loss", input, target, weight, ignore_index)
    return NLLLoss(targets, reduction)(input)


# ---- regression losses ------------------------------------------------------------


def _pair(op: str, input: Any, target: Any) -> tuple[Tensor, Tensor]:  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    target = operand(target, input, op)
    if input.shape != target.shape:
        raise ValueError(f"{op}: input of shape {input.shape} and target of shape {target.shape} differ")
    if target.dtype != input.dtype:
        target = target.to(dtype=input.dtype)
    return input, target


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Squared error ``(input - target) ** 2``; both of the same shape."""
    _check_reduction(reduction, "mse_loss")
    x, t = _pair("mse_loss", input, target)
    d = x - t
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Absolute error ``|input - target|``; both of the same shape."""
    _check_reduction(reduction, "l1_loss")
    x, t = _pair("l1_loss", input, target)
    return _reduce(math_ops.abs(x - t), reduction)


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002
    """Huber-like loss: ``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``."""
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    x, t = _pair("smooth_l1_loss", input, target)
    d = x - t
    if beta == 0:
        return _reduce(math_ops.abs(d), reduction)
    inside = Tensor._wrap((array_module(d.data).abs(d.data) < beta).astype(d.dtype))
    quadratic = d * d * (0.5 / beta)
    linear = math_ops.abs(d) - 0.5 * beta
    return _reduce(inside * quadratic + (1.0 - inside) * linear, reduction)


# ---- binary cross-entropy ----------------------------------------------------------


class BCEWithLogits(Function):
    """``(1 - t) x + (1 + (pw - 1) t) softplus(-x)``, times ``weight``, computed stably."""

    op_name = "binary_cross_entropy_with_logits"

    def __init__(self, weight: Any, pos_weight: Any) -> None:
        self.weight = weight
        self.pos_weight = pos_weight

    def forward(self, x: Any, t: Any) -> Any:
        xp = array_module(x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # log(1 + e^-x), no overflow
        log_weight = 1 if self.pos_weight is None else 1 + (self.pos_weight - 1) * t
        loss = (1 - t) * x + log_weight * softplus_neg
        if self.weight is not None:
            loss = loss * self.weight
        self.save_for_backward(x, t)
        return loss

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, t = self.saved_tensors
        n_x, n_t = self.needs_input_grad
        g = gy if self.weight is None else gy * Tensor._wrap(self.weight)
        pw = None if self.pos_weight is None else Tensor._wrap(self.pos_weight)
        gx = gt = None
        if n_x:  # d/dx = (1 - t) - log_weight * sigmoid(-x)
            sig_neg = activation_ops.sigmoid(-x)
            log_weight = 1.0 if pw is None else (pw - 1.0) * t + 1.0
            gx = sum_to(g * ((1.0 - t) - log_weight * sig_neg), x.shape)
        if n_t:  # d/dt = -x + (pw - 1) softplus(-x)
            dt = -x if pw is None else (pw - 1.0) * activation_ops.softplus(-x) - x
            gt = sum_to(g * dt, t.shape)
        return gx, gt


def binary_cross_entropy_with_logits(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Any,
    weight: Any = None,
    pos_weight: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Sigmoid + binary cross-entropy from logits, stable for large ``|input|``.

    ``weight`` broadcasts against the input; ``pos_weight`` against its last (class) axis.
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    op = "binary_cross_entropy_with_logits"
    x, t = _pair(op, input, target)
    consts = []
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            consts.append(None)
            continue
        value = operand(value, x, op)
        try:
            np.broadcast_shapes(value.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"{op}: {name} of shape {value.shape} cannot broadcast to the input's shape {x.shape}"
            ) from None
        consts.append(value.data.astype(x.dtype, copy=False))
    return _reduce(BCEWithLogits(*consts)(x, t), reduction)
