"""Positional embeddings added to token embeddings: fixed sinusoids or learned rows.

Layout: batch-first. ``forward(x)`` takes ``x (B, T, D)`` (or unbatched ``(T, D)``) and
returns ``x + P[offset : offset + T]`` with ``P (max_len, D)``; ``offset`` is the position
of the first step (for decoding one token at a time). A sequence-first ``(T, B, D)``
input must be transposed first: the layer cannot tell the two apart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labkit.backends.device import DeviceLike
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.linear import _check_size, _float_dtype, _new_parameter
from labkit.nn.module import Module
from labkit.ops.index import getitem
from labkit.ops.transfer import astype

__all__ = ["LearnedPositionalEmbedding", "SinusoidalPositionalEmbedding", "sinusoidal_table"]


def sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
    """Vaswani et al.'s table, float64 ``(max_len, dim)``.

    ``P[t, 2i] = sin(t / 10000^(2i/dim))`` and ``P[t, 2i+1] = cos(t / 10000^(2i/dim))``;
    an odd ``dim`` ends with a sine column.
    """
    position = np.arange(max_len, dtype=np.float64)[:, None]  # (T, 1)
    inv_freq = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-math.log(10000.0) / dim))  # (ceil(D/2),)
    angles = position * inv_freq  # (T, ceil(D/2))
    table = np.zeros((max_len, dim))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table


def _positions(layer: str, x: Any, dim: int, max_len: int, offset: int) -> tuple[int, int]:
    """Validate ``x (..., T, dim)`` and ``offset``; return ``(start, stop)`` rows of the table."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != dim:
        raise ValueError(f"{layer}: expected input (B, T, {dim}) or (T, {dim}), got {x.shape}")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{layer}: expected a non-negative int offset, got {offset!r}")
    stop = int(offset) + x.shape[-2]
    if stop > max_len:
        raise ValueError(
            f"{layer}: expected at most max_len={max_len} positions, got positions up to {stop} "
            f"(offset {offset} + sequence length {x.shape[-2]}, input {x.shape})"
        )
    return int(offset), stop


class SinusoidalPositionalEmbedding(Module):
    """``x + P[:T]`` with the fixed sinusoid table ``P (max_len, dim)`` (see ``sinusoidal_table``).

    ``P`` is the non-persistent buffer ``pe``: not in ``state_dict``, rebuilt from the
    arguments. Shapes: ``(B, T, dim)`` or ``(T, dim)`` -> the same. No parameters.
    """

    def __init__(self, max_len: int, dim: int, device: DeviceLike | None = None, dtype: Any = None) -> None:
        super().__init__()
        self.max_len = _check_size("SinusoidalPositionalEmbedding", "max_len", max_len)
        self.dim = _check_size("SinusoidalPositionalEmbedding", "dim", dim)
        dt = _float_dtype("SinusoidalPositionalEmbedding", dtype)
        self.register_buffer("pe", Tensor(sinusoidal_table(self.max_len, self.dim), dtype=dt, device=device), False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        layer = f"SinusoidalPositionalEmbedding(max_len={self.max_len}, dim={self.dim})"
        start, stop = _positions(layer, x, self.dim, self.max_len, offset)
        pe = getitem(self.pe, slice(start, stop))  # (T, dim)
        return x + (pe if pe.dtype == x.dtype else astype(pe, x.dtype))

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"


class LearnedPositionalEmbedding(Module):
    """``x + weight[:T]`` with a learned ``weight (max_len, dim)``, initialised N(0, 0.02^2) (GPT-2's choice).

    Shapes: ``(B, T, dim)`` or ``(T, dim)`` -> the same. ``init_std`` changes the init scale.
    """

    def __init__(
        self,
        max_len: int,
        dim: int,
        init_std: float = 0.02,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.max_len = _check_size("LearnedPositionalEmbedding", "max_len", max_len)
        self.dim = _check_size("LearnedPositionalEmbedding", "dim", dim)
        if isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std < 0:
            raise ValueError(f"LearnedPositionalEmbedding: expected init_std >= 0, got {init_std!r}")
        self.init_std = float(init_std)
        self.weight = _new_parameter(
            (self.max_len, self.dim), _float_dtype("LearnedPositionalEmbedding", dtype), device
        )
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        init.normal_(self.weight, 0.0, self.init_std, generator=generator)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        layer = f"LearnedPositionalEmbedding(max_len={self.max_len}, dim={self.dim})"
        start, stop = _positions(layer, x, self.dim, self.max_len, offset)
        return x + getitem(self.weight, slice(start, stop))  # (T, dim) broadcast over the batch

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"
