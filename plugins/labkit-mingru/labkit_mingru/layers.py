"""``MinGRU`` (the recurrent layer) and ``MinGRUBlock`` (pre-norm residual block: minGRU, then an MLP).

minGRU (Feng et al. 2024) drops the GRU's dependence of the gates on the previous state:

    z_t  = sigmoid(W_z x_t + b_z)          update gate      (B, T, H)
    h~_t = W_h x_t + b_h                   candidate state  (B, T, H)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

so both projections are one GEMM over the whole sequence and the recurrence is a linear
scan (``labkit_mingru.ops.min_gru_scan``), computed for all t at once.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import labkit.functional as F
import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit_mingru.ops import min_gru_scan

__all__ = ["ACTIVATIONS", "MinGRU", "MinGRUBlock"]

#: the MLP activations of ``MinGRUBlock``
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def positive_int(owner: str, name: str, value: Any) -> int:
    """An int ``>= 1`` (bools refused), else a TypeError/ValueError naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: expected an int {name}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: expected {name} >= 1, got {value}")
    return int(value)


def probability(owner: str, name: str, value: Any) -> float:
    """A float in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: expected {name} in [0, 1), got {value!r}")
    return float(value)


def check_input(owner: str, x: Any, features: int) -> None:
    """``x`` must be a float Tensor ``(B, T, features)``."""
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != features or x.dtype.kind != "f":
        got = f"{x.dtype} {x.shape}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{owner}: expected a float input (B, T, {features}) (batch_first), got {got}")


class MinGRU(nn.Module):
    """One minGRU layer, batch first: ``x (B, T, input_size)`` -> ``(h (B, T, hidden_size), h_T (B, hidden_size))``.

    ``forward(x, h0=None)``: ``h0 (B, hidden_size)`` is the state before the first step (zeros
    when None); the returned last state continues the sequence when passed back as ``h0``.
    Parameters: ``proj.weight (2 * hidden_size, input_size)`` and ``proj.bias`` hold the gate
    rows first, then the candidate rows (PyTorch's default Linear initialisation).
    """

    def __init__(self, input_size: int, hidden_size: int, *, generator: Generator | None = None) -> None:
        super().__init__()
        self.input_size = positive_int("MinGRU", "input_size", input_size)
        self.hidden_size = positive_int("MinGRU", "hidden_size", hidden_size)
        self.proj = nn.Linear(self.input_size, 2 * self.hidden_size, generator=generator)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input("MinGRU", x, self.input_size)
        gate, candidate = F.split(self.proj(x), self.hidden_size, axis=-1)  # 2 x (B, T, H)
        h = min_gru_scan(F.sigmoid(gate), candidate, h0)  # (B, T, H)
        return h, h[:, -1]

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"


class MinGRUBlock(nn.Module):
    """``x + minGRU(LN(x))``, then ``+ MLP(LN(.))``: ``x (B, T, dim)`` -> ``(y (B, T, dim), h_T (B, dim))``.

    The MLP is ``Linear(dim, expansion * dim) -> activation -> Linear(expansion * dim, dim)`` with
    ``activation`` one of ``relu`` (the default: on numpy GELU's erf or tanh costs 10-40x a ReLU and
    was a third of a training step, see ``benchmarks/bench_scan.py``), ``gelu``, ``gelu_tanh``,
    ``silu``; dropout (rate ``dropout``) is applied to each branch before it is added. ``forward(x, h0=None)`` passes
    ``h0 (B, dim)`` to the minGRU and returns its last state.
    """

    def __init__(
        self,
        dim: int,
        expansion: int = 3,
        dropout: float = 0.0,
        activation: str = "relu",
        *,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MinGRUBlock: unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.dim = positive_int("MinGRUBlock", "dim", dim)
        self.expansion = positive_int("MinGRUBlock", "expansion", expansion)
        rate = probability("MinGRUBlock", "dropout", dropout)
        self.norm1 = nn.LayerNorm(self.dim)
        self.rnn = MinGRU(self.dim, self.dim, generator=generator)
        self.norm2 = nn.LayerNorm(self.dim)
        self.fc1 = nn.Linear(self.dim, self.expansion * self.dim, generator=generator)
        self.fc2 = nn.Linear(self.expansion * self.dim, self.dim, generator=generator)
        self.dropout = nn.Dropout(rate, generator=generator)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input("MinGRUBlock", x, self.dim)
        h, last = self.rnn(self.norm1(x), h0)  # (B, T, D), (B, D)
        x = x + self.dropout(h)
        x = x + self.dropout(self.fc2(ACTIVATIONS[self.activation](self.fc1(self.norm2(x)))))  # (B, T, D)
        return x, last

    def extra_repr(self) -> str:
        return f"dim={self.dim}, expansion={self.expansion}, activation={self.activation}"
