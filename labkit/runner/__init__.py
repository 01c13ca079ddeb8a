"""The experiment runner: ``run(cfg) -> dict`` and what it is made of.

    from labkit.runner import compose, run
    result = run(compose(["trainer.max_epochs=2", "tracking=memory"]))

``run.py`` (one run, start to end), ``build.py`` (task, model, optimizer, scheduler, tracker
from the config), ``loop.py`` (the training loop), ``callbacks.py``, ``checkpointing.py`` (run
checkpoints, resume), ``seed.py``, ``schema.py`` (typed config groups, validation),
``instantiate.py`` (the ``_target_`` allowlist), ``artifacts.py``, ``hydra_app.py``
(``labkit train``), ``sweep.py`` (MLflow parent runs for sweeps).
Hydra itself is imported only by ``compose`` and the command line.
"""

from __future__ import annotations

from typing import Any

from labkit.runner.callbacks import Callback, NonFiniteLossError, TrainingInterrupted
from labkit.runner.instantiate import TargetNotAllowedError, allow_packages
from labkit.runner.run import run


def compose(overrides: Any = (), config_dir: Any = None) -> Any:
    """The config ``labkit train OVERRIDES`` would run (see ``labkit.runner.hydra_app.compose``)."""
    from labkit.runner.hydra_app import compose as hydra_compose

    return hydra_compose(overrides, config_dir)


__all__ = [
    "Callback",
    "NonFiniteLossError",
    "TargetNotAllowedError",
    "TrainingInterrupted",
    "allow_packages",
    "compose",
    "run",
]
