"""Readers for the classic image-array formats, and ``ArrayImageDataset`` over their arrays.

- IDX (MNIST, Fashion-MNIST, KMNIST, EMNIST): ``read_idx``, ``MNISTLike``;
- CIFAR-10/100 binary batches: ``read_cifar_batch``, ``CIFAR``;
- CSV files of a label column and pixel columns: ``read_csv_pixels``, ``CSVPixels``.

Images come out as ``(N, H, W, C)`` ``uint8`` arrays, labels as ``int64``. Every error
names the file and says what was expected and what was found.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data.dataset import Dataset

# IDX type codes -> big-endian numpy dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ArrayImageDataset(Dataset):
    """A map-style dataset over in-memory ``(N, H, W, C)`` ``uint8`` images and integer labels.

    Items are ``(transform(image) or image, target_transform(label) or label)``; the transform
    receives the ``(H, W, C)`` ``uint8`` array (every transform in ``vision.transforms`` accepts it).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise ValueError(
                f"ArrayImageDataset: expected (N, H, W[, C]) uint8 images, got {images.shape} {images.dtype}"
            )
        images = images[..., None] if images.ndim == 3 else images
        labels = np.asarray(labels)
        if labels.shape[:1] != images.shape[:1]:
            raise ValueError(f"ArrayImageDataset: expected {images.shape[0]} labels, got {labels.shape}")
        self.images, self.labels = images, labels.astype(np.int64)
        n_classes = int(self.labels.max()) + 1 if self.labels.size else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.transform, self.target_transform = transform, target_transform

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self.images[index], int(self.labels[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, (self.target_transform(label) if self.target_transform is not None else label)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayImageDataset:
        """A new dataset of the rows ``indices`` (a copy), with the same classes and transforms."""
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayImageDataset(
            self.images[idx], self.labels[idx], self.classes, self.transform, self.target_transform
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images of {self.images.shape[1:]}, {len(self.classes)} classes)"


def _read_bytes(path: Path, op: str) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise FileNotFoundError(f"{op}: cannot read '{path}': {error.strerror or error}") from error
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise ValueError(f"{op}: '{path}' is a corrupt or truncated gzip file: {error}") from error
    return raw


# ---- IDX -------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (raw or gzipped) as a native-endian array of its stored shape.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per
    dimension, then the values in big-endian row-major order. The size must match exactly.
    """
    path = Path(path)
    raw = _read_bytes(path, "read_idx")
    if len(raw) < 4:
        raise ValueError(f"read_idx: '{path}' expected at least a 4-byte header, got {len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"read_idx: '{path}' expected magic bytes 0x00 0x00, got 0x{raw[0]:02x} 0x{raw[1]:02x}")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(f"read_idx: '{path}' expected a type code in {{{valid}}}, got 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"read_idx: '{path}' expected at least 1 dimension, got 0")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"read_idx: '{path}' expected a {header}-byte header for {ndim} dimensions, got {len(raw)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"read_idx: '{path}' expected {expected} bytes for shape {shape} of {dtype.name}, got {len(raw)} "
            f"({'truncated' if len(raw) < expected else 'trailing data'})"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, token: str, kind: str, prefix: str) -> Path:
    names = [f"{prefix}{token}-{kind}-ubyte", f"{prefix}{token}-{kind}-ubyte.gz"]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"MNISTLike: expected {names[0]} or {names[1]} in '{root}', found neither")


class MNISTLike(ArrayImageDataset):
    """MNIST-format IDX image + label files (MNIST, Fashion-MNIST, KMNIST, EMNIST) as ``(28, 28, 1)`` items.

    Either ``root`` holding ``{prefix}{train,t10k}-images-idx3-ubyte[.gz]`` and the matching
    ``-labels-idx1-ubyte`` files (``prefix`` e.g. ``"emnist-balanced-"``, whose splits are named
    ``train``/``test``: the token ``"test"`` is tried after ``"t10k"``), or explicit ``images`` and
    ``labels`` paths. ``transpose=True`` swaps each image's axes (EMNIST stores them transposed).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        images: str | Path | None = None,
        labels: str | Path | None = None,
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        prefix: str = "",
        transpose: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"MNISTLike: split expected 'train' or 'test', got {split!r}")
        if images is None or labels is None:
            if root is None:
                raise TypeError("MNISTLike: expected root or both images and labels paths, got neither")
            root = Path(root)
            tokens = ["train"] if split == "train" else ["t10k", "test"]
            for i, token in enumerate(tokens):
                try:
                    images = _find_idx(root, token, "images-idx3", prefix) if images is None else images
                    labels = _find_idx(root, token, "labels-idx1", prefix) if labels is None else labels
                    break
                except FileNotFoundError:
                    if i == len(tokens) - 1:
                        raise
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise ValueError(f"MNISTLike: '{images}' expected (N, H, W) uint8 images, got {x.shape} {x.dtype}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"MNISTLike: '{labels}' expected {x.shape[0]} labels (one per image), got shape {y.shape}")
        if transpose:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        self.split = split
        super().__init__(x, y, classes, transform, target_transform)


# ---- CIFAR binary ------------------------------------------------------------------------

CIFAR_PIXELS = 3 * 32 * 32
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_cifar_batch(path: str | Path, label_bytes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR binary batch: records of ``label_bytes`` label bytes then 3072 pixel bytes (1024 R, G, B, row-major).

    Returns ``(images (N, 32, 32, 3) uint8, labels (N,) or (N, label_bytes) int64)``; CIFAR-100's
    two bytes are (coarse, fine).
    """
    path = Path(path)
    raw = _read_bytes(path, "read_cifar_batch")
    record = label_bytes + CIFAR_PIXELS
    if not raw or len(raw) % record:
        raise ValueError(
            f"read_cifar_batch: '{path}' expected a non-empty multiple of the {record}-byte record "
            f"({label_bytes} label byte(s) + {CIFAR_PIXELS} pixels), got {len(raw)} bytes"
        )
    rows = np.frombuffer(raw, np.uint8).reshape(-1, record)
    images = np.ascontiguousarray(rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    labels = rows[:, :label_bytes].astype(np.int64)
    return images, labels[:, 0] if label_bytes == 1 else labels


def _names(path: Path) -> list[str] | None:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else None


class CIFAR(ArrayImageDataset):
    """CIFAR-10 (``cifar-10-batches-bin``) or CIFAR-100 (``cifar-100-binary``) binary batches as ``(32, 32, 3)`` items.

    CIFAR-10: ``data_batch_1.bin`` ... ``data_batch_5.bin`` (train), ``test_batch.bin``, class names
    from ``batches.meta.txt`` (the standard ten when it is absent). CIFAR-100: ``train.bin``, ``test.bin``, ``label="fine"`` (100 classes,
    ``fine_label_names.txt``) or ``"coarse"`` (20, ``coarse_label_names.txt``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        variant: str = "cifar10",
        label: str = "fine",
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"CIFAR: split expected 'train' or 'test', got {split!r}")
        if variant not in ("cifar10", "cifar100"):
            raise ValueError(f"CIFAR: variant expected 'cifar10' or 'cifar100', got {variant!r}")
        if label not in ("fine", "coarse"):
            raise ValueError(f"CIFAR: label expected 'fine' or 'coarse', got {label!r}")
        root = Path(root)
        if variant == "cifar10":
            names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
            label_bytes, column, n_classes = 1, None, 10
            classes = _names(root / "batches.meta.txt") or CIFAR10_CLASSES
        else:
            names, label_bytes = [f"{split}.bin"], 2
            column, n_classes = (0, 20) if label == "coarse" else (1, 100)
            classes = _names(root / f"{label}_label_names.txt")
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise FileNotFoundError(f"CIFAR: expected {missing} in '{root}', not found")
        parts = [read_cifar_batch(root / n, label_bytes) for n in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] if column is None else p[1][:, column] for p in parts])
        for name, (_, y) in zip(names, parts):
            y = y if column is None else y[:, column]
            if y.size and y.max() >= n_classes:
                raise ValueError(f"CIFAR: '{root / name}' expected labels below {n_classes}, got {int(y.max())}")
        if classes is not None and len(classes) != n_classes:
            raise ValueError(f"CIFAR: class-name file in '{root}' expected {n_classes} names, got {len(classes)}")
        self.split = split
        super().__init__(images, labels, classes or [str(i) for i in range(n_classes)], transform, target_transform)


# ---- CSV pixels --------------------------------------------------------------------------


def read_csv_pixels(
    path: str | Path,
    label_column: str | int = "label",
    header: bool | None = None,
    shape: Sequence[int] | None = None,
    max_value: float = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """A CSV (optionally gzipped) of one label column and pixel columns -> ``(images uint8, labels int64)``.

    ``label_column``: a header name, or an index (negative counts from the end). ``header``:
    whether the first line names the columns (``None``: yes if it is not all numbers). Pixel
    values in ``[0, max_value]`` are scaled to ``[0, 255]`` (rounded). ``shape``: ``(H, W)`` or
    ``(H, W, C)``; default a square ``(H, H)``.
    """
    path = Path(path)
    lines = _read_bytes(path, "read_csv_pixels").decode("utf-8").splitlines()
    if not lines:
        raise ValueError(f"read_csv_pixels: '{path}' expected a header or data lines, got an empty file")
    first = [c.strip() for c in lines[0].split(",")]
    if header is None:
        header = not all(_is_number(c) for c in first)
    start = 1 if header else 0
    n_columns = len(first)
    if isinstance(label_column, str):
        if not header:
            raise ValueError(
                f"read_csv_pixels: '{path}' has no header line, so label_column expected an int, got {label_column!r}"
            )
        if label_column not in first:
            raise ValueError(
                f"read_csv_pixels: '{path}' expected a column named {label_column!r}, got columns {first[:8]}{' ...' if n_columns > 8 else ''}"
            )
        label_index = first.index(label_column)
    elif -n_columns <= label_column < n_columns:
        label_index = label_column % n_columns
    else:
        raise ValueError(
            f"read_csv_pixels: '{path}' label_column expected an index below {n_columns} columns, got {label_column}"
        )
    body = [line for line in lines[start:] if line.strip()]
    try:
        values = np.loadtxt(io.StringIO("\n".join(body)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        values = None
    if values is None or values.shape[1] != n_columns:
        _raise_bad_line(path, lines, start, n_columns)
    labels = values[:, label_index]
    pixels = np.delete(values, label_index, axis=1)
    if not np.all(labels == np.round(labels)):
        row = int(np.flatnonzero(labels != np.round(labels))[0])
        raise ValueError(
            f"read_csv_pixels: '{path}' line {_line_of(lines, start, row)}: expected an integer label, got {labels[row]}"
        )
    bad = (pixels < 0) | (pixels > max_value)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"read_csv_pixels: '{path}' line {_line_of(lines, start, row)}: expected pixel values in [0, {max_value}], "
            f"got {pixels[row, col]} (pixel column {col})"
        )
    n_pixels = pixels.shape[1]
    if shape is None:
        side = math.isqrt(n_pixels)
        if side * side != n_pixels:
            raise ValueError(
                f"read_csv_pixels: '{path}' has {n_pixels} pixel columns, not a square; pass shape=(H, W[, C])"
            )
        shape = (side, side)
    if math.prod(shape) != n_pixels:
        raise ValueError(
            f"read_csv_pixels: '{path}' shape {tuple(shape)} expected {math.prod(shape)} pixel columns, got {n_pixels}"
        )
    images = np.rint(pixels * (255.0 / max_value)).astype(np.uint8).reshape(-1, *shape)
    return images, labels.astype(np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _line_of(lines: list[str], start: int, row: int) -> int:
    """The 1-based line number of data row ``row`` (blank lines skipped)."""
    seen = -1
    for number, line in enumerate(lines[start:], start=start + 1):
        seen += bool(line.strip())
        if seen == row:
            return number
    return len(lines)


def _raise_bad_line(path: Path, lines: list[str], start: int, n_columns: int) -> None:
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != n_columns:
            raise ValueError(f"read_csv_pixels: '{path}' line {number}: expected {n_columns} columns, got {len(cells)}")
        for col, cell in enumerate(cells):
            if not _is_number(cell.strip()):
                raise ValueError(
                    f"read_csv_pixels: '{path}' line {number}, column {col + 1}: expected a number, got {cell.strip()!r}"
                )
    raise ValueError(f"read_csv_pixels: '{path}' could not be parsed as numbers")


class CSVPixels(ArrayImageDataset):
    """A CSV pixel file (``read_csv_pixels``) as a dataset of ``(H, W, C)`` ``uint8`` items."""

    def __init__(
        self,
        path: str | Path,
        label_column: str | int = "label",
        header: bool | None = None,
        shape: Sequence[int] | None = None,
        max_value: float = 255,
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        images, labels = read_csv_pixels(path, label_column, header, shape, max_value)
        if labels.size and labels.min() < 0:
            raise ValueError(f"CSVPixels: '{path}' expected labels >= 0, got {int(labels.min())}")
        super().__init__(images, labels, classes, transform, target_transform)
