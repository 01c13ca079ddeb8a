"""``TransformerEncoderLayer`` and ``TransformerEncoder``, as in PyTorch (names, init, semantics).

A layer is self-attention then a position-wise feed-forward block, each wrapped in a
residual connection with LayerNorm after it (post-norm, Vaswani et al.) or, with
``norm_first=True``, before it (pre-norm, as in GPT-2):

    post-norm: x = norm1(x + sa(x));        x = norm2(x + ff(x))
    pre-norm:  x = x + sa(norm1(x));        x = x + ff(norm2(x))

``TransformerEncoder`` stacks ``num_layers`` deep copies of one layer (so, as in
PyTorch, every copy starts from the same weights) and applies an optional final norm.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn.attention import MultiheadAttention
from labkit.nn.containers import ModuleList
from labkit.nn.dropout import Dropout
from labkit.nn.linear import Linear, _check_size
from labkit.nn.module import Module
from labkit.nn.normalization import LayerNorm

__all__ = ["TransformerEncoder", "TransformerEncoderLayer"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward (``d_model -> dim_feedforward -> d_model``) with residuals and LayerNorm.

    Shapes: ``src (S, B, d_model)`` (``(B, S, d_model)`` with ``batch_first=True``,
    ``(S, d_model)`` unbatched) -> the same shape. Submodules carry PyTorch's names:
    ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``,
    ``dropout2``. ``activation`` is ``"relu"``, ``"gelu"`` (exact) or a callable. Init and
    dropout masks draw from ``generator``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "TransformerEncoderLayer"
        self.d_model = _check_size(name, "d_model", d_model)
        dim_feedforward = _check_size(name, "dim_feedforward", dim_feedforward)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: expected dropout in [0, 1), got {dropout!r}")
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(
                    f"{name}: expected activation in {sorted(_ACTIVATIONS)} or a callable, got {activation!r}"
                )
            self.activation_name = activation
            activation = _ACTIVATIONS[activation]
        elif callable(activation):
            self.activation_name = getattr(activation, "__name__", type(activation).__name__)
        else:
            raise TypeError(
                f"{name}: expected activation 'relu', 'gelu' or a callable, got {type(activation).__name__}"
            )
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, generator=generator, **factory
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, **factory)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, **factory)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        self.activation = activation
        self.batch_first = bool(batch_first)

    def forward(
        self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False
    ) -> Tensor:
        """``src`` -> same shape. Masks as in ``MultiheadAttention``: ``src_mask (S, S)`` or
        ``(B * nhead, S, S)``, ``src_key_padding_mask (B, S)``; bool True = masked out, float = added.
        ``is_causal`` without ``src_mask`` applies the causal mask.
        """
        if not isinstance(src, Tensor) or src.ndim not in (2, 3) or src.shape[-1] != self.d_model:
            layout = "(B, S, {0})" if self.batch_first else "(S, B, {0})"
            expected = (layout + " or (S, {0})").format(self.d_model)
            layer = f"TransformerEncoderLayer(d_model={self.d_model})"
            if not isinstance(src, Tensor):
                raise TypeError(f"{layer}: expected a Tensor src, got {type(src).__name__}")
            raise ValueError(f"{layer}: expected src {expected}, got {src.shape}")
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Tensor:
        out, _ = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}, norm_first={self.norm_first}, batch_first={self.batch_first}"


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given.

    Each copy is a deep copy of ``encoder_layer`` (the same initial weights, as in
    PyTorch); generators are shared, not copied, so dropout masks differ between layers.
    Shapes as the layer's: ``src (S, B, d_model)`` or batch-first ``(B, S, d_model)``.
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: expected a Module encoder_layer, got {type(encoder_layer).__name__}")
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"TransformerEncoder: expected a Module or None for norm, got {type(norm).__name__}")
        self.num_layers = _check_size("TransformerEncoder", "num_layers", num_layers)
        self.layers = ModuleList([_clone(encoder_layer) for _ in range(self.num_layers)])
        self.norm = norm

    def forward(
        self, src: Tensor, mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False
    ) -> Tensor:
        """``src`` -> same shape; every layer gets the same masks (see ``TransformerEncoderLayer.forward``)."""
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"


def _clone(module: Module) -> Module:
    """A deep copy of ``module`` whose random generators are the original ones, not copies."""
    memo: dict[int, Any] = {}
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, (Generator, np.random.Generator)):
                memo[id(value)] = value
    return copy.deepcopy(module, memo)
