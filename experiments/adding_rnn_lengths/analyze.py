"""Read the adding-problem sweep back from MLflow and write ``results.md`` (table) and ``results.png`` (curves).

The sweep (``labkit train hparams_search=adding_lengths``) is one MLflow parent run with a child per
cell x T; every child carries the tag ``study=adding_rnn_lengths``. Without ``--parent`` the newest
sweep of the study in the store is read.

    python experiments/adding_rnn_lengths/analyze.py --tracking-uri sqlite:////tmp/study_adding/mlflow.db
    python experiments/adding_rnn_lengths/analyze.py --tracking-uri ... --parent RUN_ID --out-dir /tmp/report

Table: per cell and T, the test MSE (best-validation weights), the best validation MSE, the first epoch
whose validation MSE is below 0.05 (the 0.167 plateau of "predict the mean" is broken; "never" if no
epoch is), the epochs run and the trial's wall time. Plot: validation MSE per epoch (log scale), one
panel per T, one line per cell, the 0.167 baseline and the 0.05 threshold drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.tracking.studies import open_store, study_children, study_main

log = logging.getLogger("adding_rnn_lengths")

STUDY = "adding_rnn_lengths"
BASELINE_MSE = 1.0 / 6.0  # predicting 1 (the mean target) scores Var(sum of 2 U(0,1)) = 1/6
BREAK_MSE = 0.05
CELL_ORDER = ("rnn", "gru", "lstm")
COLORS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
HERE = Path(__file__).resolve().parent


@dataclass
class Trial:
    """One child run: its cell, length, status, scores and validation curve ``[(epoch, val MSE)]``."""

    run_id: str
    cell: str
    length: int
    status: str
    test_mse: float | None
    wall_s: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def break_epoch(self) -> int | None:
        """The first epoch whose validation MSE is below ``BREAK_MSE``, or None."""
        return next((epoch for epoch, value in self.curve if value < BREAK_MSE), None)

    @property
    def best_val(self) -> float | None:
        return min((value for _, value in self.curve), default=None)


def epoch_curve(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """``[(epoch, value)]`` of a per-epoch metric logged at global steps, mapped through the ``epoch`` metric."""
    epochs = {m.step: int(m.value) for m in client.get_metric_history(run_id, "epoch")}
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [(epochs.get(m.step, index + 1), float(m.value)) for index, m in enumerate(history)]


def read_trials(client: Any, runs: list[Any]) -> list[Trial]:
    """One ``Trial`` per child run, sorted by T then cell."""
    trials = []
    for run in runs:
        params, info = run.data.params, run.info
        wall = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
        trials.append(
            Trial(
                run_id=info.run_id,
                cell=params.get("model.kind", "?"),
                length=int(params.get("data.dataset_kwargs.T", 0)),
                status=info.status,
                test_mse=run.data.metrics.get("test/mse"),
                wall_s=wall,
                curve=epoch_curve(client, info.run_id, "val/mse"),
            )
        )
    order = {cell: index for index, cell in enumerate(CELL_ORDER)}
    return sorted(trials, key=lambda t: (t.length, order.get(t.cell, len(order)), t.cell))


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def to_markdown(trials: list[Trial], parent: str, settings: dict[str, str]) -> str:
    """The results table (one row per trial) with a header naming the sweep and its settings."""
    lines = [
        f"# {STUDY}: results",
        "",
        f"Sweep (MLflow parent run) `{parent}`, {len(trials)} trials. Settings: "
        + ", ".join(f"{k}={v}" for k, v in settings.items())
        + ".",
        f"Predicting the mean scores MSE {BASELINE_MSE:.3f}; 'plateau breaks' is the first epoch with val MSE < "
        f"{BREAK_MSE} (never: no epoch did).",
        "",
        "| cell | T | test MSE | best val MSE | plateau breaks (epoch) | epochs | wall | status |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        broke = "never" if t.break_epoch is None else str(t.break_epoch)
        wall = "-" if t.wall_s is None else f"{t.wall_s:.0f} s"
        lines.append(
            f"| {t.cell} | {t.length} | {_number(t.test_mse, '.3g')} | {_number(t.best_val, '.3g')} | {broke} "
            f"| {len(t.curve)} | {wall} | {t.status} |"
        )
    total = sum(t.wall_s or 0.0 for t in trials)
    lines += ["", f"Total trial wall time: {total / 60:.1f} min.", ""]
    return "\n".join(lines)


def plot(trials: list[Trial], path: Path) -> None:
    """Validation MSE per epoch: one panel per T (shared log y axis), one line per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    lengths = sorted({t.length for t in trials})
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.6), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], lengths):
        for t in (t for t in trials if t.length == length):
            epochs, values = zip(*t.curve) if t.curve else ((), ())
            ax.plot(epochs, values, marker=".", color=COLORS.get(t.cell), label=t.cell)
        ax.axhline(BASELINE_MSE, color="gray", linestyle="--", linewidth=1, label=f"predict mean ({BASELINE_MSE:.3f})")
        ax.axhline(BREAK_MSE, color="gray", linestyle=":", linewidth=1, label=f"threshold {BREAK_MSE}")
        ax.set_yscale("log")
        ax.set_title(f"adding problem, T = {length}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("validation MSE")
    axes[0][0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings_of(runs: list[Any]) -> dict[str, str]:
    """The budget shared by every trial (taken from the first child's params)."""
    keys = {
        "n_train": "data.dataset_kwargs.n_train",
        "batch": "data.batch_size",
        "epochs": "trainer.max_epochs",
        "lr": "optim.lr",
        "hidden": "model.hidden_size",
        "clip": "trainer.grad_clip",
        "seed": "seed",
    }
    params = runs[0].data.params if runs else {}
    return {label: params.get(key, "?") for label, key in keys.items()}


def analyze(tracking_uri: str, parent: str | None = None, out_dir: Path = HERE) -> tuple[Path, Path]:
    """Read the sweep, write ``results.md`` and ``results.png`` into ``out_dir``; return their paths."""
    client = open_store(tracking_uri)
    parent, runs = study_children(client, STUDY, parent)
    trials = read_trials(client, runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, figure = out_dir / "results.md", out_dir / "results.png"
    table.write_text(to_markdown(trials, parent, settings_of(runs)))
    plot(trials, figure)
    log.info("%d trials of sweep %s -> %s, %s", len(trials), parent, table, figure)
    return table, figure


def main(argv: list[str] | None = None) -> int:
    return study_main(analyze, __doc__.splitlines()[0], HERE, argv)


if __name__ == "__main__":
    raise SystemExit(main())
