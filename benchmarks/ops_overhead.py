"""Per-op overhead and an MLP training step, labkit vs PyTorch CPU, in one interleaved run.

    python benchmarks/ops_overhead.py            # prints a Markdown table
    python benchmarks/ops_overhead.py --repeats 50

(a) a chain of 100 small ops on (8, 8) float32 tensors (mul, add, tanh, sigmoid
    in turn), forward + backward, reported per op;
(b) an MLP 784-512-256-10 training step (batch 128, ReLU, cross-entropy, plain
    SGD in place), written with ``labkit.functional`` and ``torch.nn.functional``.
Targets (labkit / PyTorch, same run): (b) <= 1.1, (a) <= 2.0.
"""

from __future__ import annotations

import argparse
import datetime

from _harness import interleaved, limit_threads, machine

limit_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import labkit  # noqa: E402
import labkit.functional as F  # noqa: E402

N_OPS = 100


def chain_labkit(device: str = "cpu") -> object:
    rng = np.random.default_rng(0)
    x = labkit.tensor(rng.uniform(-1, 1, (8, 8)).astype(np.float32), device=device, requires_grad=True)
    w = labkit.tensor(rng.uniform(0.5, 1, (8, 8)).astype(np.float32), device=device, requires_grad=True)
    b = labkit.tensor(rng.uniform(-0.1, 0.1, (8, 8)).astype(np.float32), device=device, requires_grad=True)

    def step() -> None:
        y = x
        for _ in range(N_OPS // 4):
            y = F.sigmoid(F.tanh(y * w + b))
        y.sum().backward()  # sum adds one op to the 100
        x.grad = w.grad = b.grad = None

    return step


def chain_torch(device: str = "cpu") -> object:
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(-1, 1, (8, 8)).astype(np.float32), device=device, requires_grad=True)
    w = torch.tensor(rng.uniform(0.5, 1, (8, 8)).astype(np.float32), device=device, requires_grad=True)
    b = torch.tensor(rng.uniform(-0.1, 0.1, (8, 8)).astype(np.float32), device=device, requires_grad=True)

    def step() -> None:
        y = x
        for _ in range(N_OPS // 4):
            y = torch.sigmoid(torch.tanh(y * w + b))
        y.sum().backward()
        x.grad = w.grad = b.grad = None

    return step


def _mlp_weights() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [(512, 784), (256, 512), (10, 256)]
    ws = []
    for out_f, in_f in sizes:
        bound = 1 / np.sqrt(in_f)
        ws.append(rng.uniform(-bound, bound, (out_f, in_f)).astype(np.float32))
        ws.append(rng.uniform(-bound, bound, (out_f,)).astype(np.float32))
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    return ws, x, y


def mlp_labkit(device: str = "cpu", lr: float = 0.01) -> object:
    ws, x_np, y_np = _mlp_weights()
    params = [labkit.tensor(w, device=device, requires_grad=True) for w in ws]
    x, y = labkit.tensor(x_np, device=device), labkit.tensor(y_np, device=device)

    def step() -> None:
        w1, b1, w2, b2, w3, b3 = params
        h = F.relu(F.linear(x, w1, b1))
        h = F.relu(F.linear(h, w2, b2))
        loss = F.cross_entropy(F.linear(h, w3, b3), y)
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data
        if sync is not None:
            sync()

    sync = None
    if device != "cpu":
        import cupy

        sync = cupy.cuda.get_current_stream().synchronize
    return step


def mlp_torch(device: str = "cpu", lr: float = 0.01) -> object:
    ws, x_np, y_np = _mlp_weights()
    params = [torch.tensor(w, device=device, requires_grad=True) for w in ws]
    x, y = torch.tensor(x_np, device=device), torch.tensor(y_np, device=device)
    tf = torch.nn.functional

    def step() -> None:
        w1, b1, w2, b2, w3, b3 = params
        h = tf.relu(tf.linear(x, w1, b1))
        h = tf.relu(tf.linear(h, w2, b2))
        loss = tf.cross_entropy(tf.linear(h, w3, b3), y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(lr * p.grad)
        if device != "cpu":
            torch.cuda.synchronize()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (labkit on cupy, torch on CUDA if it has it)")
    args = parser.parse_args()

    dev = args.device
    tdev = dev if dev == "cpu" or torch.cuda.is_available() else "cpu"
    chain = interleaved({"labkit": chain_labkit(dev), "torch": chain_torch(tdev)}, args.repeats, warmup=5)
    mlp = interleaved({"labkit": mlp_labkit(dev), "torch": mlp_torch(tdev)}, args.repeats, warmup=5)
    print(f"# ops_overhead on {dev} (torch on {tdev}), {datetime.date.today()}, {machine()}")
    print(f"# torch {torch.__version__}, numpy {np.__version__}, {args.repeats} interleaved repeats, medians\n")
    print("| workload | labkit | PyTorch | ratio | target |")
    print("|---|---|---|---|---|")
    lk, th = chain["labkit"] / (N_OPS + 1) * 1e6, chain["torch"] / (N_OPS + 1) * 1e6
    print(f"| chain of {N_OPS} small ops, fwd+bwd per op | {lk:.2f} us | {th:.2f} us | {lk / th:.2f} | <= 2.0 |")
    lk, th = mlp["labkit"] * 1e3, mlp["torch"] * 1e3
    print(f"| MLP 784-512-256-10 step, batch 128 | {lk:.2f} ms | {th:.2f} ms | {lk / th:.2f} | <= 1.1 |")


if __name__ == "__main__":
    main()
