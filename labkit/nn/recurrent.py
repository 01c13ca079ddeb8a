"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` (multi-layer, bidirectional, variable length).

Constructor arguments, parameter names, shapes, gate order and initialisation are
PyTorch's, so state dicts convert directly. ``forward(input, hx=None, lengths=None)``
runs each layer and direction with ``labkit.ops.rnn_scan.rnn_scan``: the input
projection of the whole sequence is one GEMM, then each step is one GEMM plus one
fused gate op. ``lengths`` replaces packed sequences (see ``labkit.nn.sequence``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from labkit.backends.device import DeviceLike
from labkit.core.creation import empty
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.module import Module
from labkit.nn.parameter import Parameter
from labkit.ops.linalg import linear
from labkit.ops.nn import dropout as dropout_op
from labkit.ops.rnn_scan import GATE_COUNT, UnbindSteps, as_lengths, rnn_scan
from labkit.ops.shape import cat, squeeze, stack, swapaxes, unsqueeze

__all__ = ["GRU", "LSTM", "RNN", "RNNBase"]


def _positive_int(layer: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer}: expected an int {name}, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{layer}: expected a positive {name}, got {value}")
    return int(value)


def uniform_parameter(
    shape: tuple[int, ...], bound: float, generator: Generator | None, dtype: Any, device: DeviceLike | None
) -> Parameter:
    """A new Parameter of ``shape`` filled with U(-bound, bound) (PyTorch's recurrent init)."""
    p = Parameter(empty(*shape, dtype=dtype, device=device))
    init.uniform_(p, -bound, bound, generator=generator)
    return p


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU``; ``mode`` picks the cell.

    Parameters per layer ``k`` and direction (suffix ``_reverse`` for the second):
    ``weight_ih_l{k}`` ``(G*H, I_k)`` with ``I_0 = input_size`` and ``I_k = D*H`` after,
    ``weight_hh_l{k}`` ``(G*H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G*H,)``,
    where ``G`` is 4 (LSTM), 3 (GRU) or 1 (RNN) and ``D`` is 2 if bidirectional.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if mode not in GATE_COUNT:
            raise ValueError(f"{name}: unknown mode {mode!r}; expected one of {sorted(GATE_COUNT)}")
        self.mode = mode
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.num_layers = _positive_int(name, "num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"{name}: expected dropout as a probability in [0, 1), got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout={dropout} acts between layers, so it does nothing with num_layers=1",
                stacklevel=2,
            )
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.generator = generator  # also the source of inter-layer dropout masks
        gates = GATE_COUNT[mode] * self.hidden_size
        bound = 1.0 / math.sqrt(self.hidden_size)
        self._flat_weights_names: list[str] = []
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes = {"weight_ih": (gates, layer_in), "weight_hh": (gates, self.hidden_size)}
                if self.bias:
                    shapes |= {"bias_ih": (gates,), "bias_hh": (gates,)}
                for kind, shape in shapes.items():
                    pname = f"{kind}_l{layer}{suffix}"
                    setattr(self, pname, uniform_parameter(shape, bound, generator, dtype, device))
                    self._flat_weights_names.append(pname)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Per layer and direction, ``[weight_ih, weight_hh(, bias_ih, bias_hh)]``."""
        per = 4 if self.bias else 2
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[k : k + per] for k in range(0, len(flat), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # ---- input checks ---------------------------------------------------------------------

    def _where(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size})"

    def _check_input(self, x: Any) -> None:
        layout = "(B, T, {})" if self.batch_first else "(T, B, {})"
        want = f"{layout.format(self.input_size)} or unbatched (T, {self.input_size})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._where()}: expected a Tensor input {want}, got {type(x).__name__}")
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{self._where()}: expected input {want}, got {x.shape}")
        dtype = self.weight_ih_l0.dtype
        if x.dtype != dtype:
            raise TypeError(f"{self._where()}: expected input of the parameters' dtype {dtype}, got {x.dtype}")

    def _initial_states(self, hx: Any, batch: int, batched: bool) -> tuple[list[Any], list[Any]]:
        """``hx`` split into per-(layer, direction) ``(B, H)`` states; Nones where not given."""
        count = self.num_layers * self.num_directions
        if hx is None:
            return [None] * count, [None] * count
        if self.mode == "lstm":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{self._where()}: expected hx as a tuple (h_0, c_0), got {type(hx).__name__}")
            states = list(hx)
        else:
            states = [hx]
        want = (count, batch, self.hidden_size) if batched else (count, self.hidden_size)
        split = []
        for name, s in zip(("h_0", "c_0"), states):
            if not isinstance(s, Tensor):
                raise TypeError(f"{self._where()}: expected {name} as a Tensor {want}, got {type(s).__name__}")
            if s.shape != want:
                raise ValueError(f"{self._where()}: expected {name} of shape {want}, got {s.shape}")
            if s.dtype != self.weight_ih_l0.dtype:
                raise TypeError(f"{self._where()}: expected {name} of dtype {self.weight_ih_l0.dtype}, got {s.dtype}")
            split.append(list(UnbindSteps()(s if batched else unsqueeze(s, 1))))
        return split[0], split[1] if len(split) > 1 else [None] * count

    # ---- forward --------------------------------------------------------------------------

    def forward(self, input: Tensor, hx: Any = None, lengths: Any = None) -> tuple[Tensor, Any]:  # noqa: A002
        """Run the layers over a sequence.

        Shapes: ``input`` ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``) or unbatched
        ``(T, I)``; ``hx`` ``(L*D, B, H)`` (LSTM: a tuple ``(h_0, c_0)``); ``lengths`` ``(B,)``
        true lengths of a right-padded batch. Returns ``(output, h_n)`` (LSTM:
        ``(output, (h_n, c_n))``) with ``output`` ``(T, B, D*H)`` in the input's layout,
        zero past each length, and ``h_n`` ``(L*D, B, H)``, each sequence's state at its
        last step (the reverse direction's after step 0).
        """
        self._check_input(input)
        batched = input.ndim == 3
        if not batched and lengths is not None:
            raise ValueError(f"{self._where()}: lengths need a batched input, got an unbatched {input.shape}")
        x = (swapaxes(input, 0, 1) if self.batch_first else input) if batched else unsqueeze(input, 1)  # (T, B, I)
        steps, batch = x.shape[0], x.shape[1]
        lens = None if lengths is None else as_lengths(lengths, batch, steps, self._where())
        h0s, c0s = self._initial_states(hx, batch, batched)
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                w_ih, w_hh, *biases = weights[k]
                x_bias = h_bias = None
                if biases:
                    b_ih, b_hh = biases
                    x_bias, h_bias = (b_ih, b_hh) if self.mode == "gru" else (b_ih + b_hh, None)
                x_gates = linear(x, w_ih, x_bias)  # (T, B, G*H): one GEMM for the whole sequence
                out, h, c = rnn_scan(self.mode, x_gates, w_hh, h_bias, h0s[k], c0s[k], lens, reverse=direction == 1)
                outs.append(out)
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            x = outs[0] if len(outs) == 1 else cat(outs, dim=2)  # (T, B, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout_op(x, self.dropout, training=True, generator=self.generator)
        output = (swapaxes(x, 0, 1) if self.batch_first else x) if batched else squeeze(x, 1)
        h_out = stack(h_n) if batched else squeeze(stack(h_n), 1)
        if self.mode != "lstm":
            return output, h_out
        c_out = stack(c_n) if batched else squeeze(stack(c_n), 1)
        return output, (h_out, c_out)


class RNN(RNNBase):
    """Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, ``act`` tanh or relu."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            generator, device, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM with PyTorch's gates ``i, f, g, o``: ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            generator, device, dtype,
        )  # fmt: skip


class GRU(RNNBase):
    """GRU with PyTorch's gates ``r, z, n``: ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``,
    ``h_t = (1 - z) n + z h_{t-1}``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator: Generator | None = None,
        device: DeviceLike | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            generator, device, dtype,
        )  # fmt: skip
