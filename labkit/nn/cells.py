"""Single-step recurrent cells: ``RNNCell``, ``LSTMCell``, ``GRUCell`` (PyTorch's semantics).

Parameters ``weight_ih`` ``(G*H, I)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih``, ``bias_hh``
``(G*H,)`` with PyTorch's gate order and U(-1/sqrt(H), 1/sqrt(H)) init. A step is two
``linear`` ops and one fused gate op from ``labkit.ops.rnn``.
"""

from __future__ import annotations

import math
from typing import Any

from labkit.backends.device import DeviceLike
from labkit.backends.registry import backends
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn.module import Module
from labkit.nn.recurrent import _positive_int, uniform_parameter
from labkit.ops.linalg import linear
from labkit.ops.rnn import GRUStep, LSTMStep, RNNStep
from labkit.ops.shape import squeeze, unsqueeze

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "RNNCellBase"]


class RNNCellBase(Module):
    """Parameters and input checks shared by the cells; ``num_chunks`` is the gate count G."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        gates = num_chunks * self.hidden_size
        bound = 1.0 / math.sqrt(self.hidden_size)
        shapes = {"weight_ih": (gates, self.input_size), "weight_hh": (gates, self.hidden_size)}
        if self.bias:
            shapes |= {"bias_ih": (gates,), "bias_hh": (gates,)}
        for pname, shape in shapes.items():
            setattr(self, pname, uniform_parameter(shape, bound, generator, dtype, device))
        if not self.bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _where(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size})"

    def _prepare(self, x: Any, states: tuple[Any, ...]) -> tuple[Tensor, list[Tensor | None], bool]:
        """Check ``x`` (B, I) or (I,) and the states (B, H) or (H,); add a batch axis if missing."""
        dtype = self.weight_ih.dtype
        want = f"(B, {self.input_size}) or ({self.input_size},)"
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._where()}: expected a Tensor input {want}, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{self._where()}: expected input {want}, got {x.shape}")
        if x.dtype != dtype:
            raise TypeError(f"{self._where()}: expected input of the parameters' dtype {dtype}, got {x.dtype}")
        batched = x.ndim == 2
        state_shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        out: list[Tensor | None] = []
        for s in states:
            if s is not None:
                if not isinstance(s, Tensor):
                    raise TypeError(f"{self._where()}: expected a Tensor state {state_shape}, got {type(s).__name__}")
                if s.shape != state_shape or s.dtype != dtype:
                    raise ValueError(
                        f"{self._where()}: expected a state of shape {state_shape} and dtype {dtype}, "
                        f"got {s.shape} {s.dtype}"
                    )
                s = s if batched else unsqueeze(s, 0)
            out.append(s)
        return (x if batched else unsqueeze(x, 0)), out, batched

    def _zeros(self, x: Tensor) -> Tensor:
        xp = backends.for_array(x.data).xp
        return Tensor._wrap(xp.zeros((x.shape[0], self.hidden_size), dtype=x.dtype))

    def _gates(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return linear(x, self.weight_ih, self.bias_ih), linear(h, self.weight_hh, self.bias_hh)


class RNNCell(RNNCellBase):
    """``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with ``act`` tanh or relu."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, generator, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        """``input`` (B, I) or (I,), ``hx`` (B, H) or (H,) (zeros if None) -> ``h'`` of ``hx``'s shape."""
        x, (h,), batched = self._prepare(input, (hx,))
        h = self._zeros(x) if h is None else h
        h_new = RNNStep(self.nonlinearity)(*self._gates(x, h))
        return h_new if batched else squeeze(h_new, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step with gates ``i, f, g, o``: returns ``(h', c')``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, generator, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        """``input`` (B, I) or (I,), ``hx = (h, c)`` each (B, H) or (H,) (zeros if None) -> ``(h', c')``."""
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"{self._where()}: expected hx as a tuple (h, c), got {type(hx).__name__}")
        x, (h, c), batched = self._prepare(input, (None, None) if hx is None else tuple(hx))
        h = self._zeros(x) if h is None else h
        c = self._zeros(x) if c is None else c
        h_new, c_new = LSTMStep()(*self._gates(x, h), c)
        return (h_new, c_new) if batched else (squeeze(h_new, 0), squeeze(c_new, 0))


class GRUCell(RNNCellBase):
    """One GRU step with gates ``r, z, n``: ``n = tanh(x_n + r (W_hn h + b_hn))``, ``h' = (1-z) n + z h``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, generator, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        """``input`` (B, I) or (I,), ``hx`` (B, H) or (H,) (zeros if None) -> ``h'`` of ``hx``'s shape."""
        x, (h,), batched = self._prepare(input, (hx,))
        h = self._zeros(x) if h is None else h
        h_new = GRUStep()(*self._gates(x, h), h)
        return h_new if batched else squeeze(h_new, 0)
