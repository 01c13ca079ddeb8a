"""Stopping a sweep on SIGINT or SIGTERM: the running trials stop cleanly and no new trial starts.

While a sweep runs, the launching process (``labkit train -m``) holds a :class:`SweepStop`. On the
first signal it writes ``<sweep dir>/labkit_sweep_stop`` (the signal's name) and passes the signal
on to its worker processes (a joblib launcher's). Each running trial then stops at a step boundary,
writes its checkpoint and ends KILLED, as a single run does. A job that starts after that finds the
file (:func:`stop_requested`) and returns without training, so the launcher drains its queue
quickly. A trial that runs in the launching process itself (the sequential launcher) is interrupted
there. A second signal interrupts the launching process at once. The sweep callback then ends the
parent run KILLED, with the table of the trials that ran.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["STOP_FILE", "SweepStop", "stop_requested"]

log = logging.getLogger(__name__)

STOP_FILE = "labkit_sweep_stop"


def stop_requested(sweep_dir: str | Path | None) -> str | None:
    """The name of the signal that stopped the sweep in ``sweep_dir`` (``"SIGTERM"``), or None."""
    if sweep_dir is None:
        return None
    try:
        return (Path(sweep_dir) / STOP_FILE).read_text().strip() or "signal"
    except FileNotFoundError:
        return None


class SweepStop:
    """The launching process's SIGINT/SIGTERM handler while a sweep runs (see the module's docstring)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, sweep_dir: str | Path, in_process: bool = False) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.in_process = in_process  # the launcher runs the trials in this process (Hydra's BasicLauncher)
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def record(self, signum: int | str) -> str:
        """Write the stop file (the first signal's name is kept); return that name."""
        name = signum if isinstance(signum, str) else signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = stop_requested(self.sweep_dir) or name
            path = self.sweep_dir / STOP_FILE
            if not path.exists():
                path.write_text(self.signal_name + "\n")
        return self.signal_name

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal_name is None
        name = self.record(signum)
        workers = multiprocessing.active_children()  # a joblib launcher's loky workers (or a trial's loader workers)
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)
        if workers and first and not self.in_process:
            log.warning(
                "sweep stopped (%s): %d worker(s) stop their trials at the next step and write a checkpoint; "
                "no new trial starts. Send the signal again to stop at once.", name, len(workers),
            )  # fmt: skip
            return
        raise KeyboardInterrupt  # a trial of this process (or a second signal): stop here

    def install(self) -> None:
        """Handle SIGINT and SIGTERM (only from the main thread, where Python delivers signals)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
