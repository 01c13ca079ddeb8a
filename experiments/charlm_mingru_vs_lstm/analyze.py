"""Read the minGRU-vs-LSTM sweep back from MLflow and write ``results.md`` (table) and ``results.png`` (curves).

The sweep (the command in this folder's README) is one MLflow parent run with a child per model; every
child carries the tag ``study=charlm_mingru_vs_lstm``. Without ``--parent`` the newest sweep of the study
in the store is read.

    python experiments/charlm_mingru_vs_lstm/analyze.py --tracking-uri sqlite:////tmp/study_charlm/mlflow.db
    python experiments/charlm_mingru_vs_lstm/analyze.py --tracking-uri ... --parent RUN_ID --out-dir /tmp/report

Table, per model: parameters (from the run's ``model_summary.txt``), validation bits per character after
each epoch and the best, test bits per character (best-validation weights), wall time per epoch (between
the ``epoch`` metric's timestamps: training, that epoch's validation, text sample and checkpoint; the
first from the run's start) and the training throughput (``train/throughput``, characters per second,
mean over the run). Plot: validation bits per character per epoch, and wall time per epoch.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.tracking.studies import open_store, study_children

log = logging.getLogger("charlm_mingru_vs_lstm")

STUDY = "charlm_mingru_vs_lstm"
HERE = Path(__file__).resolve().parent
#: model ``_target_`` -> the name the table and plot use
MODELS = {"labkit_mingru.models.MinGRULM": "minGRU", "labkit.models.CharLSTMLM": "LSTM"}
COLORS = {"minGRU": "tab:orange", "LSTM": "tab:blue"}


@dataclass
class Trial:
    """One child run: its model, size, status, per-epoch validation bpc and wall times, test bpc."""

    run_id: str
    model: str
    status: str
    params: int | None
    val_bpc: list[tuple[int, float]] = field(default_factory=list)  # (epoch, bits per character)
    epoch_wall_s: list[float] = field(default_factory=list)
    test_bpc: float | None = None
    unigram_bpc: float | None = None
    throughput: float | None = None  # training characters per second
    run_wall_s: float | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def best_val(self) -> float | None:
        return min((v for _, v in self.val_bpc), default=None)


def parameter_count(client: Any, run_id: str) -> int | None:
    """``Total params`` from the run's ``model_summary.txt`` artifact (None when it is missing)."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            text = Path(client.download_artifacts(run_id, "model_summary.txt", tmp)).read_text()
    except Exception as exc:  # no artifact (a failed run): the table shows "-"
        log.warning("run %s: no model_summary.txt (%s)", run_id, exc)
        return None
    found = re.search(r"Total params: ([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else None


def read_trial(client: Any, run: Any) -> Trial:
    """A ``Trial`` from a child run: metric histories are joined on the step via the ``epoch`` metric."""
    info, data = run.info, run.data
    target = data.params.get("model._target_", "?")
    epochs = sorted(client.get_metric_history(info.run_id, "epoch"), key=lambda m: m.step)
    epoch_at_step = {m.step: int(m.value) for m in epochs}
    val = [
        (epoch_at_step[m.step], m.value)
        for m in client.get_metric_history(info.run_id, "val/bits_per_char")
        if m.step in epoch_at_step
    ]
    stamps = [info.start_time] + [m.timestamp for m in epochs]
    throughput = [m.value for m in client.get_metric_history(info.run_id, "train/throughput")]
    keys = ("model.embed_dim", "model.hidden_size", "model.num_layers", "data.limit", "data.batch_size")
    keys += ("data.seq_len", "trainer.max_epochs", "optim.lr", "backend.num_threads", "backend.kernels")
    return Trial(
        run_id=info.run_id,
        model=MODELS.get(target, target),
        status=info.status,
        params=parameter_count(client, info.run_id),
        val_bpc=sorted(val),
        epoch_wall_s=[(b - a) / 1000 for a, b in itertools.pairwise(stamps)],
        test_bpc=data.metrics.get("test/bits_per_char"),
        unigram_bpc=data.metrics.get("test/unigram_bits_per_char"),
        throughput=statistics.fmean(throughput) if throughput else None,
        run_wall_s=(info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None,
        settings={k: data.params[k] for k in keys if k in data.params},
    )


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def to_markdown(trials: list[Trial], parent: str) -> str:
    """The comparison table, the per-epoch validation curve and the settings both trials share."""
    trials = sorted(trials, key=lambda t: t.model)
    epochs = sorted({e for t in trials for e, _ in t.val_bpc})
    shared = {k: v for k, v in trials[0].settings.items() if all(t.settings.get(k) == v for t in trials)}
    differ = sorted({k for t in trials for k in t.settings} - set(shared))
    lines = [
        f"# {STUDY}: results",
        "",
        f"Sweep (MLflow parent run) `{parent}`, {len(trials)} trials. Shared settings: "
        + ", ".join(f"{k}={v}" for k, v in shared.items())
        + (f"; differing: {', '.join(differ)}" if differ else "")
        + ".",
        "",
        "| model | params | best val bpc | test bpc | wall s / epoch (mean) | train chars/s | run wall s | status |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        wall = statistics.fmean(t.epoch_wall_s) if t.epoch_wall_s else None
        lines.append(
            f"| {t.model} | {_num(t.params, ',')} | {_num(t.best_val, '.3f')} | {_num(t.test_bpc, '.3f')} "
            f"| {_num(wall, '.1f')} | {_num(t.throughput, ',.0f')} | {_num(t.run_wall_s, '.0f')} | {t.status} |"
        )
    lines += ["", "Validation bits per character after each epoch (wall seconds of that epoch in brackets):", ""]
    lines += ["| model | " + " | ".join(f"epoch {e}" for e in epochs) + " |", "|---|" + "---:|" * len(epochs)]
    for t in trials:
        by_epoch = dict(t.val_bpc)
        cells = []
        for e in epochs:
            wall = t.epoch_wall_s[e - 1] if e - 1 < len(t.epoch_wall_s) else None
            cells.append("-" if e not in by_epoch else f"{by_epoch[e]:.3f} ({_num(wall, '.0f')} s)")
        lines.append(f"| {t.model} | " + " | ".join(cells) + " |")
    unigram = next((t.unigram_bpc for t in trials if t.unigram_bpc is not None), None)
    if unigram is not None:
        lines += [
            "",
            f"For scale: the test split's unigram entropy (a model that ignores context) is {unigram:.3f} bpc.",
        ]
    lines += ["", "Runs: " + ", ".join(f"{t.model} `{t.run_id}`" for t in trials) + ".", ""]
    return "\n".join(lines)


def plot(trials: list[Trial], path: Path) -> None:
    """Validation bits per character per epoch (left) and wall time per epoch (right), one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for t in sorted(trials, key=lambda t: t.model):
        color = COLORS.get(t.model)
        label = t.model + (f" ({t.params:,} params)" if t.params else "")
        if t.val_bpc:
            xs, ys = zip(*t.val_bpc)
            left.plot(xs, ys, marker="o", color=color, label=label)
        if t.epoch_wall_s:
            right.plot(range(1, len(t.epoch_wall_s) + 1), t.epoch_wall_s, marker="s", color=color, label=t.model)
    left.set(xlabel="epoch", ylabel="validation bits per character", title="validation bpc (lower is better)")
    right.set(xlabel="epoch", ylabel="seconds", title="wall time per epoch (shared 2-core CPU)")
    right.set_ylim(bottom=0)
    epochs = sorted(
        {e for t in trials for e, _ in t.val_bpc} | {i + 1 for t in trials for i in range(len(t.epoch_wall_s))}
    )
    for ax in (left, right):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri", required=True, help="the MLflow store the sweep wrote (sqlite:////abs/mlflow.db)"
    )
    parser.add_argument("--parent", default=None, help="the sweep's parent run id (default: the newest sweep)")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where results.md and results.png go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file per run: no bars
    try:
        client = open_store(args.tracking_uri)
        parent, runs = study_children(client, STUDY, args.parent)
    except ValueError as exc:
        print(f"analyze: error: {exc}", file=sys.stderr)
        return 1
    trials = [read_trial(client, run) for run in runs]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.md").write_text(to_markdown(trials, parent))
    plot(trials, args.out_dir / "results.png")
    print(f"wrote {args.out_dir / 'results.md'} and {args.out_dir / 'results.png'} ({len(trials)} trials of {parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
