"""Image input pipeline throughput: ImageFolder + transforms + DataLoader, with and without ImageCache.

Writes ``--images`` (10,000) generated shapes as 28x28 grey PNGs (``make_shapes``) to a
temporary folder once, then measures images/second over one epoch of:

- the floor: a plain single-threaded Pillow loop (open, convert("L"), np.asarray);
- ``ImageFolder`` items without transforms: decoding one by one (``dataset[i]``), decoding a
  batch at a time (``__getitems__``: one array per batch), and reading the decoded-image cache;
- the training pipeline (RandomCrop(28, padding=2), RandomHorizontalFlip, ToArray,
  Normalize) through ``DataLoader(batch_size=64)``, per image (``transforms``) or per batch
  (``batch_transforms.BatchCollate``: one numpy pass per batch), with 0 and ``--workers``
  workers (threads, processes, and with ``--nice`` processes with ``worker_nice=19``), with
  and without the cache (and the first, cache-filling epoch); and per batch "item by item":
  the same dataset behind a wrapper without ``__getitems__`` (the loader's old path);
- the loader feeding the benchmark CNN (``labkit_step("cnn")`` of training_steps.py, one
  step per batch of 64 1x28x28 images), against the step alone.

Targets: a cached epoch of ImageFolder items at least 5x faster than decoding them; with
prefetching workers, loader + CNN step at most 1.15x the CNN step alone (the loader keeps up).

    python benchmarks/data_loader.py [--images 10000] [--workers 2] [--repeats 3] [--root DIR] [--nice]
        [--only 'per batch, 2 threads;per batch, 2 threads, item by item']
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import interleaved, limit_threads, machine

limit_threads()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from labkit.data.dataset import Dataset  # noqa: E402
from labkit.data.loader import DataLoader  # noqa: E402
from labkit.data.vision import ImageFolder, make_shapes  # noqa: E402
from labkit.data.vision import transforms as T  # noqa: E402
from labkit.data.vision.batch_transforms import (  # noqa: E402
    BatchCollate,
    BatchNormalize,
    BatchRandomCrop,
    BatchRandomHorizontalFlip,
    BatchToArray,
)

CLASSES = ("circle", "square", "triangle", "star", "pentagon", "hexagon", "cross", "diamond")
BATCH = 64
SIZE = 28


def write_images(root: Path, n_images: int) -> Path:
    """``n_images`` 28x28 grey PNGs in an ImageFolder layout (reused if ``root`` already holds them)."""
    per_class = -(-n_images // len(CLASSES))
    marker = root / f".complete-{per_class}"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        make_shapes(root, per_class, size=SIZE, classes=CLASSES, seed=0, mode="L")
        marker.write_text("ok\n")
    return root


def augment() -> T.Compose:
    return T.Compose([T.RandomCrop(SIZE, padding=2), T.RandomHorizontalFlip(), T.ToArray(), T.Normalize([0.5], [0.25])])


def batch_augment() -> BatchCollate:
    return BatchCollate(
        [BatchRandomCrop(SIZE, padding=2), BatchRandomHorizontalFlip(), BatchToArray(), BatchNormalize([0.5], [0.25])]
    )


def pillow_floor(paths: list[str]) -> None:
    for path in paths:
        with Image.open(path) as image:
            np.asarray(image.convert("L"))


def read_items(dataset: ImageFolder) -> None:
    for i in range(len(dataset)):
        dataset[i]


def read_batches(dataset: ImageFolder) -> None:
    for start in range(0, len(dataset), BATCH):
        dataset.__getitems__(list(range(start, min(start + BATCH, len(dataset)))))


class ItemByItem(Dataset):
    """``dataset`` without ``__getitems__``: the loader fetches and decodes one image at a time."""

    def __init__(self, dataset: ImageFolder) -> None:
        self.dataset = dataset

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)


def run_loader(loader: DataLoader, step: Callable[[], None] | None = None) -> int:
    batches = 0
    for images, _labels in loader:
        images.data.sum()  # touch the batch
        if step is not None:
            step()
        batches += 1
    return batches


def paired(
    reference: Callable[[], object], runs: dict[str, Callable[[], object]], repeats: int
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Time ``reference`` between every two runs (R, A, R, B, R, ...) ``repeats`` times.

    Returns the median seconds of the reference, of each run, and each run's median ratio to the
    mean of the two reference timings around it (slow drifts of a shared machine cancel out).
    """
    for fn in (reference, *runs.values()):  # warm-up
        fn()
    ref_times: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in runs}
    ratios: dict[str, list[float]] = {k: [] for k in runs}

    def timed(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    for _ in range(repeats):
        before = timed(reference)
        ref_times.append(before)
        for name, fn in runs.items():
            seconds = timed(fn)
            after = timed(reference)
            ref_times.append(after)
            times[name].append(seconds)
            ratios[name].append(seconds / ((before + after) / 2))
            before = after
    median = statistics.median
    return median(ref_times), {k: median(v) for k, v in times.items()}, {k: median(v) for k, v in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cnn-batches", type=int, default=40, help="batches timed with the CNN step")
    parser.add_argument("--root", type=Path, default=None, help="keep the PNGs here between runs")
    parser.add_argument("--nice", action="store_true", help="also time process workers with worker_nice=19")
    parser.add_argument(
        "--only",
        default="",
        help="';'-separated pipeline names to time, e.g. 'per batch, 2 threads;per image, 2 threads'",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="labkit-bench-data-"))
    root = args.root or tmp / "png"
    cache_dir = tmp / "cache"
    try:
        t0 = time.perf_counter()
        write_images(root, args.images)
        written = time.perf_counter() - t0
        plain = ImageFolder(root, mode="L")
        n = len(plain)
        paths = [p for p, _ in plain.samples]
        cached = ImageFolder(root, mode="L", cache=cache_dir / "items")
        augmented = ImageFolder(root, transform=augment(), mode="L")
        augmented_cached = ImageFolder(root, transform=augment(), mode="L", cache=cache_dir / "aug")
        w = args.workers
        # (name, dataset, collate_fn, workers, mode, nice)
        pipelines: list[tuple[str, Any, Callable | None, int, str, int]] = []
        placements = [(0, "thread", 0), (w, "thread", 0), (w, "process", 0)] + (
            [(w, "process", 19)] if args.nice else []
        )
        for cache_suffix, per_image_ds, batch_ds in (("", augmented, plain), (", cached", augmented_cached, cached)):
            for aug, ds, collate in (("per image", per_image_ds, None), ("per batch", batch_ds, batch_augment())):
                for workers, mode, nice in placements:
                    where = "main thread" if workers == 0 else f"{workers} {mode}{'es' if mode == 'process' else 's'}"
                    where += ", nice 19" if nice else ""
                    pipelines.append((f"{aug}, {where}{cache_suffix}", ds, collate, workers, mode, nice))
        # the same without ImageFolder.__getitems__ (each image decoded and converted on its own)
        for workers, mode in ((0, "thread"), (w, "thread")):
            where = "main thread" if workers == 0 else f"{workers} threads"
            pipelines.append(
                (f"per batch, {where}, item by item", ItemByItem(plain), batch_augment(), workers, mode, 0)
            )

        def fresh_fill() -> None:
            shutil.rmtree(cache_dir / "fresh", ignore_errors=True)
            read_items(ImageFolder(root, mode="L", cache=cache_dir / "fresh"))

        def loader(ds: Any, collate: Callable | None, workers: int, mode: str, nice: int) -> DataLoader:
            return DataLoader(
                ds, BATCH, shuffle=True, num_workers=workers, worker_mode=mode, seed=0, prefetch=2,
                collate_fn=collate, worker_nice=nice,
            )  # fmt: skip

        epochs: dict[str, Callable[[], object]] = {
            "Pillow loop, 1 thread (floor)": lambda: pillow_floor(paths),
            "ImageFolder items, decoding": lambda: read_items(plain),
            "ImageFolder batches of 64 (__getitems__), decoding": lambda: read_batches(plain),
            "ImageFolder items, first epoch filling the cache": fresh_fill,
            "ImageFolder items, cached (memmap)": lambda: read_items(cached),
        }
        if args.only:
            wanted = [w.strip() for w in args.only.split(";") if w.strip()]
            pipelines = [p for p in pipelines if any(p[0] == w for w in wanted)]
            if not pipelines:
                raise SystemExit(f"--only: no pipeline named {wanted}")
        fed_pipelines = pipelines
        for name, ds, collate, workers, mode, nice in pipelines:
            epochs[f"DataLoader, augmentation {name}"] = lambda a=(ds, collate, workers, mode, nice): run_loader(
                loader(*a)
            )
        seconds = interleaved(epochs, args.repeats, warmup=1)  # warm-up fills the caches

        floor = seconds["Pillow loop, 1 thread (floor)"]
        print(f"# Image input pipeline ({datetime.date.today()}; {machine()})\n")
        print(f"{n} grey {SIZE}x{SIZE} PNGs from make_shapes (written in {written:.1f} s), batch {BATCH}, ", end="")
        print(f"median of {args.repeats} epochs, configurations interleaved.\n")
        print("| pipeline | images/s | ms per batch of 64 | vs Pillow floor |")
        print("|---|---:|---:|---:|")
        for name, value in seconds.items():
            print(f"| {name} | {n / value:,.0f} | {1000 * value / n * BATCH:.2f} | {floor / value:.2f}x |")

        from training_steps import labkit_step

        step = labkit_step("cnn")
        cnn_batches = min(args.cnn_batches, n // BATCH)

        def fed(ds: Any, collate: Callable | None, workers: int, mode: str, nice: int) -> Callable[[], None]:
            def epoch() -> None:
                for k, (images, _labels) in enumerate(loader(ds, collate, workers, mode, nice)):
                    images.data.sum()
                    step()
                    if k + 1 == cnn_batches:
                        break

            return epoch

        runs = {name: fed(ds, collate, workers, mode, nice) for name, ds, collate, workers, mode, nice in fed_pipelines}
        alone, per_step, ratios = paired(lambda: [step() for _ in range(cnn_batches)], runs, args.repeats)
        step_alone = alone / cnn_batches

        print(f"\nCNN step alone (labkit_step('cnn'), batch {BATCH}): {1000 * step_alone:.1f} ms (median); ", end="")
        print(f"{cnn_batches} batches per run; every run timed between two runs of the step alone, ", end="")
        print(f"its ratio taken against their mean; median of {args.repeats}.\n")
        print(
            "| loader (augmentation, workers) feeding the CNN step | ms per step | vs step alone | keeps up (<= 1.15x) |"
        )
        print("|---|---:|---:|---|")
        for name, value in per_step.items():
            ratio = ratios[name]
            print(f"| {name} | {1000 * value / cnn_batches:.1f} | {ratio:.2f}x | {'yes' if ratio <= 1.15 else 'no'} |")

        speedup = seconds["ImageFolder items, decoding"] / seconds["ImageFolder items, cached (memmap)"]
        prefetched = {
            k: v for k, v in ratios.items() if "main thread" not in k and "cached" not in k and "item by item" not in k
        }
        print("\n| target | measured | met |")
        print("|---|---|---|")
        print(f"| cached epoch >= 5x faster than decoding | {speedup:.1f}x | {'yes' if speedup >= 5 else 'NO'} |")
        if prefetched:
            best = min(prefetched, key=prefetched.__getitem__)
            ok = "yes" if prefetched[best] <= 1.15 else "NO"
            print(
                f"| prefetching loader (uncached) keeps up with the CNN step | {prefetched[best]:.2f}x ({best}) | {ok} |"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
