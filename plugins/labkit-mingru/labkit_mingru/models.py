"""``MinGRULM``: a character-level language model of stacked minGRU blocks, for labkit's LanguageModel task.

It is a drop-in for ``labkit.models.CharLSTMLM``: the same constructor sizes (``vocab_size`` from
the task, ``embed_dim``, ``hidden_size``, ``num_layers``, ``dropout``), the same
``forward(ids, state=None) -> (logits, state)`` and the same ``generate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import labkit.functional as F
import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.models.language import sample_ids
from labkit_mingru.layers import MinGRUBlock, positive_int, probability

__all__ = ["MinGRULM"]


class MinGRULM(nn.Module):
    """Embedding -> (linear to hidden_size) -> ``num_layers`` x MinGRUBlock -> LayerNorm -> dropout -> linear.

    ``forward(ids, state=None)``: ``ids (B, T)`` int64 -> ``(logits (B, T, vocab_size), state)`` where
    ``state (num_layers, B, hidden_size)`` holds each block's last minGRU state; passing it back
    continues the sequence (``generate`` feeds one character at a time that way). The embedding
    is projected to ``hidden_size`` only when ``embed_dim != hidden_size``. ``expansion`` sizes each
    block's MLP (``expansion * hidden_size``); 3 gives a block ``8 * hidden_size**2`` weights, as
    many as an LSTM layer of that size; ``activation`` is the MLP's (see ``MinGRUBlock``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        expansion: int = 3,
        activation: str = "relu",
        *,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "MinGRULM"
        self.vocab_size = positive_int(name, "vocab_size", vocab_size)
        embed_dim = positive_int(name, "embed_dim", embed_dim)
        self.hidden_size = positive_int(name, "hidden_size", hidden_size)
        self.num_layers = positive_int(name, "num_layers", num_layers)
        dropout = probability(name, "dropout", dropout)
        self.embedding = nn.Embedding(self.vocab_size, embed_dim, generator=generator)
        self.in_proj = nn.Linear(embed_dim, self.hidden_size, generator=generator) if embed_dim != hidden_size else None
        self.blocks = nn.ModuleList(
            [
                MinGRUBlock(self.hidden_size, expansion, dropout, activation, generator=generator)
                for _ in range(self.num_layers)
            ]
        )
        self.norm = nn.LayerNorm(self.hidden_size)
        self.dropout = nn.Dropout(dropout, generator=generator)
        self.head = nn.Linear(self.hidden_size, self.vocab_size, generator=generator)

    def forward(self, ids: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.dtype.kind not in "iu":
            got = f"{ids.dtype} {ids.shape}" if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"MinGRULM: expected integer ids (B, T), got {got}")
        expected = (self.num_layers, ids.shape[0], self.hidden_size)
        if state is not None and (not isinstance(state, Tensor) or state.shape != expected):
            got = state.shape if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"MinGRULM: expected state (num_layers, B, hidden_size) = {expected}, got {got}")
        x = self.embedding(ids)  # (B, T, E)
        if self.in_proj is not None:
            x = self.in_proj(x)  # (B, T, H)
        lasts = []
        for i, block in enumerate(self.blocks):
            x, last = block(x, None if state is None else state[i])  # (B, T, H), (B, H)
            lasts.append(last)
        logits = self.head(self.dropout(self.norm(x)))  # (B, T, V)
        return logits, F.stack(lasts, axis=0)  # (L, B, H)

    def generate(
        self,
        prefix_ids: Any,
        n: int,
        temperature: float = 1.0,
        generator: Generator | np.random.Generator | None = None,
    ) -> list[int]:
        """Sample ``n`` ids after ``prefix_ids`` (a non-empty sequence of ints); returns only the new ids.

        Each id is drawn from ``softmax(logits / temperature)``; ``temperature=0`` takes the most
        likely id. Runs in eval mode under ``no_grad`` and restores the previous mode. The prefix
        goes through the parallel scan in one call; each new id is one step with the carried state.
        """
        return sample_ids(self, prefix_ids, n, temperature, generator)
