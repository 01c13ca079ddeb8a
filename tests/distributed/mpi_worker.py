"""What each rank runs under ``mpirun -n N python -m tests.distributed.mpi_worker MODE OUT_DIR``.

Modes:
- ``equal``: train a small float64 MLP for two epochs on each rank's shard of every batch
  through the ddp strategy (the calls the training loop makes); writes ``rank<r>.npz`` with the
  final parameters and the global losses. The test compares them with one process trained on
  the combined batches (``reference_training``).
- ``runner``: ``run(cfg)`` with ``trainer.strategy=ddp`` on the runner tests' toy task (dropout
  on): an uninterrupted run, then a run that rank 1 alone interrupts with SIGINT and its
  resume; writes ``runner_rank<r>.json`` with each rank's final parameters, streams and results.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

import labkit
import labkit.functional as F
from labkit import nn, optim
from labkit.data.dataset import TensorDataset
from labkit.data.loader import DataLoader
from labkit.optim.clip import clip_grad_norm_

N_EXAMPLES, BATCH, EPOCHS, SEED = 53, 4, 2, 7


def dataset() -> TensorDataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_EXAMPLES, 5))
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64))


def model(seed: int) -> nn.Module:
    g = labkit.Generator(seed)
    return nn.Sequential(nn.Linear(5, 8, generator=g), nn.Tanh(), nn.Linear(8, 3, generator=g)).double()


def train(net: nn.Module, loader: Any, strategy: Any = None) -> list[float]:
    """Adam with gradient clipping; with ``strategy``, the calls ``labkit.runner.loop`` makes."""
    opt = optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.01)
    losses = []
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = F.cross_entropy(net(x.double()), y)
            value, count = float(loss.item()), int(y.shape[0])
            if strategy is not None:
                value, count = strategy.begin_step(value, count, None)
            opt.zero_grad()
            loss.backward()
            if strategy is not None:
                strategy.reduce_gradients()
            clip_grad_norm_(net.parameters(), 0.5)
            opt.step()
            losses.append(value)
    return losses


def reference_training(ranks: int) -> tuple[dict[str, np.ndarray], list[float]]:
    """One process on the combined batches: batch size ``ranks * BATCH``, same seed."""
    net = model(seed=1)
    losses = train(net, DataLoader(dataset(), batch_size=BATCH * ranks, shuffle=True, seed=SEED))
    return {n: p.numpy() for n, p in net.named_parameters()}, losses


def equal(out: Path) -> None:
    from labkit.distributed.strategy import DDPStrategy
    from labkit.runner.seed import seed_everything

    strategy = DDPStrategy("cpu")
    rank = strategy.rank
    net = model(seed=1 if rank == 0 else 100 + rank)  # other ranks start elsewhere: rank 0's values are broadcast
    loader = strategy.shard(DataLoader(dataset(), batch_size=BATCH, shuffle=True, seed=SEED))
    strategy.setup(net, optim.SGD(net.parameters(), lr=0.0), seed_everything(0), loader)
    losses = train(net, loader, strategy)
    params = {n: p.numpy() for n, p in net.named_parameters()}
    np.savez(out / f"rank{rank}.npz", losses=np.array(losses), world=np.array(strategy.world_size), **params)
    strategy.finish()


def runner(out: Path) -> None:
    from labkit.core.random import default_generator
    from labkit.runner import Callback, TrainingInterrupted, allow_packages, run
    from labkit.tracking import MemoryTracker
    from tests.runner.helpers import series, toy_config

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))

    class Final(Callback):
        """Keeps this rank's final parameters and the next draws of its streams."""

        def on_fit_end(self, loop: Any) -> None:
            self.params = {n: p.numpy().tolist() for n, p in loop.model.named_parameters()}
            state = default_generator.get_state()
            self.draw = default_generator.np.random(2).tolist()  # the dropout stream (ToyMLP uses the default one)
            default_generator.set_state(state)

    class SigintAt(Callback):
        def on_step_end(self, loop: Any, loss: float) -> None:
            if rank == 1 and loop.progress.step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    report: dict[str, Any] = {"rank": rank}
    overrides = ("trainer.strategy=ddp", "model.dropout=0.3", "trainer.checkpoint_interval=step")
    with allow_packages("tests.runner.toy"):
        plain_tracker, final = MemoryTracker("plain"), Final()
        result = run(toy_config(out / "plain", *overrides), tracker=plain_tracker, callbacks=[final])
        report["plain"] = {"result": result, "params": final.params, "draw": final.draw}
        report["plain_series"] = series(plain_tracker.metrics)

        tracker = MemoryTracker("r")
        try:
            run(toy_config(out / "r", *overrides), tracker=tracker, callbacks=[SigintAt()])
            report["interrupted"] = None
        except TrainingInterrupted as exc:
            report["interrupted"] = {"signal": exc.signal_name, "status": tracker.status}
        report["stopped_at"] = tracker.metrics["train/loss"][-1][0] if "train/loss" in tracker.metrics else None
        final = Final()
        result = run(toy_config(out / "r", *overrides, "trainer.resume=r"), tracker=tracker, callbacks=[final])
        report["resumed"] = {"result": result, "params": final.params, "draw": final.draw, "status": tracker.status}
        report["resumed_series"] = series(tracker.metrics)
    (out / f"runner_rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    {"equal": equal, "runner": runner}[mode](folder)
