"""Normalisation: ``layer_norm`` and ``batch_norm`` (PyTorch semantics), one fused op for both.

Both compute ``xhat = (x - mean) / sqrt(var + eps)`` over some axes, then ``xhat * w + b``.
The backward is the closed form ``rstd * (g - mean(g) - xhat * mean(g * xhat))``
(``g = gy * w``); with ``create_graph=True`` the statistics are recomputed from ``x``
with labkit ops, so the gradient is itself differentiable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.mode import get_mode, no_grad
from labkit.core.tensor import Tensor
from labkit.ops import shape as shape_ops
from labkit.ops.broadcast import sum_to

__all__ = ["batch_norm", "layer_norm"]


# ---- the fused op --------------------------------------------------------------------


class _Normalize(Function):
    """Normalise over ``axes`` (batch statistics, or fixed ``stats`` = (mean, var)), then scale and shift.

    Inputs: ``x`` and, as flagged, ``weight`` and ``bias`` already shaped to broadcast
    against ``x``. ``on_stats(mean, var)`` sees the batch statistics (running averages).
    """

    def __init__(
        self,
        axes: tuple[int, ...],
        eps: float,
        has_weight: bool,
        has_bias: bool,
        stats: tuple[Any, Any] | None = None,
        on_stats: Callable[[Any, Any, int], None] | None = None,
    ) -> None:
        self.axes = axes
        self.eps = eps
        self.has_weight = has_weight
        self.has_bias = has_bias
        self.stats = stats
        self.on_stats = on_stats

    def forward(self, x: Any, *params: Any) -> Any:
        xp = array_module(x)
        self.stat_shape = tuple(1 if i in self.axes else s for i, s in enumerate(x.shape))
        self.count = x.size // max(1, _prod(self.stat_shape))
        if self.stats is None:
            mean = x.mean(axis=self.axes, keepdims=True)
            xc = x - mean
            var = (xc * xc).mean(axis=self.axes, keepdims=True)
            if self.on_stats is not None:
                self.on_stats(mean, var, self.count)
        else:
            mean, var = (s.reshape(self.stat_shape) for s in self.stats)
            xc = x - mean
        rstd = 1.0 / xp.sqrt(var + self.eps)
        y = xc * rstd  # xhat
        weight = params[0] if self.has_weight else None
        self.save_for_backward(x, y.copy() if params else y, rstd, weight)
        if weight is not None:
            y *= weight
        if self.has_bias:
            y += params[-1]
        return y

    def _mean(self, t: Tensor) -> Tensor:
        return sum_to(t, self.stat_shape) * (1.0 / self.count)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        x, xhat, rstd, weight = self.saved_tensors
        needs = self.needs_input_grad
        batch_stats = self.stats is None
        if get_mode().grad_enabled:  # create_graph: rebuild xhat from x so second derivatives flow
            if batch_stats:
                xc = x - self._mean(x)
                rstd = (self._mean(xc * xc) + self.eps) ** -0.5
            else:
                xc = x - Tensor._wrap(self.stats[0].reshape(self.stat_shape))
            xhat = xc * rstd
        grads: list[Tensor | None] = []
        if needs[0]:
            g = gy * weight if weight is not None else gy
            if batch_stats:
                g = g - self._mean(g) - xhat * self._mean(g * xhat)
            grads.append(g * rstd)
        else:
            grads.append(None)
        if self.has_weight:
            grads.append(sum_to(gy * xhat, weight.shape) if needs[1] else None)
        if self.has_bias:
            grads.append(sum_to(gy, self.bias_shape) if needs[-1] else None)
        return tuple(grads)


class LayerNorm(_Normalize):
    op_name = "layer_norm"


class BatchNorm(_Normalize):
    op_name = "batch_norm"


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _param(value: Any, name: str, shape: tuple[int, ...], x: Tensor, op: str) -> Tensor | None:
    if value is None:
        return None
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: expected a Tensor or None for {name}, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape} for input of shape {x.shape}, got {value.shape}")
    if value.dtype != x.dtype:
        raise TypeError(f"{op}: {name} must have the input's dtype {x.dtype}, got {value.dtype}")
    return value


def _apply(fn: _Normalize, x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    fn.bias_shape = bias.shape if bias is not None else ()
    return fn(x, *(p for p in (weight, bias) if p is not None))


# ---- layer_norm -----------------------------------------------------------------------


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims of ``x (..., *normalized_shape)``.

    ``weight`` and ``bias`` have shape ``normalized_shape``; the output has ``x``'s shape.
    """
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        raise TypeError(f"layer_norm: expected a float Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    norm_shape = (
        (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    )
    k = len(norm_shape)
    if k == 0 or k > x.ndim or x.shape[x.ndim - k :] != norm_shape:
        raise ValueError(
            f"layer_norm: normalized_shape {norm_shape} does not match the trailing dims of input {x.shape}"
        )
    weight = _param(weight, "weight", norm_shape, x, "layer_norm")
    bias = _param(bias, "bias", norm_shape, x, "layer_norm")
    axes = tuple(range(x.ndim - k, x.ndim))
    return _apply(LayerNorm(axes, float(eps), weight is not None, bias is not None), x, weight, bias)


# ---- batch_norm -----------------------------------------------------------------------


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise per channel of ``x (N, C)`` or ``(N, C, *)``.

    Training uses batch statistics and updates ``running_mean`` / ``running_var`` (shape
    ``(C,)``) in place: ``r = (1 - momentum) r + momentum * stat``, with the unbiased
    batch variance. Evaluation uses the running statistics.
    """
    op = "batch_norm"
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C) or (N, C, *), got {x.shape}")
    channels = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and (not isinstance(value, Tensor) or value.shape != (channels,)):
            got = value.shape if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{op}: {name} must be a Tensor of shape ({channels},) for input {x.shape}, got {got}")
        if value is not None and value.device != x.device:
            raise ValueError(
                f"{op}: expected {name} on the input's device {x.device}, got {value.device}; "
                "move the module (or the statistics) there with .to(device)"
            )
    weight = _param(weight, "weight", (channels,), x, op)
    bias = _param(bias, "bias", (channels,), x, op)
    axes = (0, *range(2, x.ndim))
    if training:
        count = x.numel() // channels
        if count <= 1:
            raise ValueError(
                f"{op}: expected more than 1 value per channel when training, got input of shape {x.shape}"
            )

        def update(mean: Any, var: Any, n: int) -> None:
            with no_grad():
                if running_mean is not None:
                    rm = running_mean.data
                    rm *= 1.0 - momentum
                    rm += (momentum * mean).reshape(channels).astype(rm.dtype, copy=False)
                if running_var is not None:
                    rv = running_var.data
                    rv *= 1.0 - momentum
                    rv += (momentum * n / (n - 1) * var).reshape(channels).astype(rv.dtype, copy=False)

        fn = BatchNorm(axes, float(eps), weight is not None, bias is not None, on_stats=update)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: running_mean and running_var are required when training=False")
        stats = (running_mean.data.astype(x.dtype, copy=False), running_var.data.astype(x.dtype, copy=False))
        fn = BatchNorm(axes, float(eps), weight is not None, bias is not None, stats=stats)
    stat_shape = (1, channels) + (1,) * (x.ndim - 2)
    reshape = shape_ops.reshape
    return _apply(
        fn,
        x,
        reshape(weight, stat_shape) if weight is not None else None,
        reshape(bias, stat_shape) if bias is not None else None,
    )
