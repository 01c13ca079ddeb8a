"""Shared pieces of the runner tests: the toy config (tests/runner/conf) and a step-triggered callback."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labkit.runner import Callback, compose

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
