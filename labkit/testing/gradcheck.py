"""Numerical gradient checks for op authors (labkit's own op tests use them too).

``gradcheck(fn, inputs)`` compares the autograd gradient of ``fn`` with float64
central differences; ``gradgradcheck`` does the same for the gradient itself
(double backward). Both raise ``GradcheckError`` with a report naming the input,
the element (index) and both values, or return True.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labkit.core.autograd import grad as autograd_grad
from labkit.core.tensor import Tensor

#: inputs with at most this many elements are checked element by element;
#: larger ones along random directions (and scanned element-wise only on failure)
ELEMENTWISE_LIMIT = 256


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree; the message says where."""


def _outputs(fn: Callable[..., Any], inputs: Sequence[Any]) -> tuple[Tensor, ...]:
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return tuple(o for o in outs if isinstance(o, Tensor) and o.data.dtype.kind == "f")


def _to_host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _check_inputs(inputs: Sequence[Any], name: str) -> list[int]:
    idx = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad:
            if x.data.dtype != np.float64:
                raise TypeError(f"{name}: input {i} is {x.data.dtype}; finite differences need float64 inputs")
            idx.append(i)
    if not idx:
        raise ValueError(f"{name}: no input requires grad; pass tensors created with requires_grad=True")
    return idx


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    n_directions: int = 4,
    seed: int = 0,
    name: str = "gradcheck",
) -> bool:
    """Check ``fn``'s gradients against central differences in float64.

    ``fn`` takes ``inputs`` (Tensors, or other values passed through) and returns a
    Tensor or a tuple of them. Float64 tensors with ``requires_grad=True`` are checked.
    """
    inputs = list(inputs)
    wrt = _check_inputs(inputs, name)
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    if not outs:
        raise ValueError(f"{name}: fn returned no float tensor to differentiate")
    cotangents = [_like(rng.standard_normal(o.shape), o) for o in outs]

    def loss_value() -> float:
        os = _outputs(fn, inputs)  # with grad on: fn may itself differentiate (gradgradcheck)
        return float(sum(float((_to_host(o.data) * _to_host(v.data)).sum()) for o, v in zip(os, cotangents)))

    diff_outs = [o for o in outs if o.requires_grad]
    if diff_outs:
        grads = autograd_grad(
            diff_outs,
            [inputs[i] for i in wrt],
            [v for o, v in zip(outs, cotangents) if o.requires_grad],
            allow_unused=True,
        )
    else:
        grads = (None,) * len(wrt)

    for i, g in zip(wrt, grads):
        x = inputs[i]
        analytic = np.zeros(x.shape) if g is None else _to_host(g.data).astype(np.float64)
        if analytic.shape != tuple(x.shape):
            raise GradcheckError(f"{name}: gradient of input {i} has shape {analytic.shape}, expected {tuple(x.shape)}")
        if x.data.size <= ELEMENTWISE_LIMIT:
            _scan_elements(x, i, analytic, loss_value, eps, atol, rtol, name)
            continue
        for d in range(n_directions):
            u = rng.standard_normal(x.shape)
            num = _directional(x, u, loss_value, eps)
            ana = float((analytic * u).sum())
            if not np.isclose(ana, num, atol=atol * np.sqrt(u.size), rtol=rtol):
                _scan_elements(x, i, analytic, loss_value, eps, atol, rtol, name)
                raise GradcheckError(
                    f"{name}: input {i} {tuple(x.shape)}: directional derivative {d} disagrees: "
                    f"analytic {ana:.6g}, numerical {num:.6g}"
                )
    return True


def _like(a: np.ndarray, ref: Tensor) -> Tensor:
    from labkit.core.creation import tensor

    return tensor(a.astype(ref.data.dtype), device=ref.device)


def _perturb(x: Tensor, delta: np.ndarray) -> Any:
    original = x.data
    xp_delta = delta.astype(original.dtype) if isinstance(original, np.ndarray) else _device_array(delta, original)
    from labkit.backends.registry import array_module

    x.data = array_module(original).asarray(original + xp_delta)  # 0-d + 0-d gives a scalar
    return original


def _device_array(a: np.ndarray, like: Any) -> Any:
    from labkit.backends.registry import backends

    b = backends.for_array(like)
    return b.asarray(a, like.dtype, b.device_of(like))


def _directional(x: Tensor, u: np.ndarray, loss_value: Callable[[], float], eps: float) -> float:
    original = _perturb(x, eps * u)
    try:
        fp = loss_value()
        x.data = original
        _perturb(x, -eps * u)
        fm = loss_value()
    finally:
        x.data = original
    return (fp - fm) / (2 * eps)


def _scan_elements(
    x: Tensor,
    i: int,
    analytic: np.ndarray,
    loss_value: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
    name: str,
) -> None:
    flat = analytic.reshape(-1)
    for j in range(flat.size):
        e = np.zeros(flat.size)
        e[j] = 1.0
        num = _directional(x, e.reshape(analytic.shape), loss_value, eps)
        if not np.isclose(flat[j], num, atol=atol, rtol=rtol):
            index = tuple(int(k) for k in np.unravel_index(j, analytic.shape))
            raise GradcheckError(
                f"{name}: input {i} {tuple(x.shape)}, element {index}: analytic gradient {flat[j]:.6g}, "
                f"numerical {num:.6g} (difference {flat[j] - num:.3g}, atol {atol}, rtol {rtol})"
            )


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives: the gradient of ``fn`` (built with ``create_graph=True``) is itself gradchecked."""
    inputs = list(inputs)
    wrt = _check_inputs(inputs, "gradgradcheck")
    rng = np.random.default_rng(seed + 1)
    outs = _outputs(fn, inputs)
    cotangents = [_like(rng.standard_normal(o.shape), o).requires_grad_() for o in outs]
    n_in = len(inputs)

    def grad_fn(*args: Any) -> tuple[Tensor, ...]:
        xs = list(args[:n_in])
        vs = list(args[n_in:])
        os = _outputs(fn, xs)
        gs = autograd_grad(list(os), [xs[i] for i in wrt], vs, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(grad_fn, inputs + cotangents, eps=eps, atol=atol, rtol=rtol, seed=seed + 2, name="gradgradcheck")
