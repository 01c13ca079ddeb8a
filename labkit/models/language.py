"""``CharLSTMLM``: a character-level LSTM language model with a sampling ``generate``."""

from __future__ import annotations

from typing import Any

import numpy as np

import labkit.functional as F
import labkit.nn as nn
from labkit.core.mode import no_grad
from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor
from labkit.models._checks import positive_int, probability

__all__ = ["CharLSTMLM", "sample_ids"]


def sample_ids(
    model: nn.Module,
    prefix_ids: Any,
    n: int,
    temperature: float = 1.0,
    generator: Generator | np.random.Generator | None = None,
) -> list[int]:
    """Sample ``n`` ids after ``prefix_ids`` from a stateful language model; returns only the new ids.

    ``model(ids (1, T), state=None) -> (logits (1, T, V), state)`` with ``model.vocab_size == V``
    (``CharLSTMLM``, plugin models). The prefix goes through in one call, then one step per new id
    with the carried state. Each id is drawn from ``softmax(logits / temperature)``;
    ``temperature=0`` takes the most likely id. Runs in eval mode under ``no_grad`` and restores
    the previous mode.
    """
    name = f"{type(model).__name__}.generate"
    prefix = [int(i) for i in np.asarray(prefix_ids).reshape(-1)]
    if not prefix:
        raise ValueError(f"{name}: expected a non-empty prefix_ids, got an empty sequence")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"{name}: expected temperature >= 0, got {temperature!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"{name}: expected n >= 0, got {n}")
    rng = resolve(generator)
    device = next(iter(model.parameters())).device
    was_training = model.training
    model.eval()
    out: list[int] = []
    try:
        with no_grad():
            logits, state = model(Tensor(np.array([prefix], dtype=np.int64), device=device))
            for _ in range(n):
                last = logits[0, -1]  # (V,)
                if temperature == 0:
                    token = int(np.argmax(last.numpy()))
                else:
                    probs = F.softmax(last.astype("float64") / float(temperature)).numpy()
                    token = int(rng.choice(model.vocab_size, p=probs / probs.sum()))
                out.append(token)
                logits, state = model(Tensor(np.array([[token]], dtype=np.int64), device=device), state)
    finally:
        model.train(was_training)
    return out


class CharLSTMLM(nn.Module):
    """Embedding -> LSTM -> dropout -> linear over the vocabulary, one prediction per input position.

    ``forward(ids, state=None)``: ``ids (B, T)`` int64 -> ``(logits (B, T, vocab_size), state)``
    where ``state = (h, c)``, each ``(num_layers, B, hidden_size)``, can be fed back to
    continue the sequence (truncated backpropagation through time detaches it first).
    ``tie_weights`` shares the embedding with the output layer (needs embed_dim == hidden_size).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "CharLSTMLM"
        self.vocab_size = positive_int(name, "vocab_size", vocab_size)
        embed_dim = positive_int(name, "embed_dim", embed_dim)
        hidden_size = positive_int(name, "hidden_size", hidden_size)
        num_layers = positive_int(name, "num_layers", num_layers)
        dropout = probability(name, "dropout", dropout)
        self.embedding = nn.Embedding(self.vocab_size, embed_dim, generator=generator)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            generator=generator,
        )
        self.dropout = nn.Dropout(dropout, generator=generator)
        self.head = nn.Linear(hidden_size, self.vocab_size, generator=generator)
        if tie_weights:
            if embed_dim != hidden_size:
                raise ValueError(
                    f"CharLSTMLM: tie_weights needs embed_dim == hidden_size, got {embed_dim} and {hidden_size}"
                )
            self.head.weight = self.embedding.weight

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        out, state = self.lstm(self.embedding(ids), state)  # (B, T, H)
        return self.head(self.dropout(out)), state  # (B, T, V)

    def generate(
        self,
        prefix_ids: Any,
        n: int,
        temperature: float = 1.0,
        generator: Generator | np.random.Generator | None = None,
    ) -> list[int]:
        """Sample ``n`` ids after ``prefix_ids`` (a non-empty sequence of ints); returns only the new ids.

        Each id is drawn from ``softmax(logits / temperature)``; ``temperature=0`` takes the most
        likely id. Runs in eval mode under ``no_grad`` and restores the previous mode.
        """
        return sample_ids(self, prefix_ids, n, temperature, generator)
