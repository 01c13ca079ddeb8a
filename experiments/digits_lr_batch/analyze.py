"""Read the digits lr x batch-size sweep back from MLflow and write ``results.md`` and ``results.png``.

The sweep (``labkit train experiment=digits_cnn hparams_search=digits_lr_batch``) is one MLflow parent run
with a child per (lr, batch size, seed); every child carries the tag ``study=digits_lr_batch``. Without
``--parent`` the newest sweep of the study in the store is read.

    python experiments/digits_lr_batch/analyze.py --tracking-uri sqlite:////tmp/study_digits/mlflow.db
    python experiments/digits_lr_batch/analyze.py --tracking-uri ... --parent RUN_ID --out-dir /tmp/report

Tables (rows: learning rate, columns: batch size): test accuracy as mean +- standard deviation over the
seeds of a cell (best-validation weights), and the mean wall time of a trial. Plot: the same two grids
as annotated heatmaps.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.tracking.studies import open_store, study_children, study_main

log = logging.getLogger("digits_lr_batch")

STUDY = "digits_lr_batch"
HERE = Path(__file__).resolve().parent


@dataclass
class Trial:
    """One child run: its grid cell, seed, status, test accuracy and wall time."""

    run_id: str
    lr: float
    batch_size: int
    seed: int
    status: str
    test_accuracy: float | None
    wall_s: float | None


@dataclass
class Cell:
    """The trials of one (lr, batch size) cell, summarised over seeds (finished trials with a score only)."""

    mean: float | None
    std: float | None
    wall_s: float | None
    runs: int
    finished: int


def read_trials(runs: list[Any]) -> list[Trial]:
    """One ``Trial`` per child run."""
    trials = []
    for run in runs:
        params, info = run.data.params, run.info
        wall = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
        trials.append(
            Trial(
                run_id=info.run_id,
                lr=float(params["optim.lr"]),
                batch_size=int(params["data.batch_size"]),
                seed=int(params.get("seed", 0)),
                status=info.status,
                test_accuracy=run.data.metrics.get("test/accuracy"),
                wall_s=wall,
            )
        )
    return trials


def grid(trials: list[Trial]) -> tuple[list[float], list[int], dict[tuple[float, int], Cell]]:
    """``(learning rates, batch sizes, {(lr, batch): Cell})`` with both axes sorted ascending."""
    lrs = sorted({t.lr for t in trials})
    batches = sorted({t.batch_size for t in trials})
    cells = {}
    for lr in lrs:
        for batch in batches:
            members = [t for t in trials if t.lr == lr and t.batch_size == batch]
            scores = [t.test_accuracy for t in members if t.status == "FINISHED" and t.test_accuracy is not None]
            walls = [t.wall_s for t in members if t.status == "FINISHED" and t.wall_s is not None]
            cells[lr, batch] = Cell(
                mean=statistics.fmean(scores) if scores else None,
                std=statistics.stdev(scores) if len(scores) > 1 else None,
                wall_s=statistics.fmean(walls) if walls else None,
                runs=len(members),
                finished=len(scores),
            )
    return lrs, batches, cells


def _accuracy(cell: Cell) -> str:
    if cell.mean is None:
        return "-"
    text = f"{100 * cell.mean:.1f}" + (f" ± {100 * cell.std:.1f}" if cell.std is not None else "")
    return text + (f" ({cell.finished}/{cell.runs})" if cell.finished != cell.runs else "")


def to_markdown(trials: list[Trial], parent: str, settings: dict[str, str]) -> str:
    """The accuracy and wall-time grids as markdown tables, with the best cell named."""
    lrs, batches, cells = grid(trials)
    seeds = sorted({t.seed for t in trials})
    header = "| lr \\ batch | " + " | ".join(str(b) for b in batches) + " |"
    rule = "|---|" + "---:|" * len(batches)
    lines = [
        f"# {STUDY}: results",
        "",
        f"Sweep (MLflow parent run) `{parent}`, {len(trials)} trials "
        f"({len(lrs)} learning rates x {len(batches)} batch sizes x seeds {seeds}). Settings: "
        + ", ".join(f"{k}={v}" for k, v in settings.items())
        + ".",
        "",
        "Test accuracy (%, best-validation weights), mean ± standard deviation over seeds:",
        "",
        header,
        rule,
    ]
    lines += [f"| {lr:g} | " + " | ".join(_accuracy(cells[lr, b]) for b in batches) + " |" for lr in lrs]
    lines += ["", "Wall time of one trial (s, mean over seeds):", "", header, rule]
    lines += [
        f"| {lr:g} | "
        + " | ".join("-" if cells[lr, b].wall_s is None else f"{cells[lr, b].wall_s:.1f}" for b in batches)
        + " |"
        for lr in lrs
    ]
    scored = [(key, cell) for key, cell in cells.items() if cell.mean is not None]
    if scored:
        (lr, batch), cell = max(scored, key=lambda item: item[1].mean)
        lines += ["", f"Best cell: lr={lr:g}, batch size={batch}: {_accuracy(cell)} % test accuracy."]
    failed = [t for t in trials if t.status != "FINISHED"]
    lines += ["", f"Trials not finished: {len(failed)}." + "".join(f" {t.run_id} ({t.status})" for t in failed), ""]
    return "\n".join(lines)


def plot(trials: list[Trial], path: Path) -> None:
    """Two annotated heatmaps (learning rate x batch size): mean test accuracy and mean wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lrs, batches, cells = grid(trials)
    accuracy = np.array(
        [[np.nan if cells[lr, b].mean is None else 100 * cells[lr, b].mean for b in batches] for lr in lrs]
    )
    wall = np.array([[np.nan if cells[lr, b].wall_s is None else cells[lr, b].wall_s for b in batches] for lr in lrs])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = ((left, accuracy, "test accuracy (%), mean over seeds", "viridis", "{:.1f}"),)
    panels += ((right, wall, "wall time per trial (s)", "magma_r", "{:.0f}"),)
    for ax, values, title, cmap, fmt in panels:
        image = ax.imshow(values, cmap=cmap, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.85)
        finite = values[np.isfinite(values)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i, lr in enumerate(lrs):
            for j, batch in enumerate(batches):
                cell = cells[lr, batch]
                if not np.isfinite(values[i, j]):
                    text, color = "-", "black"
                else:
                    text = fmt.format(values[i, j])
                    if values is accuracy and cell.std is not None:
                        text += f"\n± {100 * cell.std:.1f}"
                    bright = values[i, j] > middle if cmap == "viridis" else values[i, j] < middle
                    color = "black" if bright else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color)
        ax.set_xticks(range(len(batches)), [str(b) for b in batches])
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_xlabel("batch size")
        ax.set_ylabel("learning rate (Adam)")
        ax.set_title(title)
    fig.suptitle("digits_cnn: learning rate x batch size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings_of(runs: list[Any]) -> dict[str, str]:
    """What every trial shares (taken from the first child's params)."""
    keys = {"model": "model._target_", "epochs": "trainer.max_epochs", "optimizer": "optim._target_"}
    params = runs[0].data.params if runs else {}
    return {label: params.get(key, "?") for label, key in keys.items()}


def analyze(tracking_uri: str, parent: str | None = None, out_dir: Path = HERE) -> tuple[Path, Path]:
    """Read the sweep, write ``results.md`` and ``results.png`` into ``out_dir``; return their paths."""
    client = open_store(tracking_uri)
    parent, runs = study_children(client, STUDY, parent)
    trials = read_trials(runs)
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
