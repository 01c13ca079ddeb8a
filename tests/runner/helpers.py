"""Shared pieces of the runner tests: the toy config (tests/runner/conf) and a step-triggered callback."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback

from labkit.runner import Callback, allow_packages, compose

CONF = Path(__file__).resolve().parent / "conf"
TOY = ["task=toy", "model=toy_mlp", "data=toy", f"hydra.searchpath=[file://{CONF}]"]


def toy_config(tmp_path: Path, *overrides: str, tracking: str = "memory") -> Any:
    """The composed config of a 3-epoch toy run (4 steps an epoch) writing under ``tmp_path``."""
    base = [*TOY, f"tracking={tracking}", f"work_dir={tmp_path}", "trainer.max_epochs=3", "trainer.log_every=1"]
    return compose([*base, *overrides])


class AtStep(Callback):
    """Call ``action()`` once, right after optimizer step ``step``."""

    def __init__(self, step: int, action: Callable[[], Any]) -> None:
        self.step, self.action, self.fired = step, action, False

    def on_step_end(self, loop: Any, loss: float) -> None:
        if not self.fired and loop.progress.step == self.step:
            self.fired = True
            self.action()


def sigint_at(step: int) -> AtStep:
    return AtStep(step, lambda: os.kill(os.getpid(), signal.SIGINT))


def series(metrics: dict[str, list[tuple[int, float]]], skip: Sequence[str] = ("train/throughput",)) -> dict:
    """A tracker's metric history without the timing-dependent series."""
    return {k: v for k, v in metrics.items() if k not in skip}


def final_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """``run()``'s result without what names the run (id, store, checkpoint folder)."""
    return {k: v for k, v in result.items() if k not in ("run_id", "tracking_uri", "checkpoint_dir")}


_ALLOWED: list[Any] = []  # the open allow_packages blocks of this process (not on the callback: it is pickled)


class AllowToyTargets(HydraCallback):
    """A Hydra callback that allows the toy task's ``_target_`` inside each job's own process.

    ``allow_packages`` is per process and submitit starts a fresh interpreter for every trial;
    Hydra's callbacks travel with the pickled job and run there (``on_job_start``).
    """

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        block = allow_packages("tests.runner.toy")
        block.__enter__()
        _ALLOWED.append(block)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if _ALLOWED:
            _ALLOWED.pop().__exit__(None, None, None)
