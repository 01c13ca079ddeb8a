"""Pooling layers over ``(N, C, H, W)`` (or unbatched ``(C, H, W)``): max, average, adaptive average.

Arguments follow PyTorch. ``ceil_mode=True`` and ``return_indices=True`` are not
supported by labkit's pooling ops and raise at construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import labkit.functional as F
from labkit.core.tensor import Tensor
from labkit.nn.module import Module

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]


def _pair(layer: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{layer}: expected an int or a pair of ints for {name}, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{layer}: expected {name} >= {minimum}, got {value!r}")
    return values  # type: ignore[return-value]


def _unsupported(layer: str, name: str, value: Any) -> None:
    if value:
        raise ValueError(f"{layer}: {name}=True is not supported by labkit; expected {name}=False, got {value!r}")


def _pool_4d(layer: Module, x: Tensor, pool: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply ``pool`` to a 4-d input, adding and removing the batch dim of a 3-d one."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{type(layer).__name__}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{type(layer).__name__}({layer.extra_repr()}): expected input (N, C, H, W) or (C, H, W), got {x.shape}"
        )
    if x.ndim == 3:
        return F.squeeze(pool(F.unsqueeze(x, 0)), 0)
    return pool(x)


class MaxPool2d(Module):
    """Max over ``kernel_size`` windows: ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    ``H_out = (H + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1``;
    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) counts as -inf.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        _pair("MaxPool2d", "kernel_size", kernel_size, 1)
        if stride is not None:
            _pair("MaxPool2d", "stride", stride, 1)
        _pair("MaxPool2d", "padding", padding, 0)
        _pair("MaxPool2d", "dilation", dilation, 1)
        _unsupported("MaxPool2d", "return_indices", return_indices)
        _unsupported("MaxPool2d", "ceil_mode", ceil_mode)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return _pool_4d(self, x, lambda t: F.max_pool2d(t, self.kernel_size, self.stride, self.padding, self.dilation))

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """Mean over ``kernel_size`` windows: ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    ``H_out = (H + 2 * padding - kernel_size) // stride + 1``; ``stride`` defaults to
    ``kernel_size``. Padding is zeros, counted in the mean unless ``count_include_pad=False``;
    ``divisor_override`` divides each window's sum by that number instead.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        kh, kw = _pair("AvgPool2d", "kernel_size", kernel_size, 1)
        if stride is not None:
            _pair("AvgPool2d", "stride", stride, 1)
        _pair("AvgPool2d", "padding", padding, 0)
        _unsupported("AvgPool2d", "ceil_mode", ceil_mode)
        if divisor_override is not None and (
            isinstance(divisor_override, bool) or not isinstance(divisor_override, int) or divisor_override < 1
        ):
            raise ValueError(
                f"AvgPool2d: expected divisor_override to be a positive int or None, got {divisor_override!r}"
            )
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        self._window_size = kh * kw

    def _pool(self, x: Tensor) -> Tensor:
        if self.divisor_override is None:
            return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        # the window sum (mean over the full window, padding included) over the given divisor
        mean = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=True)
        return mean * (self._window_size / self.divisor_override)

    def forward(self, x: Tensor) -> Tensor:
        return _pool_4d(self, x, self._pool)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive bins: ``(N, C, H, W)`` -> ``(N, C, *output_size)``.

    ``output_size`` is an int or a pair; ``None`` in the pair keeps that input size.
    Bin ``i`` of an axis of size ``n`` covers ``[floor(i * n / m), ceil((i + 1) * n / m))``.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        if len(sizes) != 2 or not all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in sizes):
            raise TypeError(
                f"AdaptiveAvgPool2d: expected an int or a pair of ints/None for output_size, got {output_size!r}"
            )
        if any(s is not None and s < 1 for s in sizes):
            raise ValueError(f"AdaptiveAvgPool2d: expected positive output sizes, got {output_size!r}")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        sizes = tuple(self.output_size) if isinstance(self.output_size, (tuple, list)) else self.output_size
        return _pool_4d(self, x, lambda t: F.adaptive_avg_pool2d(t, sizes))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
