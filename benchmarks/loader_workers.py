"""Threads vs processes for DataLoader workers on Pillow decoding + numpy transforms.

Writes N small PNGs (28x28 grey and 64x64 RGB) to a temporary folder, then times one
epoch of ``DataLoader(batch_size=32)`` over them with num_workers 0/1/2 in "thread" and
"process" mode (each configuration run ``--repeats`` times interleaved, median kept),
once loading only and once with a labkit MLP training step (forward + backward) per
batch in the main thread, which is what workers must overlap with. Prints
images/second. The result chose ``DataLoader``'s default ``worker_mode``.

    python benchmarks/loader_workers.py [--images 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import labkit.functional as F
from labkit import nn
from labkit.data.dataset import Dataset
from labkit.data.loader import DataLoader


class PngFolder(Dataset):
    """Decode a PNG with Pillow, scale to [0, 1], normalise, flip every other image: (C, H, W) float32."""

    def __init__(self, paths: list[Path], labels: np.ndarray) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        with Image.open(self.paths[index]) as img:
            array = np.asarray(img, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[None]  # (1, H, W)
        else:
            array = array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        array = (array - 0.5) / 0.25
        if index % 2:
            array = array[:, :, ::-1]
        return np.ascontiguousarray(array), int(self.labels[index])


def write_pngs(folder: Path, count: int, size: int, channels: int, seed: int) -> PngFolder:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        # smooth gradients plus noise: compressible like real images, not constant
        base = np.linspace(0, 255, size * size).reshape(size, size)
        noise = rng.integers(0, 64, size=(size, size, channels))
        pixels = np.clip(base[..., None] * 0.7 + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        path = folder / f"{size}_{i:05d}.png"
        image.save(path)
        paths.append(path)
    return PngFolder(paths, rng.integers(0, 10, size=count))


def make_step(features: int) -> Callable[[Any], None]:
    """A labkit MLP forward + backward on a (B, C, H, W) batch: the training step workers overlap with."""
    model = nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, 10))

    def step(batch: Any) -> None:
        images, labels = batch
        loss = F.cross_entropy(model(images.reshape(images.shape[0], -1)), labels)
        loss.backward()

    return step


def epoch_seconds(dataset: PngFolder, workers: int, mode: str, step: Callable[[Any], None] | None) -> float:
    loader = DataLoader(dataset, batch_size=32, shuffle=True, seed=0, num_workers=workers, worker_mode=mode)
    start = time.perf_counter()
    for batch in loader:
        if step is not None:
            step(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = [(0, "thread"), (1, "thread"), (2, "thread"), (1, "process"), (2, "process")]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "28x28 grey": write_pngs(Path(tmp), args.images, 28, 1, 0),
            "64x64 RGB": write_pngs(Path(tmp), args.images, 64, 3, 1),
        }
        for name, dataset in sets.items():
            image = dataset[0][0]
            steps = {"load only": None, "load + MLP step": make_step(image.size)}
            times = {(c, s): [] for c in configs for s in steps}
            epoch_seconds(dataset, 0, "thread", None)  # warm the page cache
            for _ in range(args.repeats):
                for workers, mode in configs:
                    for step_name, step in steps.items():
                        times[((workers, mode), step_name)].append(epoch_seconds(dataset, workers, mode, step))
            print(f"\n{name}, {args.images} images, batch 32, images/s (median of {args.repeats}):")
            print(f"  {'num_workers':<12}{'mode':<9}" + "".join(f"{s:>17}" for s in steps))
            for workers, mode in configs:
                rates = [args.images / statistics.median(times[((workers, mode), s)]) for s in steps]
                shown = "-" if workers == 0 else mode
                print(f"  {workers:<12}{shown:<9}" + "".join(f"{r:>17.0f}" for r in rates))


if __name__ == "__main__":
    main()
