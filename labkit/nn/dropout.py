"""``Dropout``: zero elements with probability ``p`` while training; the identity in eval mode.

The mask is drawn from the ``generator`` given at construction, or from
``labkit.default_generator`` (read at call time, so ``labkit.manual_seed`` applies).
"""

from __future__ import annotations

from typing import Any

import labkit.functional as F
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout: kept elements are scaled by ``1 / (1 - p)``. Any shape -> the same shape.

    ``inplace`` is accepted for PyTorch compatibility; labkit always returns a new tensor.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: expected p to be a probability in [0, 1], got {p!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(
                f"Dropout: expected a labkit.Generator or None for generator, got {type(generator).__name__}"
            )
        self.p = float(p)
        self.inplace = inplace
        self.generator = generator

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Dropout(p={self.p}): expected a Tensor input, got {type(x).__name__}")
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:  # everything dropped (F.dropout's scale 1 / (1 - p) is undefined here)
            return x * 0.0
        return F.dropout(x, self.p, training=True, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
