"""``python -m labkit demo``: train a small MLP on the 3-class spiral with labkit's ops.

The main job until the Hydra/MLflow runner lands; it exercises the whole core
(ops, autograd, no_grad) in a few seconds and prints the loss as it goes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import labkit
import labkit.functional as F


def spiral(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three interleaved spiral arms in 2-D, (3n, 2) float32 points and (3n,) labels."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=500, help="SGD steps (default 500)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps: expected a positive number, got {args.steps}")

    x_np, y_np = spiral(100, args.seed)
    x, y = labkit.tensor(x_np), labkit.tensor(y_np)
    g = labkit.Generator(args.seed)
    sizes = [(2, 64), (64, 64), (64, 3)]
    params = []
    for fan_in, fan_out in sizes:
        params.append((labkit.randn(fan_in, fan_out, generator=g) * (1.0 / fan_in**0.5)).detach().requires_grad_())
        params.append(labkit.zeros(fan_out, requires_grad=True))

    def forward(inp: labkit.Tensor) -> labkit.Tensor:
        w1, b1, w2, b2, w3, b3 = params
        return F.relu(F.tanh(inp @ w1 + b1) @ w2 + b2) @ w3 + b3

    start = time.perf_counter()
    every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        loss = F.cross_entropy(forward(x), y)
        for p in params:
            p.grad = None
        loss.backward()
        with labkit.no_grad():
            for p in params:
                p.data -= args.lr * p.grad.data
        if step % every == 0 or step == args.steps:
            print(f"step {step:5d}/{args.steps}  loss {loss.item():.4f}", flush=True)
    with labkit.no_grad():
        acc = float((forward(x).numpy().argmax(1) == y_np).mean())
    print(f"spiral MLP: train accuracy {acc:.1%} after {args.steps} steps in {time.perf_counter() - start:.1f}s")
    return 0
