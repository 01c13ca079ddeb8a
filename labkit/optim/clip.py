"""Gradient clipping, in place on the gradient arrays: ``clip_grad_norm_`` and ``clip_grad_value_``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from labkit.backends.registry import array_module
from labkit.core.tensor import Tensor

TensorsLike = Tensor | Iterable[Tensor]


def _grads(parameters: TensorsLike, op: str) -> list[Any]:
    """The gradient arrays of the parameters that have one."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: parameters expected Tensors, got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad.data)
    return grads


def _norm_type(norm_type: float | str, op: str) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise ValueError(f"{op}: norm_type expected a number or 'inf', got {norm_type!r}")
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{op}: norm_type expected a number or 'inf', got {type(norm_type).__name__}")
    if not norm_type > 0:
        raise ValueError(f"{op}: norm_type expected a positive number or inf, got {norm_type}")
    return float(norm_type)


def _total_norm(grads: list[Any], p: float) -> float:
    if not grads:
        return 0.0
    # one reduction per backend: cupy norms stay on the device until one transfer each
    by_module: dict[Any, list[Any]] = {}
    for g in grads:
        by_module.setdefault(array_module(g), []).append(g)
    partial = []
    for xp, arrays in by_module.items():
        norms = xp.stack([xp.linalg.norm(g.reshape(-1), ord=p) for g in arrays])
        partial.append(float(xp.linalg.norm(norms.astype(xp.float64), ord=p)))
    if len(partial) == 1:
        return partial[0]
    return max(partial) if p == math.inf else math.fsum(n**p for n in partial) ** (1.0 / p)


def grad_norm(parameters: TensorsLike, norm_type: float | str = 2.0) -> float:
    """The ``norm_type``-norm of all gradients together, as if concatenated into one vector (0.0 if none)."""
    return _total_norm(_grads(parameters, "grad_norm"), _norm_type(norm_type, "grad_norm"))


def clip_grad_norm_(
    parameters: TensorsLike, max_norm: float, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale all gradients in place so their joint norm is at most ``max_norm``; return the norm before.

    As in PyTorch the scale is ``max_norm / (total_norm + 1e-6)`` when below 1; ``norm_type``
    may be ``inf`` (the largest absolute value). A NaN or inf norm raises RuntimeError with
    ``error_if_nonfinite=True``, and otherwise spreads into the gradients, as in PyTorch.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"clip_grad_norm_: max_norm expected a number, got {type(max_norm).__name__}")
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm expected >= 0, got {max_norm}")
    grads = _grads(parameters, "clip_grad_norm_")
    total = _total_norm(grads, _norm_type(norm_type, "clip_grad_norm_"))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also NaN, which PyTorch multiplies in
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters: TensorsLike, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"clip_grad_value_: clip_value expected a number, got {type(clip_value).__name__}")
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value expected >= 0, got {clip_value}")
    for g in _grads(parameters, "clip_grad_value_"):
        array_module(g).clip(g, -clip_value, clip_value, out=g)
