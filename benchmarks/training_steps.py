"""The three standard training steps, labkit vs PyTorch CPU, times and peak memory.

    python benchmarks/training_steps.py                 # all workloads, Markdown table
    python benchmarks/training_steps.py --only lstm --repeats 30

(a) MLP 784-512-256-10, ReLU, cross-entropy, batch 128, SGD momentum 0.9;
(b) CNN on 1x28x28, batch 64: conv3x3(1->32, pad 1)-ReLU-maxpool2, conv3x3(32->64,
    pad 1)-ReLU-maxpool2, linear(3136->128)-ReLU-linear(128->10), Adam;
(c) character LSTM LM: vocab 65, embedding 64, one LSTM layer of 256, sequence 64,
    batch 32, cross-entropy over all steps, Adam, gradient clipping at 1.0 —
    against torch.nn.LSTM and against a torch.nn.LSTMCell loop.
Times: medians of --repeats steps after warm-up, interleaved in one process, float32,
2 threads. Memory: each (framework, workload) runs alone in a fresh process; we report
its peak resident set and the growth over the resident set after set-up (the step's own
memory). Targets (labkit / PyTorch): MLP <= 1.1, CNN <= 1.6, LSTM <= 1.8 (nn.LSTM) and
<= 1.0 (LSTMCell loop); peak memory <= 1.5x.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from collections.abc import Callable

from _harness import interleaved, limit_threads, machine

limit_threads()

import numpy as np  # noqa: E402

WORKLOADS = ("mlp", "cnn", "lstm")


# ---- labkit ---------------------------------------------------------------------------


def labkit_step(name: str) -> Callable[[], None]:
    import labkit
    import labkit.functional as F
    from labkit import nn, optim

    g = labkit.Generator(0)
    rng = np.random.default_rng(0)
    if name == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 512, generator=g),
            nn.ReLU(),
            nn.Linear(512, 256, generator=g),
            nn.ReLU(),
            nn.Linear(256, 10, generator=g),
        )
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = labkit.tensor(rng.standard_normal((128, 784)).astype(np.float32))
        y = labkit.tensor(rng.integers(0, 10, 128))

        def loss_fn() -> labkit.Tensor:
            return F.cross_entropy(model(x), y)

    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128, generator=g), nn.ReLU(), nn.Linear(128, 10, generator=g),
        )  # fmt: skip
        opt = optim.Adam(model.parameters(), lr=1e-3)
        x = labkit.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
        y = labkit.tensor(rng.integers(0, 10, 64))

        def loss_fn() -> labkit.Tensor:
            return F.cross_entropy(model(x), y)

    else:
        emb, lstm, head = (
            nn.Embedding(65, 64, generator=g),
            nn.LSTM(64, 256, batch_first=True, generator=g),
            nn.Linear(256, 65, generator=g),
        )
        model = nn.ModuleList([emb, lstm, head])
        opt = optim.Adam(model.parameters(), lr=1e-3)
        ids = rng.integers(0, 65, (32, 65))
        x, y = labkit.tensor(ids[:, :-1]), labkit.tensor(ids[:, 1:])

        def loss_fn() -> labkit.Tensor:
            out, _ = lstm(emb(x))  # (B, T, H)
            logits = head(out)  # (B, T, V)
            return F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))

    params = list(model.parameters())

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if name == "lstm":
            optim.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


# ---- PyTorch ----------------------------------------------------------------------------


def torch_step(name: str) -> Callable[[], None]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tf = torch.nn.functional
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.tensor(rng.standard_normal((128, 784)).astype(np.float32))
        y = torch.tensor(rng.integers(0, 10, 128))

        def loss_fn() -> torch.Tensor:
            return tf.cross_entropy(model(x), y)

    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
        y = torch.tensor(rng.integers(0, 10, 64))

        def loss_fn() -> torch.Tensor:
            return tf.cross_entropy(model(x), y)

    else:
        cell = name == "lstm_cell"
        emb, head = nn.Embedding(65, 64), nn.Linear(256, 65)
        rnn = nn.LSTMCell(64, 256) if cell else nn.LSTM(64, 256, batch_first=True)
        model = nn.ModuleList([emb, rnn, head])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        ids = rng.integers(0, 65, (32, 65))
        x, y = torch.tensor(ids[:, :-1]), torch.tensor(ids[:, 1:])

        def loss_fn() -> torch.Tensor:
            e = emb(x)
            if cell:
                h = c = torch.zeros(32, 256)
                outs = []
                for t in range(64):
                    h, c = rnn(e[:, t], (h, c))
                    outs.append(h)
                out = torch.stack(outs, 1)
            else:
                out, _ = rnn(e)
            return tf.cross_entropy(head(out).reshape(-1, 65), y.reshape(-1))

    params = list(model.parameters())

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if name.startswith("lstm"):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


# ---- memory: one workload alone in a fresh process -------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(framework: str, name: str, steps: int) -> None:
    import resource

    step = labkit_step(name) if framework == "labkit" else torch_step(name)
    base = _rss_mib()
    for _ in range(steps):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base": base, "peak": peak, "now": _rss_mib()}))


def memory(framework: str, name: str, steps: int = 10) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", framework, name, str(steps)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=WORKLOADS)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        fw, name, steps = args.memory_child
        memory_child(fw, name, int(steps))
        return

    import torch

    print(f"# training_steps, {datetime.date.today()}, {machine()}")
    print(f"# torch {torch.__version__}, numpy {np.__version__}, {args.repeats} interleaved repeats, medians\n")
    print(
        "| workload | labkit ms | PyTorch ms | ratio | target | labkit peak / growth MiB | PyTorch peak / growth MiB | growth ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in [args.only] if args.only else WORKLOADS:
        fns = {"labkit": labkit_step(name), "torch": torch_step(name)}
        if name == "lstm":
            fns["torch_cell"] = torch_step("lstm_cell")
        times = interleaved(fns, args.repeats, warmup=3)
        mem = {} if args.no_memory else {fw: memory(fw, name) for fw in ("labkit", "torch")}

        def mem_cols(mem: dict[str, dict[str, float]] = mem) -> str:
            if not mem:
                return "- | - | -"
            lk, th = mem["labkit"], mem["torch"]
            g_lk, g_th = lk["peak"] - lk["base"], th["peak"] - th["base"]
            return f"{lk['peak']:.0f} / {g_lk:.0f} | {th['peak']:.0f} / {g_th:.0f} | {g_lk / max(g_th, 1e-9):.2f}"

        target = {"mlp": 1.1, "cnn": 1.6, "lstm": 1.8}[name]
        lk, th = times["labkit"] * 1e3, times["torch"] * 1e3
        label = {
            "mlp": "MLP 784-512-256-10, SGD momentum",
            "cnn": "CNN (2 conv + 2 linear), Adam",
            "lstm": "char LSTM LM vs nn.LSTM",
        }[name]
        print(f"| {label} | {lk:.2f} | {th:.2f} | {lk / th:.2f} | <= {target} | {mem_cols()} |")
        if name == "lstm":
            tc = times["torch_cell"] * 1e3
            print(f"| char LSTM LM vs LSTMCell loop | {lk:.2f} | {tc:.2f} | {lk / tc:.2f} | <= 1.0 | | | |")


if __name__ == "__main__":
    main()
