"""Random generators. Randomness is explicit: ops and initialisers take a ``generator``.

``default_generator`` serves calls that pass none; ``manual_seed`` reseeds it. The
runner seeds once and passes generators down, so a run is reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Generator:
    """A seeded random stream (numpy's PCG64) whose state can be saved and restored."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.np = np.random.default_rng(seed)

    def manual_seed(self, seed: int) -> Generator:
        self.seed = seed
        self.np = np.random.default_rng(seed)
        return self

    def get_state(self) -> dict[str, Any]:
        """A JSON-able snapshot of the stream (for checkpoints)."""
        return self.np.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.np.bit_generator.state = state

    def spawn(self, n: int) -> list[Generator]:
        """Independent child streams (for data workers, dropout layers, ...)."""
        kids = []
        for child in self.np.spawn(n):
            g = Generator.__new__(Generator)
            g.seed = None
            g.np = child
            kids.append(g)
        return kids


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Reseed ``default_generator`` and return it."""
    return default_generator.manual_seed(seed)


def resolve(generator: Generator | None) -> np.random.Generator:
    if generator is None:
        return default_generator.np
    if isinstance(generator, Generator):
        return generator.np
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator: expected labkit.Generator or numpy.random.Generator, got {type(generator).__name__}")
