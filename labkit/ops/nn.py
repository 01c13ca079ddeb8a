"""Layer ops: ``dropout`` and ``embedding``.

Dropout masks come from an explicit ``labkit.Generator`` (drawn on the host, then moved
to the input's device), so a seeded run is reproducible on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module, backends
from labkit.core.function import Function
from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor

__all__ = ["dropout", "embedding"]


# ---- dropout -----------------------------------------------------------------------


class Dropout(Function):
    """Inverted dropout: ``x * mask / (1 - p)``; the scaled mask is kept for backward."""

    def __init__(self, p: float, generator: Generator | np.random.Generator | None) -> None:
        self.p = p
        self.generator = generator

    def forward(self, x: Any) -> Any:
        rng = resolve(self.generator)
        keep = rng.random(x.shape, dtype=np.float32) >= self.p  # drawn on the host for every backend
        backend = backends.for_array(x)
        mask = backend.asarray(keep, x.dtype, backend.device_of(x)) * (1.0 / (1.0 - self.p))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, gy: Tensor) -> Tensor:
        (mask,) = self.saved_tensors
        return gy * mask


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, generator: Generator | np.random.Generator | None = None
) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    ``training=False`` or ``p=0`` returns ``x`` itself. Shapes: any -> the same.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"dropout: expected a Tensor, got {type(x).__name__}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1), got {p!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a float tensor, got {x.dtype}")
    if not training or p == 0:
        return x
    return Dropout(float(p), generator)(x)


# ---- embedding ----------------------------------------------------------------------


class Embedding(Function):
    """Rows ``weight[ids]``: ``(V, D)`` gathered by ids of any shape -> ``(*ids.shape, D)``.

    ``zero_padding`` zeroes the rows gathered at ``padding_idx`` (the adjoint of
    ``EmbeddingGrad``, which gives the padding row no gradient).
    """

    def __init__(self, ids: Any, padding_idx: int | None, zero_padding: bool = False) -> None:
        self.ids = ids
        self.padding_idx = padding_idx
        self.zero_padding = zero_padding

    def forward(self, weight: Any) -> Any:
        xp = array_module(weight)
        self.num_embeddings = weight.shape[0]
        out = xp.take(weight, self.ids, axis=0)  # (*ids.shape, D)
        if self.zero_padding and self.padding_idx is not None:
            out[self.ids == self.padding_idx] = 0
        return out

    def backward(self, gy: Tensor) -> Tensor:
        return EmbeddingGrad(self.ids, self.num_embeddings, self.padding_idx)(gy)


class EmbeddingGrad(Function):
    """Scatter-add of ``gy (*ids.shape, D)`` into a zero ``(V, D)``; the padding row stays zero."""

    op_name = "embedding_backward"

    def __init__(self, ids: Any, num_embeddings: int, padding_idx: int | None) -> None:
        self.ids = ids
        self.num_embeddings = num_embeddings
        self.padding_idx = padding_idx

    def forward(self, gy: Any) -> Any:
        xp = array_module(gy)
        dim = gy.shape[-1]
        gw = xp.zeros((self.num_embeddings, dim), dtype=gy.dtype)
        xp.add.at(gw, self.ids.reshape(-1), gy.reshape(-1, dim))
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw

    def backward(self, ggw: Tensor) -> Tensor:
        return Embedding(self.ids, self.padding_idx, zero_padding=True)(ggw)


def embedding(ids: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look up rows of ``weight (num_embeddings, dim)`` for integer ``ids`` of any shape.

    Returns ``(*ids.shape, dim)``. The row at ``padding_idx`` receives no gradient.
    """
    if not isinstance(weight, Tensor):
        raise TypeError(f"embedding: expected a Tensor weight, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {weight.shape}")
    num = weight.shape[0]
    ids_t = ids if isinstance(ids, Tensor) else Tensor(ids, device=weight.device)
    if ids_t.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got dtype {ids_t.dtype}")
    if ids_t.device != weight.device:
        raise ValueError(f"embedding: ids on {ids_t.device} and weight on {weight.device} must share a device")
    index = ids_t.data
    if index.size:
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= num:
            bad = low if low < 0 else high
            raise ValueError(f"embedding: index {bad} is out of range for {num} embeddings (expected 0..{num - 1})")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx must be in [-{num}, {num}), got {padding_idx}")
        padding_idx = int(padding_idx) % num
    return Embedding(index, padding_idx)(weight)
