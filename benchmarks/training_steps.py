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
2 threads. Memory: each (framework, workload) runs alone in a fresh process (labkit's
without torch imported); we report its peak resident set (VmHWM) and, in brackets, the
resident set after set-up, before the first step; "growth ratio" compares peak minus
set-up (the steps' own memory). Targets (labkit / PyTorch): MLP <= 1.1, CNN <= 1.6, LSTM <= 1.8 (nn.LSTM) and
<= 1.0 (LSTMCell loop); peak memory <= 1.5x.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from collections.abc import Callable

from _harness import THREADS, interleaved, limit_threads, machine, peak_rss_mib, rss_mib

limit_threads()

import numpy as np  # noqa: E402

WORKLOADS = ("mlp", "cnn", "lstm")


# ---- labkit ---------------------------------------------------------------------------


def labkit_step(name: str, device: str = "cpu") -> Callable[[], None]:
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
        opt = optim.SGD(model.to(device).parameters(), lr=0.01, momentum=0.9)
        x = labkit.tensor(rng.standard_normal((128, 784)).astype(np.float32), device=device)
        y = labkit.tensor(rng.integers(0, 10, 128), device=device)

        def loss_fn() -> labkit.Tensor:
            return F.cross_entropy(model(x), y)

    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, generator=g), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128, generator=g), nn.ReLU(), nn.Linear(128, 10, generator=g),
        )  # fmt: skip
        opt = optim.Adam(model.to(device).parameters(), lr=1e-3)
        x = labkit.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32), device=device)
        y = labkit.tensor(rng.integers(0, 10, 64), device=device)

        def loss_fn() -> labkit.Tensor:
            return F.cross_entropy(model(x), y)

    else:
        emb, lstm, head = (
            nn.Embedding(65, 64, generator=g),
            nn.LSTM(64, 256, batch_first=True, generator=g),
            nn.Linear(256, 65, generator=g),
        )
        model = nn.ModuleList([emb, lstm, head])
        opt = optim.Adam(model.to(device).parameters(), lr=1e-3)
        ids = rng.integers(0, 65, (32, 65))
        x, y = labkit.tensor(ids[:, :-1], device=device), labkit.tensor(ids[:, 1:], device=device)

        def loss_fn() -> labkit.Tensor:
            out, _ = lstm(emb(x))  # (B, T, H)
            logits = head(out)  # (B, T, V)
            return F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))

    params = list(model.parameters())
    sync = _cupy_sync() if device != "cpu" else None

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if name == "lstm":
            optim.clip_grad_norm_(params, 1.0)
        opt.step()
        if sync is not None:
            sync()

    return step


def _cupy_sync() -> Callable[[], None]:
    import cupy

    return cupy.cuda.get_current_stream().synchronize


# ---- PyTorch ----------------------------------------------------------------------------


def torch_step(name: str, device: str = "cpu") -> Callable[[], None]:
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tf = torch.nn.functional
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.to(device).parameters(), lr=0.01, momentum=0.9)
        x = torch.tensor(rng.standard_normal((128, 784)).astype(np.float32), device=device)
        y = torch.tensor(rng.integers(0, 10, 128), device=device)

        def loss_fn() -> torch.Tensor:
            return tf.cross_entropy(model(x), y)

    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(model.to(device).parameters(), lr=1e-3)
        x = torch.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32), device=device)
        y = torch.tensor(rng.integers(0, 10, 64), device=device)

        def loss_fn() -> torch.Tensor:
            return tf.cross_entropy(model(x), y)

    else:
        cell = name == "lstm_cell"
        emb, head = nn.Embedding(65, 64), nn.Linear(256, 65)
        rnn = nn.LSTMCell(64, 256) if cell else nn.LSTM(64, 256, batch_first=True)
        model = nn.ModuleList([emb, rnn, head])
        opt = torch.optim.Adam(model.to(device).parameters(), lr=1e-3)
        ids = rng.integers(0, 65, (32, 65))
        x, y = torch.tensor(ids[:, :-1], device=device), torch.tensor(ids[:, 1:], device=device)

        def loss_fn() -> torch.Tensor:
            e = emb(x)
            if cell:
                h = c = torch.zeros(32, 256, device=device)
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
        if device != "cpu":
            torch.cuda.synchronize()

    return step


# ---- memory: one workload alone in a fresh process -------------------------------------


def memory_child(framework: str, name: str, steps: int) -> None:
    """Run one workload alone: peak resident set of the whole process, and after set-up."""
    step = labkit_step(name) if framework == "labkit" else torch_step(name)
    base = rss_mib()
    for _ in range(steps):
        step()
    print(json.dumps({"base": base, "peak": peak_rss_mib()}))


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
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (labkit on cupy; torch on CUDA if it has it)")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        fw, name, steps = args.memory_child
        memory_child(fw, name, int(steps))
        return

    import torch

    print(f"# training_steps on {args.device}, {datetime.date.today()}, {machine()}")
    print(f"# torch {torch.__version__}, numpy {np.__version__}, {args.repeats} interleaved repeats, medians\n")
    print(
        "| workload | labkit ms | PyTorch ms | ratio | target | labkit peak MiB (after set-up) "
        "| PyTorch peak MiB (after set-up) | peak ratio | growth ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in [args.only] if args.only else WORKLOADS:
        dev = args.device
        tdev = dev if dev == "cpu" or torch.cuda.is_available() else "cpu"
        fns = {"labkit": labkit_step(name, dev), "torch": torch_step(name, tdev)}
        if name == "lstm":
            fns["torch_cell"] = torch_step("lstm_cell", tdev)
        times = interleaved(fns, args.repeats, warmup=3)
        mem = {} if args.no_memory or dev != "cpu" else {fw: memory(fw, name) for fw in ("labkit", "torch")}

        def mem_cols(mem: dict[str, dict[str, float]] = mem) -> str:
            if not mem:
                return "- | - | - | -"
            lk, th = mem["labkit"], mem["torch"]
            growth = (lk["peak"] - lk["base"]) / max(th["peak"] - th["base"], 1e-9)
            return (
                f"{lk['peak']:.0f} ({lk['base']:.0f}) | {th['peak']:.0f} ({th['base']:.0f}) "
                f"| {lk['peak'] / th['peak']:.2f} | {growth:.2f}"
            )

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
            print(f"| char LSTM LM vs LSTMCell loop | {lk:.2f} | {tc:.2f} | {lk / tc:.2f} | <= 1.0 | | | | |")


if __name__ == "__main__":
    main()
