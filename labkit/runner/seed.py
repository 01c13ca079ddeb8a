"""Seeding once per run: one root generator, independent child streams for data, model and dropout.

The runner calls ``seed_everything(cfg.seed)`` before it builds anything. The children are
spawned from the root (numpy's SeedSequence), so adding draws to one stream never shifts
another; ``labkit.default_generator`` (used by layers built without a generator) is reseeded
too. Every stream's state goes into checkpoints and comes back on resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.core.random import Generator, default_generator

STREAMS = ("data", "model", "dropout")


@dataclass
class Seeds:
    """The run's generators: ``data`` (splits, shuffling), ``model`` (initialisation), ``dropout``."""

    seed: int
    data: Generator
    model: Generator
    dropout: Generator

    def state_dict(self) -> dict[str, Any]:
        """JSON-able states of every stream, ``default`` included."""
        return {
            "seed": self.seed,
            **{name: getattr(self, name).get_state() for name in STREAMS},
            "default": default_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"seed", "default", *STREAMS}
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"Seeds.load_state_dict: expected keys {sorted(expected)}, got {got}")
        if state["seed"] != self.seed:
            raise ValueError(
                f"Seeds.load_state_dict: the checkpoint was made with seed {state['seed']}, expected seed {self.seed} "
                "(resume with the run's own config)"
            )
        for name in STREAMS:
            getattr(self, name).set_state(state[name])
        default_generator.set_state(state["default"])


def seed_everything(seed: int) -> Seeds:
    """Seed the run: a root ``labkit.Generator(seed)`` spawns the data, model and dropout streams."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    root = Generator(seed)
    data, model, dropout = root.spawn(len(STREAMS))
    default_generator.manual_seed(seed)
    return Seeds(seed=seed, data=data, model=model, dropout=dropout)
