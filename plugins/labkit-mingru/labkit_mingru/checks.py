"""What labkit's conformance kit checks for this plugin: OpSpec rows for the ops, float64 module examples.

``op_specs()`` rows compare ``parallel_scan`` / ``min_gru_scan`` with a numpy loop (float64 and
float32) and run gradcheck and gradgradcheck. Each ``*_example(generator)`` returns a small
float64 module and its inputs, differentiable inputs with ``requires_grad=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labkit.core.creation import randint, randn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.testing.opspec import REAL, OpSpec

__all__ = [
    "block_example", "lm_example", "min_gru_specs", "mingru_example", "op_specs", "scan_reference", "scan_specs",
]  # fmt: skip


def _uniform(low: float, high: float) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    return lambda rng, shape: rng.uniform(low, high, size=shape)


#: minGRU's decay 1 - z and gate z lie in (0, 1); keep away from the ends so differences stay smooth
GATE = _uniform(0.05, 0.95)


def scan_reference(a: np.ndarray, b: np.ndarray, h0: np.ndarray, reverse: bool = False) -> np.ndarray:
    """``h_t = a_t * h_{t-1} + b_t`` along axis 1 as a plain numpy loop (from the end if ``reverse``)."""
    h, out = h0, np.empty_like(b)
    for t in range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def min_gru_reference(z: np.ndarray, h_tilde: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """minGRU's ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t`` as a numpy loop."""
    return scan_reference(1 - z, z * h_tilde, h0)


def scan_specs() -> list[OpSpec]:
    """``parallel_scan``'s rows: one step, several steps, trailing dims (B, T, 2, 2), reversed."""
    from labkit_mingru.ops import parallel_scan

    def scan(a: Tensor, b: Tensor, h0: Tensor, reverse: bool = False) -> Tensor:
        return parallel_scan(a, b, h0, reverse=reverse)

    rows = []
    for name, shape in (("t1", (2, 1, 3)), ("t6", (2, 6, 3)), ("t9_4d", (2, 9, 2, 2))):
        state = shape[:1] + shape[2:]
        rows.append(
            OpSpec(f"parallel_scan[{name}]", scan, scan_reference, [shape, shape, state], domain=[GATE, REAL, REAL])
        )
    rows.append(
        OpSpec(
            "parallel_scan[reverse]",
            scan,
            scan_reference,
            [(2, 7, 3), (2, 7, 3), (2, 3)],
            kwargs={"reverse": True},
            domain=[GATE, REAL, REAL],
            seed=1,
        )
    )
    return rows


def min_gru_specs() -> list[OpSpec]:
    """``min_gru_scan``'s row: gates in (0, 1), candidates and h0 real."""
    from labkit_mingru.ops import min_gru_scan

    shapes = [(2, 5, 4), (2, 5, 4), (2, 4)]
    return [OpSpec("min_gru_scan", min_gru_scan, min_gru_reference, shapes, domain=[GATE, REAL, REAL])]


def op_specs() -> list[OpSpec]:
    """Every op's rows (what the kit runs with ``check_op`` on every backend)."""
    return scan_specs() + min_gru_specs()


def _input(generator: Generator, *shape: int) -> Tensor:
    return randn(*shape, generator=generator, dtype="float64").requires_grad_(True)


def mingru_example(generator: Generator) -> tuple[Any, tuple[Tensor, ...]]:
    """``MinGRU(3, 4)`` in float64 on ``x (2, 5, 3)`` and ``h0 (2, 4)``."""
    from labkit_mingru.layers import MinGRU

    return MinGRU(3, 4, generator=generator).double(), (_input(generator, 2, 5, 3), _input(generator, 2, 4))


def block_example(generator: Generator) -> tuple[Any, tuple[Tensor, ...]]:
    """``MinGRUBlock(4, expansion=2)`` in float64 on ``x (2, 5, 4)``."""
    from labkit_mingru.layers import MinGRUBlock

    return MinGRUBlock(4, expansion=2, generator=generator).double(), (_input(generator, 2, 5, 4),)


def lm_example(generator: Generator) -> tuple[Any, tuple[Tensor, ...]]:
    """``MinGRULM`` (vocabulary 5, two blocks) in float64 on ids ``(2, 4)`` (not differentiable)."""
    from labkit_mingru.models import MinGRULM

    model = MinGRULM(5, embed_dim=2, hidden_size=3, num_layers=2, expansion=1, generator=generator).double()
    return model, (randint(0, 5, (2, 4), generator=generator),)
