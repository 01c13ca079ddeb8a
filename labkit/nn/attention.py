"""``MultiheadAttention`` (PyTorch's parameters, init and semantics) and the mask helpers.

Masks given to ``MultiheadAttention`` follow PyTorch: a bool mask is True where a
position is **masked out**; a float mask is added to the attention scores. The helpers
build bool masks in that convention: ``causal_mask(T)`` hides later keys,
``padding_mask(lengths, T)`` hides the padding past each sequence's length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import labkit.functional as F
from labkit.backends.device import DeviceLike
from labkit.backends.registry import array_module
from labkit.core.creation import tensor, zeros
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn import init
from labkit.nn.linear import Linear, _check_size, _float_dtype, _new_parameter
from labkit.nn.module import Module
from labkit.ops.attention import as_mask_array, attention, causal_array, float_mask

__all__ = ["MultiheadAttention", "causal_mask", "padding_mask"]


# ---- mask helpers ------------------------------------------------------------------------------


def causal_mask(size: int, device: DeviceLike | None = None) -> Tensor:
    """Bool ``(size, size)``, True above the diagonal: query ``i`` may not see keys ``j > i``."""
    size = _check_size("causal_mask", "size", size, 0)
    return tensor(np.triu(np.ones((size, size), dtype=bool), k=1), device=device)


def padding_mask(lengths: Any, max_len: int | None = None, device: DeviceLike | None = None) -> Tensor:
    """Bool ``(B, max_len)``, True at positions ``t >= lengths[b]`` (the padding to ignore).

    ``lengths``: ``B`` non-negative ints (list, array or integer Tensor); ``max_len``
    defaults to the largest length. Use it as ``key_padding_mask`` (batch-first ``(B, S)``).
    """
    values = lengths.numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise ValueError(f"padding_mask: expected a 1-D sequence of int lengths, got {values.dtype} {values.shape}")
    longest = int(values.max()) if values.size else 0
    max_len = longest if max_len is None else _check_size("padding_mask", "max_len", max_len, 0)
    if values.size and (values.min() < 0 or longest > max_len):
        raise ValueError(f"padding_mask: expected lengths in [0, {max_len}], got {values.tolist()}")
    return tensor(np.arange(max_len)[None, :] >= values[:, None], device=device)


# ---- MultiheadAttention -------------------------------------------------------------------------


class MultiheadAttention(Module):
    """Multi-head attention, ``softmax(q k^T / sqrt(d) + masks) v`` per head, as ``torch.nn.MultiheadAttention``.

    Shapes: ``query (L, B, E)``, ``key (S, B, kdim)``, ``value (S, B, vdim)`` -> output
    ``(L, B, E)`` (``(B, L, E)`` ... with ``batch_first=True``; unbatched ``(L, E)`` works
    too). Weights ``(B, L, S)`` averaged over heads, or ``(B, num_heads, L, S)``.

    Parameters (PyTorch's names): ``in_proj_weight (3E, E)`` (Xavier uniform) when
    ``kdim == vdim == E``, else ``q_proj_weight (E, E)``, ``k_proj_weight (E, kdim)``,
    ``v_proj_weight (E, vdim)``; ``in_proj_bias (3E,)`` (zeros); ``out_proj`` a ``Linear(E, E)``
    (its default init, bias zeroed); ``bias_k``/``bias_v (1, 1, E)`` (Xavier normal) with
    ``add_bias_kv``. Attention dropout draws from ``generator`` (the init stream).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: DeviceLike | None = None,
        dtype: Any = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = _check_size(name, "embed_dim", embed_dim)
        self.num_heads = _check_size(name, "num_heads", num_heads)
        self.kdim = self.embed_dim if kdim is None else _check_size(name, "kdim", kdim)
        self.vdim = self.embed_dim if vdim is None else _check_size(name, "vdim", vdim)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{name}: expected embed_dim divisible by num_heads, got {embed_dim} and {num_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: expected dropout in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.head_dim = self.embed_dim // self.num_heads
        self.add_zero_attn = bool(add_zero_attn)
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.generator = generator
        dt = _float_dtype(name, dtype)
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _new_parameter((3 * e, e), dt, device)
            for p in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(p, None)
        else:
            self.q_proj_weight = _new_parameter((e, e), dt, device)
            self.k_proj_weight = _new_parameter((e, self.kdim), dt, device)
            self.v_proj_weight = _new_parameter((e, self.vdim), dt, device)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _new_parameter((3 * e,), dt, device)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=dt, generator=generator)
        if add_bias_kv:
            self.bias_k = _new_parameter((1, 1, e), dt, device)
            self.bias_v = _new_parameter((1, 1, e), dt, device)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters(generator)

    def _reset_parameters(self, generator: Generator | None = None) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, generator=generator)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w, generator=generator)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, generator=generator)
            init.xavier_normal_(self.bias_v, generator=generator)

    # ---- forward -----------------------------------------------------------------------------

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``(output, weights or None)``; see the class docstring for shapes.

        ``key_padding_mask (B, S)`` (``(S,)`` unbatched) and ``attn_mask (L, S)`` or
        ``(B * num_heads, L, S)``: bool True = masked out, float = added. ``is_causal`` without
        ``attn_mask`` applies ``causal_mask(L)``; with it, it is only a hint (as in PyTorch)
        and ``attn_mask`` is used. A query whose keys are all masked gets zero weights.
        """
        batched = self._check_inputs(query, key, value)
        self_attention = query is key and key is value
        if not batched:  # unbatched (tgt_len, embed): a batch of one, batch-first
            query, key, value = F.unsqueeze(query, 0), F.unsqueeze(key, 0), F.unsqueeze(value, 0)
        elif not self.batch_first:  # (tgt_len, bsz, embed) -> (bsz, tgt_len, embed)
            query, key, value = (F.swapaxes(t, 0, 1) for t in (query, key, value))
        bsz, tgt_len, embed = query.shape
        src_len = key.shape[1]
        masked, bias = self._masks(key_padding_mask, attn_mask, is_causal, batched, query, (bsz, tgt_len, src_len))

        # (bsz, tgt_len, embed), (bsz, src_len, embed), (bsz, src_len, embed)
        q, k, v = self._project(query, key, value, self_attention)
        if self.bias_k is not None:
            k = F.cat([k, F.broadcast_to(self.bias_k, (bsz, 1, embed))], axis=1)  # (bsz, src_len + 1, embed)
            v = F.cat([v, F.broadcast_to(self.bias_v, (bsz, 1, embed))], axis=1)
            masked, bias = _pad_key_axis(masked, bias)
        heads, head_dim = self.num_heads, self.head_dim
        # (bsz, n, embed) -> (bsz, heads, n, head_dim)
        q, k, v = (F.permute(F.reshape(t, (bsz, t.shape[1], heads, head_dim)), (0, 2, 1, 3)) for t in (q, k, v))
        if self.add_zero_attn:
            zero = zeros((bsz, heads, 1, head_dim), dtype=q.dtype, device=q.device)
            k, v = F.cat([k, zero], axis=2), F.cat([v, zero], axis=2)
            masked, bias = _pad_key_axis(masked, bias)

        p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, masked=masked, bias=bias, dropout_p=p, generator=self.generator)
        out = self.out_proj(F.reshape(F.permute(out, (0, 2, 1, 3)), (bsz, tgt_len, embed)))  # (bsz, tgt_len, embed)
        if not batched:
            out = F.squeeze(out, 0)
        elif not self.batch_first:
            out = F.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = F.mean(weights, axis=1)  # (bsz, tgt_len, src_len)
        return out, (weights if batched else F.squeeze(weights, 0))

    def _check_inputs(self, query: Any, key: Any, value: Any) -> bool:
        """Validate shapes; True for batched (3-D) input, False for unbatched (2-D)."""
        name = f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        for arg, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: expected a Tensor {arg}, got {type(t).__name__}")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                f"{name}: expected query, key and value all 3-D (batched) or all 2-D (unbatched), "
                f"got {query.shape}, {key.shape} and {value.shape}"
            )
        batched = query.ndim == 3
        layout = ("(B, L, {})" if self.batch_first else "(L, B, {})") if batched else "(L, {})"
        for arg, t, size in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != size:
                raise ValueError(f"{name}: expected {arg} {layout.format(size)}, got {t.shape}")
        batch = 0 if self.batch_first else 1
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(
                f"{name}: expected key and value of the same batch and length, got {key.shape}, {value.shape}"
            )
        if batched and query.shape[batch] != key.shape[batch]:
            raise ValueError(f"{name}: expected query and key of the same batch size, got {query.shape}, {key.shape}")
        return batched

    def _project(self, query: Tensor, key: Tensor, value: Tensor, self_attention: bool) -> tuple[Tensor, ...]:
        """The input projections; one GEMM for self-attention, as PyTorch does."""
        b = self.in_proj_bias
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if self_attention:
                return F.chunk(F.linear(query, w, b), 3, axis=-1)
            ws = (w[:e], w[e : 2 * e], w[2 * e :])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bs = (None, None, None) if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        return tuple(F.linear(x, w, bb) for x, w, bb in zip((query, key, value), ws, bs))

    def _masks(
        self,
        key_padding_mask: Any,
        attn_mask: Any,
        is_causal: bool,
        batched: bool,
        like: Tensor,
        sizes: tuple[int, ...],
    ) -> tuple[Any, Tensor | None]:
        """Both masks as (bool array "masked out", float Tensor bias), each broadcastable to (B, H, L, S)."""
        bsz, tgt_len, src_len = sizes
        heads = self.num_heads
        name = f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        masked, bias = None, None
        parts = []
        if key_padding_mask is not None:
            data = as_mask_array(key_padding_mask, like, name, "key_padding_mask")
            expected = (bsz, src_len) if batched else (src_len,)
            if tuple(data.shape) != expected:
                raise ValueError(f"{name}: expected key_padding_mask {expected}, got {tuple(data.shape)}")
            parts.append((key_padding_mask, data, data.reshape(bsz, 1, 1, src_len)))
        if attn_mask is not None:
            data = as_mask_array(attn_mask, like, name, "attn_mask")
            shapes = [(tgt_len, src_len), (bsz * heads, tgt_len, src_len)]
            if tuple(data.shape) not in shapes:
                raise ValueError(f"{name}: expected attn_mask {shapes[0]} or {shapes[1]}, got {tuple(data.shape)}")
            parts.append((attn_mask, data, data if data.ndim == 2 else data.reshape(bsz, heads, tgt_len, src_len)))
        elif is_causal:
            masked = causal_array(tgt_len, src_len, like)
        for original, data, shaped in parts:
            if data.dtype.kind == "b":
                masked = shaped if masked is None else masked | shaped
            else:
                t = float_mask(original, data, like)
                t = F.reshape(t, shaped.shape) if t.shape != tuple(shaped.shape) else t
                bias = t if bias is None else bias + t
        return masked, bias

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.in_proj_bias is None:
            s += ", bias=False"
        if self.bias_k is not None:
            s += ", add_bias_kv=True"
        if self.add_zero_attn:
            s += ", add_zero_attn=True"
        return s + f", batch_first={self.batch_first}"


def _pad_key_axis(masked: Any, bias: Tensor | None) -> tuple[Any, Tensor | None]:
    """Extend the masks by one key that every query may attend to (a bias key or a zero key)."""
    if masked is not None:
        xp = array_module(masked)
        masked = xp.concatenate([masked, xp.zeros((*masked.shape[:-1], 1), dtype=bool)], axis=-1)
    if bias is not None:
        bias = F.pad(bias, (0, 1))
    return masked, bias
