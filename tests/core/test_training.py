"""End to end: an MLP learns the spiral problem; an RNN loop of data-dependent length backpropagates."""

from __future__ import annotations

import numpy as np

import labkit
import labkit.functional as F
from labkit.testing import gradcheck


def _spiral(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for c in range(3):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def test_mlp_with_plain_sgd_fits_the_spiral() -> None:
    rng = np.random.default_rng(0)
    x_np, y_np = _spiral(100, rng)
    x, y = labkit.tensor(x_np), labkit.tensor(y_np)
    g = labkit.Generator(0)
    params = [
        labkit.randn(2, 64, generator=g) * 1.0,
        labkit.zeros(64),
        labkit.randn(64, 64, generator=g) * (1 / 8),
        labkit.zeros(64),
        labkit.randn(64, 3, generator=g) * (1 / 8),
        labkit.zeros(3),
    ]
    params = [p.detach().requires_grad_() for p in params]
    w1, b1, w2, b2, w3, b3 = params
    first = None
    for _ in range(1500):
        h = F.tanh(x @ w1 + b1)
        h = F.relu(h @ w2 + b2)
        loss = F.cross_entropy(h @ w3 + b3, y)
        first = loss.item() if first is None else first
        for p in params:
            p.grad = None
        loss.backward()
        with labkit.no_grad():
            for p in params:
                p.data -= 0.5 * p.grad.data
    with labkit.no_grad():
        logits = F.relu(F.tanh(x @ w1 + b1) @ w2 + b2) @ w3 + b3
    acc = float((logits.numpy().argmax(1) == y_np).mean())
    assert first > 1.0 and loss.item() < 0.2, (first, loss.item())
    assert acc > 0.95, acc


def _rnn(x_seq: labkit.Tensor, h0: labkit.Tensor, w_x: labkit.Tensor, w_h: labkit.Tensor, stop: float) -> labkit.Tensor:
    """Run until the input says stop (a data-dependent length), return the final state."""
    h = h0
    for t in range(x_seq.shape[0]):
        if x_seq.data[t, 0] > stop:  # Python control flow on data: the graph differs per input
            break
        h = F.tanh(x_seq[t] @ w_x + h @ w_h)
    return h


def test_rnn_loop_of_500_steps_with_data_dependent_length() -> None:
    rng = np.random.default_rng(1)
    seq = rng.uniform(-1, 1, (600, 3))
    seq[500, 0] = 5.0  # stops after exactly 500 steps
    x_seq = labkit.tensor(seq)
    w_x = labkit.tensor(rng.normal(0, 0.3, (3, 8)), requires_grad=True)
    w_h = labkit.tensor(rng.normal(0, 0.3, (8, 8)), requires_grad=True)
    h0 = labkit.zeros(8, dtype="float64")
    h = _rnn(x_seq, h0, w_x, w_h, stop=4.0)
    (h * h).sum().backward()
    assert w_x.grad is not None and np.isfinite(w_h.grad.numpy()).all()

    # the same code on a short version matches finite differences
    short = seq[:12].copy()
    short[7, 0] = 5.0
    gradcheck(
        lambda a, b: _rnn(labkit.tensor(short), h0, a, b, stop=4.0),
        [labkit.tensor(w_x.numpy(), requires_grad=True), labkit.tensor(w_h.numpy(), requires_grad=True)],
    )
