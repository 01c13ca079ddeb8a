"""``labkit rerun RUN_ID [KEY=VALUE ...] [--tracking-uri URI]``: run a logged run's config again.

The run's ``config.yaml`` artifact (the resolved config it ran with) is downloaded, the
overrides are applied to it (``optim.lr=3e-3``; unknown keys are refused), ``trainer.resume``
is cleared, and ``run(cfg)`` trains a new run in the same store, tagged ``labkit.rerun_of``.
Every ``_target_`` is checked against the allowlist before anything is built.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GROUPS = ("task", "model", "data", "optim", "scheduler", "trainer", "tracking", "backend")


def load_run_config(run_id: str, tracking_uri: str | None) -> tuple[Any, str]:
    """The run's logged ``config.yaml`` (as a DictConfig) and the absolute tracking URI it came from."""
    from omegaconf import OmegaConf

    from labkit.tracking.store import make_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = make_client(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception as exc:
            raise ValueError(
                f"labkit rerun: expected run {run_id!r} with a config.yaml artifact in {uri}, got: {exc}"
            ) from None
        return OmegaConf.load(Path(path)), uri


def apply_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """``cfg`` with ``KEY=VALUE`` overrides; unknown keys and group switches (``optim=sgd``) are refused."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ValueError(f"labkit rerun: expected overrides as KEY=VALUE, got {item!r}")
        if key.lstrip("+~") in GROUPS:
            raise ValueError(
                f"labkit rerun: cannot switch the group option {item!r} on a logged config; expected KEY.FIELD=VALUE "
                "(to change a group, use labkit train with the run's overrides)"
            )
    OmegaConf.set_struct(cfg, True)
    try:
        cfg.merge_with_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise ValueError(f"labkit rerun: override of {key!r}: {str(exc).splitlines()[0]}") from None
    OmegaConf.set_struct(cfg, False)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit rerun", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the MLflow run id to run again")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE changes to its config (e.g. seed=1)")
    parser.add_argument("--tracking-uri", default=None, help="the store holding the run (default: ./mlflow.db)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        cfg, uri = load_run_config(args.run_id, args.tracking_uri)
        cfg = apply_overrides(cfg, args.overrides)
        cfg.trainer.resume = None
        if cfg.tracking.get("uri") is None:
            cfg.tracking.uri = uri
        from labkit.runner.run import run

        result = run(cfg, overrides=args.overrides, tags={"labkit.rerun_of": args.run_id})
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as exc:
        print(f"labkit rerun: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"Run {result['run_id']} (a rerun of {args.run_id}) finished after {result['step']} steps.")
    if result.get("tracking_uri"):
        print(f"Open it in the MLflow UI: labkit ui --tracking-uri {result['tracking_uri']}")
    return 0
