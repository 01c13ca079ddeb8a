"""Attention: ``scaled_dot_product_attention``, a composite of labkit ops.

``softmax(q @ k^T * scale + bias, masked -> -inf) @ v``. The composite is
differentiable to any order because every step is a labkit op. Rows in which every
key is masked out get zero weights (and a zero output) instead of NaN, as PyTorch's
math backend does since 2.5; their gradients are zero too.

``attention`` is the core shared with ``labkit.nn.MultiheadAttention``: it takes the
masks already split into a bool "masked out" array and a float bias, and returns the
weights as well.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labkit.backends.registry import array_module, backends
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.ops.activation import softmax
from labkit.ops.index import masked_fill
from labkit.ops.linalg import matmul
from labkit.ops.nn import dropout
from labkit.ops.shape import swapaxes
from labkit.ops.transfer import astype

__all__ = ["scaled_dot_product_attention"]


# ---- the core ------------------------------------------------------------------------------


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    masked: Any = None,
    bias: Tensor | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    generator: Generator | np.random.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``(output, weights)`` of attention; no argument checks (callers validate).

    Shapes: ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` -> output ``(..., L, Ev)``,
    weights ``(..., L, S)``. ``masked``: a bool backend array broadcastable to ``(..., L, S)``,
    True where a query may NOT attend to a key. ``bias``: a float Tensor broadcastable to
    ``(..., L, S)`` added to the scores (``-inf`` also masks). ``scale`` defaults to ``1/sqrt(E)``.
    Dropout (``dropout_p > 0``) is applied to the weights, which are returned after it.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    # scaling q (L x E) is cheaper than scaling the scores (L x S) and is what PyTorch does
    scores = matmul(q * scale, swapaxes(k, -2, -1))  # (..., L, S)
    if bias is not None:
        scores = scores + bias
    if masked is not None:
        scores = masked_fill(scores, masked, -math.inf)
    if masked is None and bias is None:
        weights = softmax(scores, -1)
    else:
        # a row with every key masked would be softmax(-inf, ..., -inf) = NaN: give it zeros
        dead = array_module(scores.data).isneginf(scores.data).all(axis=-1, keepdims=True)  # (..., L, 1)
        weights = masked_fill(softmax(masked_fill(scores, dead, 0.0), -1), dead, 0.0)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, generator=generator)
    return matmul(weights, v), weights


# ---- masks -------------------------------------------------------------------------------------


def as_mask_array(mask: Any, like: Tensor, op: str, name: str) -> Any:
    """``mask`` (a Tensor, numpy/cupy array or nested list) as an array on ``like``'s backend."""
    data = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.dtype.kind not in "bf":
        raise TypeError(f"{op}: expected a bool or float {name}, got dtype {data.dtype}")
    backend = backends.for_array(like.data)
    source = backends.for_array(data)
    if source is not backend:
        data = backend.asarray(source.to_numpy(data), data.dtype, like.device)
    return data


def float_mask(mask: Any, data: Any, like: Tensor) -> Tensor:
    """A float mask as a Tensor of ``like``'s dtype; a Tensor mask keeps its graph (a learned bias)."""
    t = mask if isinstance(mask, Tensor) and mask.data is data else Tensor._wrap(data)
    return t if t.dtype == like.dtype else astype(t, like.dtype)


def causal_array(size: int, source_size: int, like: Tensor) -> Any:
    """Bool ``(L, S)`` on ``like``'s backend, True above the diagonal (a key after the query)."""
    xp = array_module(like.data)
    return xp.triu(xp.ones((size, source_size), dtype=bool), k=1)


# ---- the op ----------------------------------------------------------------------------------


def _check(op: str, q: Any, k: Any, v: Any) -> None:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor {name}, got {type(t).__name__}")
        if t.ndim < 2 or t.dtype.kind != "f":
            raise ValueError(f"{op}: expected a float {name} with at least 2 dimensions (..., n, d), got {t.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{op}: expected query (..., L, E) and key (..., S, E) to share E, got {q.shape} and {k.shape}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{op}: expected key (..., S, E) and value (..., S, Ev) to share S, got {k.shape} and {v.shape}"
        )


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: Generator | np.random.Generator | None = None,
) -> Tensor:
    """PyTorch's ``F.scaled_dot_product_attention``: ``softmax(q k^T * scale + mask) v``.

    Shapes: ``query (..., L, E)``, ``key (..., S, E)``, ``value (..., S, Ev)`` -> ``(..., L, Ev)``;
    leading (batch, head) dimensions broadcast. ``attn_mask`` broadcastable to ``(..., L, S)``:
    a bool mask where **True means "may attend"** (PyTorch's convention for this op, the
    opposite of ``MultiheadAttention``'s), or a float mask added to the scores. ``is_causal``
    lets query ``i`` see keys ``j <= i`` (top-left aligned); it excludes ``attn_mask``.
    ``scale`` defaults to ``1/sqrt(E)``. Dropout with probability ``dropout_p`` is applied to
    the attention weights whenever ``dropout_p > 0`` (pass 0 in evaluation), drawing from
    ``generator``. Rows with no key to attend to give zeros.
    """
    op = "scaled_dot_product_attention"
    _check(op, query, key, value)
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: expected dropout_p in [0, 1), got {dropout_p!r}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise TypeError(f"{op}: expected a number or None for scale, got {type(scale).__name__}")
    tgt_len, src_len = query.shape[-2], key.shape[-2]
    batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    masked, bias = None, None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: expected either attn_mask or is_causal=True, got both")
        masked = causal_array(tgt_len, src_len, query)
    elif attn_mask is not None:
        data = as_mask_array(attn_mask, query, op, "attn_mask")
        target = (*batch, tgt_len, src_len)
        try:
            fits = np.broadcast_shapes(tuple(data.shape), target) == target
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{op}: expected attn_mask broadcastable to {target}, got {tuple(data.shape)}")
        if data.dtype.kind == "b":
            masked = ~data
        else:
            bias = float_mask(attn_mask, data, query)
    out, _ = attention(query, key, value, masked=masked, bias=bias, scale=scale, dropout_p=float(dropout_p),
                       generator=generator)  # fmt: skip
    return out
