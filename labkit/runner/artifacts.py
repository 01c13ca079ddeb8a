"""The files a finished run leaves with its tracker: config, curves, model summary, environment, model.

Each function takes the tracker and logs one thing; failures to log an optional artifact
are reported with ``logging`` and never fail a run that trained fine.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

log = logging.getLogger("labkit.runner")


@functools.cache
def pip_freeze() -> str:
    """``name==version`` of every installed distribution, sorted (what ``pip freeze`` shows, without pip).

    Read once per process (about 0.5 s for 200 distributions); a sweep's trials share it.
    """
    seen = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen)) + "\n"


def curves_figure(history: Mapping[str, Sequence[tuple[int, float]]]) -> Any:
    """A matplotlib figure of the loss and metric curves: one panel per metric name (after the prefix).

    ``train/loss`` and ``val/loss`` share the "loss" panel; ``val/accuracy`` and ``test/accuracy``
    share "accuracy". Throughput, lr, epoch and one-point series are left out.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels: dict[str, list[str]] = {}
    for key, points in history.items():
        name = key.split("/", 1)[-1]
        if key in ("epoch", "train/lr", "train/throughput") or name.endswith("_best") or len(points) < 2:
            continue
        name = "loss" if name in ("loss", "epoch_loss") else name
        panels.setdefault(name, []).append(key)
    names = sorted(panels, key=lambda n: (n != "loss", n))
    cols = min(3, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    for ax, name in zip(axes.flat, names):
        for key in sorted(panels[name]):
            steps, values = zip(*history[key])
            ax.plot(steps, values, label=key, marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if not names:
        axes.flat[0].text(0.5, 0.5, "no curves (fewer than two points per metric)", ha="center", va="center")
    return fig


def log_run_files(
    tracker: Any,
    *,
    config_yaml: str,
    overrides: Sequence[str],
    history: Mapping[str, Sequence[tuple[int, float]]],
    model: Any,
) -> None:
    """config.yaml, overrides.yaml, plots/curves.png, model_summary.txt, requirements.txt."""
    import yaml

    tracker.log_text(config_yaml, "config.yaml")
    tracker.log_text(yaml.safe_dump(list(overrides), default_flow_style=False), "overrides.yaml")
    summary = model.summary() if hasattr(model, "summary") else repr(model)
    tracker.log_text(f"{model!r}\n\n{summary}\n", "model_summary.txt")
    _quietly("requirements.txt", lambda: tracker.log_text(pip_freeze(), "requirements.txt"))

    def curves() -> None:
        import matplotlib.pyplot as plt

        fig = curves_figure(history)
        try:
            tracker.log_figure(fig, "plots/curves.png")
        finally:
            plt.close(fig)

    _quietly("plots/curves.png", curves)


def log_checkpoints(tracker: Any, paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_file():
            _quietly(f"checkpoints/{path.name}", lambda p=path: tracker.log_artifact(p, "checkpoints"))


def log_model(tracker: Any, model: Any, model_config: Mapping[str, Any], task: Any, loaders: Any) -> None:
    """The model as an MLflow pyfunc model (MLflow trackers only; rebuilt from ``model_config`` at load time)."""
    if not hasattr(tracker, "client"):
        log.debug("tracker %s does not store models: pyfunc model not logged", type(tracker).__name__)
        return
    spec: dict[str, Any] = {"model": dict(model_config)}
    custom = getattr(task, "predict_spec", None)
    if callable(custom):
        spec.update(custom())
    elif "input_shape" in getattr(loaders, "info", {}):
        spec["input_shape"] = list(loaders.info["input_shape"])

    def save() -> None:
        from labkit.tracking.pyfunc import log_pyfunc_model

        log_pyfunc_model(tracker, model, spec)

    _quietly("model (pyfunc)", save)


def _quietly(what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # an optional artifact must not fail a run that trained
        log.warning("could not log %s: %s: %s", what, type(exc).__name__, exc)
