"""``Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

Initialised N(0, 1) with the ``padding_idx`` row zeroed, as in PyTorch; the padding
row receives no gradient. ``max_norm`` renormalises the looked-up rows in place
before each lookup (PyTorch's ``embedding_renorm_``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.backends.registry import array_module
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.linear import _check_size, _float_dtype, _new_parameter
from labkit.nn.module import Module
from labkit.nn.parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Integer ids of any shape ``(*)`` -> vectors ``(*, embedding_dim)``; ``weight (num_embeddings, embedding_dim)``.

    ``scale_grad_by_freq`` and ``sparse`` gradients are not supported (they must stay False).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | None = None,
        _freeze: bool = False,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _check_size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _check_size("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, int):
                raise TypeError(f"Embedding: expected an int or None for padding_idx, got {type(padding_idx).__name__}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: expected padding_idx in [-{num_embeddings}, {num_embeddings}), got {padding_idx}"
                )
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if max_norm is not None and (
            isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or max_norm <= 0
        ):
            raise ValueError(f"Embedding: expected max_norm to be a positive number or None, got {max_norm!r}")
        self.max_norm = max_norm
        self.norm_type = float(norm_type)
        for name, value in (("scale_grad_by_freq", scale_grad_by_freq), ("sparse", sparse)):
            if value:
                raise ValueError(f"Embedding: {name}=True is not supported by labkit; expected False, got {value!r}")
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = _new_parameter(
                (self.num_embeddings, self.embedding_dim), _float_dtype("Embedding", dtype), device
            )
            self.reset_parameters(generator)
        else:
            if not isinstance(_weight, Tensor) or _weight.shape != (self.num_embeddings, self.embedding_dim):
                got = _weight.shape if isinstance(_weight, Tensor) else type(_weight).__name__
                raise ValueError(
                    f"Embedding: expected _weight of shape ({self.num_embeddings}, {self.embedding_dim}), got {got}"
                )
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """N(0, 1), then the padding row set to zero."""
        init.normal_(self.weight, generator=generator)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An Embedding whose weight shares ``embeddings (num_embeddings, embedding_dim)``'s array.

        ``freeze=True`` makes the weight not require grad. The padding row is not zeroed.
        """
        if not isinstance(embeddings, Tensor):
            if not hasattr(embeddings, "shape"):
                raise TypeError(
                    f"Embedding.from_pretrained: expected a 2-d Tensor or array, got {type(embeddings).__name__}"
                )
            embeddings = Tensor(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(
                f"Embedding.from_pretrained: expected a 2-d (num_embeddings, dim) tensor, got {embeddings.shape}"
            )
        if embeddings.dtype.kind != "f":
            raise TypeError(f"Embedding.from_pretrained: expected float embeddings, got {embeddings.dtype}")
        rows, cols = embeddings.shape
        return cls(
            rows,
            cols,
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
            _weight=embeddings,
            _freeze=freeze,
        )

    def _renorm(self, index: Any) -> None:
        """Scale the rows looked up by ``index`` whose ``norm_type``-norm exceeds ``max_norm`` down to it."""
        w = self.weight.data
        xp = array_module(w)
        rows = xp.unique(xp.asarray(index).reshape(-1))  # sorted
        if not rows.size or int(rows[0]) < 0 or int(rows[-1]) >= self.num_embeddings:
            return  # nothing to do, or F.embedding reports the bad id
        sub = w[rows]
        norms = (xp.abs(sub) ** self.norm_type).sum(axis=1) ** (1.0 / self.norm_type)
        scale = xp.where(norms > self.max_norm, self.max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
        w[rows] = sub * scale[:, None]  # in place, outside the graph, like torch's embedding_renorm_

    def forward(self, ids: Any) -> Tensor:
        layer = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        index = ids.data if isinstance(ids, Tensor) else ids if hasattr(ids, "dtype") else np.asarray(ids)
        if getattr(index, "dtype", np.dtype("f")).kind not in "iu":
            raise TypeError(f"{layer}: expected integer ids, got {getattr(index, 'dtype', type(ids).__name__)}")
        if self.max_norm is not None:
            self._renorm(index)
        try:
            return F.embedding(ids, self.weight, self.padding_idx)  # (*ids.shape, embedding_dim)
        except ValueError as exc:
            raise ValueError(f"{layer}: {exc}") from None

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        if self.sparse:
            s += ", sparse=True"
        return s
