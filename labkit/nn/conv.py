"""Convolution layers: ``Conv1d`` and ``Conv2d`` (PyTorch's arguments, parameters and init).

``weight (out_channels, in_channels / groups, *kernel_size)`` is Kaiming-uniform with
``a=sqrt(5)`` and ``bias (out_channels,)`` is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
``fan_in = in_channels / groups * prod(kernel_size)``, as in PyTorch. A ``padding_mode``
other than ``"zeros"`` pads with ``F.pad`` first and convolves without padding.
Unbatched inputs ``(C, L)`` / ``(C, H, W)`` are accepted, like PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.linear import _check_size, _fan_in_uniform_, _float_dtype, _new_parameter
from labkit.nn.module import Module

__all__ = ["Conv1d", "Conv2d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_F_PAD_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _tuple(layer: str, name: str, value: Any, n: int, minimum: int) -> tuple[int, ...]:
    """An int or an n-tuple of ints, each ``>= minimum``, as an n-tuple."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"{layer}: expected an int or {n} ints for {name}, got {value!r}")
    return tuple(_check_size(layer, name, v, minimum) for v in values)


class _ConvNd(Module):
    """Shared body of Conv1d and Conv2d; ``_nd`` is the number of spatial dims."""

    _nd: int
    _spatial: str  # "L" or "H, W", for error messages

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.in_channels = _check_size(name, "in_channels", in_channels)
        self.out_channels = _check_size(name, "out_channels", out_channels)
        self.groups = _check_size(name, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{name}: expected groups to divide in_channels and out_channels, got groups={groups}, "
                f"in_channels={in_channels}, out_channels={out_channels}"
            )
        self.kernel_size = _tuple(name, "kernel_size", kernel_size, nd, 1)
        self.stride = _tuple(name, "stride", stride, nd, 1)
        self.dilation = _tuple(name, "dilation", dilation, nd, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: expected padding to be an int, a tuple, 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' expects stride 1, got stride={self.stride}")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = _tuple(name, "padding", padding, nd, 0)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: expected padding_mode to be one of {list(PADDING_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        dt = _float_dtype(name, dtype)
        self.weight = _new_parameter(
            (self.out_channels, self.in_channels // self.groups, *self.kernel_size), dt, device
        )
        if bias:
            self.bias = _new_parameter((self.out_channels,), dt, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """Redraw the weights with PyTorch's default scheme."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
            _fan_in_uniform_(self.bias, fan_in, generator)

    def _explicit_padding(self) -> list[int]:
        """F.pad's (before, after) pairs from the last spatial dim backwards."""
        pairs = []
        for i in range(self._nd):
            if self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                pairs.append((total // 2, total - total // 2))
            elif self.padding == "valid":
                pairs.append((0, 0))
            else:
                pairs.append((self.padding[i], self.padding[i]))  # type: ignore[index]
        return [p for pair in reversed(pairs) for p in pair]

    def forward(self, x: Tensor) -> Tensor:
        nd, c = self._nd, self.in_channels
        if not isinstance(x, Tensor) or x.ndim not in (nd + 1, nd + 2) or x.shape[-nd - 1] != c:
            layer = f"{type(self).__name__}({self.in_channels}, {self.out_channels})"
            expected = f"(N, {c}, {self._spatial}) or ({c}, {self._spatial})"
            if isinstance(x, Tensor):
                raise ValueError(f"{layer}: expected input {expected}, got {x.shape}")
            raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
        unbatched = x.ndim == nd + 1
        if unbatched:
            x = F.unsqueeze(x, 0)
        conv = F.conv1d if nd == 1 else F.conv2d
        if self.padding_mode == "zeros":
            y = conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            x = F.pad(x, self._explicit_padding(), mode=_F_PAD_MODE[self.padding_mode])
            y = conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.squeeze(y, 0) if unbatched else y

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-d cross-correlation: ``(N, C_in, L)`` -> ``(N, C_out, L_out)`` (or unbatched ``(C_in, L)``).

    ``L_out = (L + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1``.
    """

    _nd = 1
    _spatial = "L"


class Conv2d(_ConvNd):
    """2-d cross-correlation: ``(N, C_in, H, W)`` -> ``(N, C_out, H_out, W_out)`` (or unbatched ``(C_in, H, W)``).

    ``H_out = (H + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1``, likewise W.
    """

    _nd = 2
    _spatial = "H, W"
