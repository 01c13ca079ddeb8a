"""The thin Hydra entry point behind ``labkit train``: compose the config, call ``run(cfg)``, report.

The configs ship inside the package (``labkit/conf/``), so this works the same from a
source checkout and after ``pip install``. ``compose(overrides)`` gives the same composed
config without Hydra's command line (tests, notebooks).

In a sweep (``-m`` or ``hparams_search=...``) a failed trial is recorded FAILED by ``run``
and the job returns normally, so the sweep goes on; the job's return value is
``cfg.optimized_metric`` of the result (NaN for a failed trial).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from labkit.runner.callbacks import TrainingInterrupted
from labkit.runner.run import run
from labkit.runner.schema import register_configs
from labkit.runner.sweep_stop import SweepStop, stop_requested

log = logging.getLogger("labkit.runner")

#: the package's config directory (``labkit/conf``)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
#: errors a user fixes in the config or the data: shown as one line, without a traceback
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FloatingPointError)


def compose(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """The config ``labkit train OVERRIDES`` would run (without the ``hydra`` node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir or CONFIG_DIR), job_name="train"):
        return hydra_compose("config", overrides=list(overrides))


def _sweep_context() -> dict[str, Any] | None:
    try:
        from labkit.runner.sweep import sweep_context
    except ImportError:
        return None
    return sweep_context()


def job(cfg: DictConfig) -> Any:
    """One Hydra job: ``run(cfg)`` with the launch directory, overrides and sweep parent filled in."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = [str(o) for o in hc.overrides.task]
    sweep = _sweep_context() if multirun else None
    with open_dict(cfg):
        if cfg.get("work_dir") is None:
            cfg.work_dir = str(hc.runtime.cwd)
        if sweep is not None:
            if cfg.get("run_name") is None:
                cfg.run_name = sweep["run_name"]
            if cfg.tracking.get("uri") is None and sweep.get("tracking_uri"):
                cfg.tracking.uri = sweep["tracking_uri"]
    parent = sweep["parent_run_id"] if sweep is not None else None
    stopped = stop_requested(sweep.get("sweep_dir")) if sweep is not None else None
    if stopped:  # the sweep was stopped: this trial does not start
        log.warning("sweep stopped (%s): trial %s not started", stopped, hc.job.num)
        return math.nan
    try:
        result = run(cfg, overrides=overrides, parent_run_id=parent)
    except TrainingInterrupted as exc:
        if multirun and exc.signal_name == "SIGUSR2":  # this trial's Slurm time limit: the sweep goes on
            log.error(
                "trial %s reached its time limit: run %s KILLED with checkpoint %s; continue it with "
                "trainer.resume=%s (docs/cluster.md)", hc.job.num, exc.run_id, exc.checkpoint, exc.run_id,
            )  # fmt: skip
            return math.nan
        if multirun and sweep is not None:  # Ctrl-C or SIGTERM: this trial is KILLED, the sweep starts no other
            SweepStop(sweep["sweep_dir"]).record(exc.signal_name)
            log.error("trial %s stopped (%s): run %s KILLED with checkpoint %s", hc.job.num, exc.signal_name,
                      exc.run_id, exc.checkpoint)  # fmt: skip
            return math.nan
        if multirun:
            raise  # no sweep callback: stop the whole sweep
        print(f"labkit train: interrupted ({exc.signal_name}); checkpoint {exc.checkpoint}", file=sys.stderr)
        print(f"  continue with: labkit train {' '.join(overrides)} trainer.resume={exc.run_id}", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        if multirun:
            log.error("trial %s failed: %s: %s", hc.job.num, type(exc).__name__, exc)
            return math.nan
        if isinstance(exc, USER_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print(f"labkit train: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    if result.get("rank", 0) == 0:  # data-parallel: one report, from the rank that logs
        _report(result, cfg)
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    if metric not in result:  # a misspelt name would make every trial "fail" without saying why
        known = sorted(k for k in result if "/" in k)
        log.error("optimized_metric %r is not a metric of this run; it has: %s", metric, ", ".join(known))
        return math.nan
    return result[metric]


def _report(result: dict[str, Any], cfg: DictConfig) -> None:
    shown = "  ".join(f"{k} {v:.4g}" for k, v in result.items() if k.startswith("test/") and k.count("/") == 1)
    print(f"Run {result['run_id']} finished after {result['epoch']} epochs, {result['step']} steps. {shown}".rstrip())
    uri = result.get("tracking_uri")
    if result.get("spool_dir") and not result.get("mlflow_run_id"):
        print(f"Spooled in {result['spool_dir']}: the store at {uri} has not received it yet")
        print(f"Send it when the store answers: labkit sync --spool {Path(result['spool_dir']).parent}")
    elif uri:
        print(f"Stored in {uri} (experiment {cfg.tracking.experiment!r})")
        print(f"Open it in the MLflow UI: labkit ui --tracking-uri {uri}")
    else:
        print("Tracked in memory only (tracking=memory): no run was stored")
    print(f"Checkpoints: {result['checkpoint_dir']}")


def main(argv: Sequence[str] | None = None) -> int:
    """``labkit train [overrides] [-m] [--cfg job] [--help]``: Hydra's command line on ``job``."""
    register_configs()
    args = list(sys.argv[1:] if argv is None else argv)
    entry = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(job)
    saved = sys.argv
    sys.argv = ["labkit train", *args]
    try:
        entry()
    except HydraException as exc:  # --help and --info compose outside Hydra's own error reporting
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"labkit train: error: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0
