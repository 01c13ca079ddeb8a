"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm`` (PyTorch semantics).

Batch norm keeps ``running_mean``, ``running_var`` (float, like the parameters) and
``num_batches_tracked`` (int64) as buffers, updated in place while training;
``momentum=None`` gives the cumulative average ``1 / num_batches_tracked``, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.core import dtypes
from labkit.core.creation import ones, zeros
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.linear import _check_size, _float_dtype, _new_parameter
from labkit.nn.module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _check_eps(layer: str, eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"{layer}: expected eps to be a number >= 0, got {eps!r}")
    return float(eps)


# ---- batch norm ------------------------------------------------------------------------------


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d; subclasses set the accepted input ranks."""

    _ranks: tuple[int, ...]
    _layout: str

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: DeviceLike | None = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = _check_size(name, "num_features", num_features)
        self.eps = _check_eps(name, eps)
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1
        ):
            raise ValueError(f"{name}: expected momentum to be a number in [0, 1] or None, got {momentum!r}")
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = _float_dtype(name, dtype)
        if self.affine:
            self.weight = _new_parameter((self.num_features,), dt, device)
            if bias:
                self.bias = _new_parameter((self.num_features,), dt, device)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features, dtype=dt, device=device))
            self.register_buffer("running_var", ones(self.num_features, dtype=dt, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype=dtypes.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight to ones and bias to zeros."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim not in self._ranks or x.shape[1] != self.num_features:
            layer = f"{type(self).__name__}({self.num_features})"
            if not isinstance(x, Tensor):
                raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
            raise ValueError(f"{layer}: expected input {self._layout.format(c=self.num_features)}, got {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        # evaluation uses the running statistics when they are tracked, the batch's otherwise
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=factor,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Per-channel normalisation of ``(N, C)`` or ``(N, C, L)`` with batch statistics while training.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``; ``weight``/``bias`` ``(C,)``
    start at ones/zeros (``affine=False``: neither; ``bias=False``: no bias). Running
    averages use the unbiased batch variance.
    """

    _ranks = (2, 3)
    _layout = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    """Per-channel normalisation of ``(N, C, H, W)``; see ``BatchNorm1d``."""

    _ranks = (4,)
    _layout = "(N, {c}, H, W)"


# ---- layer norm ------------------------------------------------------------------------------


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims: ``(..., *normalized_shape)`` -> same shape.

    With ``elementwise_affine``, ``weight`` (ones) and ``bias`` (zeros, unless ``bias=False``)
    have shape ``normalized_shape``.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) else tuple(normalized_shape)
        if not shape:
            raise ValueError("LayerNorm: expected a non-empty normalized_shape, got ()")
        self.normalized_shape = tuple(_check_size("LayerNorm", "normalized_shape", s) for s in shape)
        self.eps = _check_eps("LayerNorm", eps)
        self.elementwise_affine = bool(elementwise_affine)
        dt = _float_dtype("LayerNorm", dtype)
        if self.elementwise_affine:
            self.weight = _new_parameter(self.normalized_shape, dt, device)
            if bias:
                self.bias = _new_parameter(self.normalized_shape, dt, device)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if not isinstance(x, Tensor) or x.ndim < k or x.shape[x.ndim - k :] != self.normalized_shape:
            layer = f"LayerNorm({self.normalized_shape})"
            if not isinstance(x, Tensor):
                raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
            dims = ", ".join(map(str, self.normalized_shape))
            raise ValueError(f"{layer}: expected input (..., {dims}), got {x.shape}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )
