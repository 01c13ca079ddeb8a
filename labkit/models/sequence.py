"""``SequenceRNN``: an RNN/LSTM/GRU over (variable-length) feature sequences with a linear head."""

from __future__ import annotations

from typing import Any

import labkit.functional as F
import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.models._checks import choice, positive_int, probability

__all__ = ["SequenceRNN"]

_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SequenceRNN(nn.Module):
    """A recurrent encoder whose final state (at each sequence's true end) feeds a linear layer.

    ``kind`` picks ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh). ``task="classify"`` gives logits
    ``(B, output_size)``; ``task="regress"`` gives predictions ``(B, output_size)`` (a horizon,
    or 1 for a scalar target). Shapes: ``x (B, T, input_size)`` float32, optional
    ``lengths (B,)`` for right-padded batches -> ``(B, output_size)``.

    ``forget_bias`` (LSTM only) is added to the forget-gate bias of every layer at
    initialisation (Jozefowicz et al. 2015 use 1.0): the cell starts by keeping its memory,
    which helps on long-range tasks such as the adding problem.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        kind: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        task: str = "classify",
        forget_bias: float = 0.0,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "SequenceRNN"
        self.kind = choice(name, "kind", kind, tuple(_LAYERS))
        self.task = choice(name, "task", task, ("classify", "regress"))
        self.input_size = positive_int(name, "input_size", input_size)
        self.output_size = positive_int(name, "output_size", output_size)
        hidden_size = positive_int(name, "hidden_size", hidden_size)
        num_layers = positive_int(name, "num_layers", num_layers)
        dropout = probability(name, "dropout", dropout)
        self.rnn = _LAYERS[self.kind](
            self.input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bool(bidirectional),
            generator=generator,
        )
        if forget_bias:
            if self.kind != "lstm":
                raise ValueError(f"SequenceRNN: forget_bias applies to kind='lstm' only, got kind={self.kind!r}")
            for name, p in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    p.data[hidden_size : 2 * hidden_size] += float(forget_bias)  # gates i, f, g, o
        self.dropout = nn.Dropout(dropout, generator=generator)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), self.output_size, generator=generator)

    def forward(self, x: Tensor, lengths: Any = None) -> Tensor:
        _, state = self.rnn(x, lengths=lengths)
        h_n = state[0] if self.kind == "lstm" else state  # (L*D, B, H)
        features = F.cat([h_n[-2], h_n[-1]], dim=1) if self.rnn.bidirectional else h_n[-1]  # (B, D*H)
        return self.fc(self.dropout(features))  # (B, output_size)
