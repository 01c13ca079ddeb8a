"""IDX, CIFAR binary and CSV pixel readers on files written here in the exact standard layouts."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from labkit.data.vision import (
    CIFAR,
    ArrayImageDataset,
    CSVPixels,
    MNISTLike,
    read_cifar_batch,
    read_csv_pixels,
    read_idx,
)
from labkit.data.vision import transforms as T

# ---- writers for the standard layouts ---------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B}
    codes |= {np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    code = codes[array.dtype] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True, prefix: str = "", test: str = "t10k"):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, token, n in (("train", "train", n_train), ("test", test, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}{token}-{kind}-ubyte" + (".gz" if gz else "")
            data = idx_bytes(array)
            (root / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        out[split] = (images, labels)
    return out


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Records: label byte(s), then 1024 R, 1024 G, 1024 B values in row-major order."""
    labels = labels.reshape(len(images), -1).astype(np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels, planes], axis=1).tobytes()


# ---- IDX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: type, gz: bool) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - (0 if np.dtype(dtype).kind == "u" else 5)).astype(dtype)
    data = idx_bytes(array)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: b"\x01" + d[1:], r"expected magic bytes 0x00 0x00, got 0x01 0x00"),
        (lambda d: d[:2] + b"\x07" + d[3:], r"expected a type code in \{0x08, .*\}, got 0x07"),
        (lambda d: d[:3] + b"\x00" + d[4:], r"expected at least 1 dimension, got 0"),
        (lambda d: d[:-5], r"expected 376 bytes for shape \(3, 10, 12\) of uint8, got 371 \(truncated\)"),
        (lambda d: d + b"xx", r"expected 376 bytes .*got 378 \(trailing data\)"),
        (lambda d: d[:9], r"expected a 16-byte header for 3 dimensions, got 9 bytes"),
        (lambda d: d[:2], r"expected at least a 4-byte header, got 2 bytes"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(
    tmp_path: Path, mutate: Callable[[bytes], bytes], match: str
) -> None:
    data = idx_bytes(np.zeros((3, 10, 12), np.uint8))
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(mutate(data))
    with pytest.raises(ValueError, match=r"read_idx: '.*bad-images-idx3-ubyte' " + match):
        read_idx(path)


def test_read_idx_truncated_gzip_and_missing_file(tmp_path: Path) -> None:
    data = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"read_idx: '.*t.gz' is a corrupt or truncated gzip file"):
        read_idx(tmp_path / "t.gz")
    with pytest.raises(FileNotFoundError, match=r"read_idx: cannot read '.*nope'"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_like_standard_layout(tmp_path: Path, gz: bool) -> None:
    written = write_mnist(tmp_path, gz=gz)
    train, test = MNISTLike(tmp_path, "train"), MNISTLike(tmp_path, "test")
    assert len(train) == 6 and len(test) == 4 and train.classes == [str(i) for i in range(len(train.classes))]
    image, label = test[2]
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, 0], written["test"][0][2])
    assert label == written["test"][1][2] and isinstance(label, int)


def test_mnist_like_emnist_names_transpose_and_explicit_files(tmp_path: Path) -> None:
    written = write_mnist(tmp_path, prefix="emnist-letters-", test="test")
    ds = MNISTLike(tmp_path, "test", prefix="emnist-letters-", transpose=True)
    np.testing.assert_array_equal(ds[0][0][:, :, 0], written["test"][0][0].T)
    explicit = MNISTLike(
        images=tmp_path / "emnist-letters-train-images-idx3-ubyte.gz",
        labels=tmp_path / "emnist-letters-train-labels-idx1-ubyte.gz",
        transform=T.ToArray(),
    )
    assert explicit[0][0].shape == (1, 28, 28) and explicit[0][0].dtype == np.float32


def test_mnist_like_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"expected train-images-idx3-ubyte or train-images-idx3-ubyte.gz in"):
        MNISTLike(tmp_path, "train")
    with pytest.raises(ValueError, match=r"MNISTLike: split expected 'train' or 'test', got 'val'"):
        MNISTLike(tmp_path, "val")
    write_mnist(tmp_path)
    (tmp_path / "short-labels").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match=r"'.*short-labels' expected 6 labels \(one per image\), got shape \(5,\)"):
        MNISTLike(images=tmp_path / "train-images-idx3-ubyte.gz", labels=tmp_path / "short-labels")


# ---- CIFAR -------------------------------------------------------------------------------------


def test_cifar10_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    parts = []
    for i in range(1, 6):
        images, labels = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 3)
        (tmp_path / f"data_batch_{i}.bin").write_bytes(cifar_bytes(images, labels))
        parts.append((images, labels))
    test_images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(test_images, np.array([3, 9])))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (tmp_path / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    train, test = CIFAR(tmp_path, "train"), CIFAR(tmp_path, "test")
    assert len(train) == 15 and len(test) == 2 and train.classes == names
    np.testing.assert_array_equal(train[4][0], parts[1][0][1])  # batch 2, record 1
    assert train[4][1] == parts[1][1][1]
    image, label = test[1]
    assert image.shape == (32, 32, 3) and label == 9
    # the red plane comes first in each record
    assert (tmp_path / "test_batch.bin").read_bytes()[3073 + 1] == test_images[1, 0, 0, 0]


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.array([[1, 50], [19, 99], [0, 0], [5, 7]])
    (tmp_path / "train.bin").write_bytes(cifar_bytes(images, labels))
    assert CIFAR(tmp_path, "train", "cifar100").labels.tolist() == [50, 99, 0, 7]
    coarse = CIFAR(tmp_path, "train", "cifar100", label="coarse")
    assert coarse.labels.tolist() == [1, 19, 0, 5] and len(coarse.classes) == 20
    x, y = read_cifar_batch(tmp_path / "train.bin", label_bytes=2)
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 2)


def test_cifar_bad_files(tmp_path: Path) -> None:
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(np.zeros((2, 32, 32, 3), np.uint8), np.array([1, 2]))[:-7])
    with pytest.raises(
        ValueError, match=r"'.*test_batch.bin' expected a non-empty multiple of the 3073-byte record .*got 6139"
    ):
        CIFAR(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(np.zeros((1, 32, 32, 3), np.uint8), np.array([12])))
    with pytest.raises(ValueError, match=r"'.*test_batch.bin' expected labels below 10, got 12"):
        CIFAR(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=r"CIFAR: expected \['data_batch_1.bin', .*\] in"):
        CIFAR(tmp_path, "train")
    with pytest.raises(ValueError, match=r"CIFAR: variant expected 'cifar10' or 'cifar100', got 'cifar20'"):
        CIFAR(tmp_path, "train", "cifar20")


# ---- CSV ---------------------------------------------------------------------------------------


def test_csv_with_header_named_label_and_gzip(tmp_path: Path) -> None:
    rows = ["label,p0,p1,p2,p3", "1,0,255,10,20", "", "0,5,6,7,8"]
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    ds = CSVPixels(tmp_path / "x.csv.gz")
    assert len(ds) == 2 and ds.labels.tolist() == [1, 0] and ds.classes == ["0", "1"]
    np.testing.assert_array_equal(ds[0][0][:, :, 0], [[0, 255], [10, 20]])


def test_csv_label_last_without_header_scaled(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("0,16,8,4,3\n16,0,0,0,7\n")
    images, labels = read_csv_pixels(tmp_path / "d.csv", label_column=-1, max_value=16)
    assert labels.tolist() == [3, 7]
    np.testing.assert_array_equal(images[0], [[0, 255], [128, 64]])
    images, _ = read_csv_pixels(tmp_path / "d.csv", label_column=-1, max_value=16, shape=(1, 4))
    assert images.shape == (2, 1, 4)


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("y,p0\n1,2\n", {}, r"expected a column named 'label', got columns \['y', 'p0'\]"),
        ("1,2\n", {}, r"has no header line, so label_column expected an int, got 'label'"),
        ("label,a,b,c,d\n1,2,3,4,5\n1,2,3\n", {}, r"line 3: expected 5 columns, got 3"),
        ("label,a,b,c,d\n1,2,3,4,5\n1,2,x,4,5\n", {}, r"line 3, column 3: expected a number, got 'x'"),
        ("label,a,b,c,d\n1,2,3,4,5\n\n1.5,2,3,4,5\n", {}, r"line 4: expected an integer label, got 1.5"),
        (
            "label,a,b,c,d\n1,2,3,4,300\n",
            {},
            r"line 2: expected pixel values in \[0, 255\], got 300.0 \(pixel column 3\)",
        ),
        ("label,a,b,c\n1,2,3,4\n", {}, r"has 3 pixel columns, not a square; pass shape"),
        ("label,a,b,c,d\n1,2,3,4,5\n", {"shape": (3, 3)}, r"shape \(3, 3\) expected 9 pixel columns, got 4"),
        ("label,a,b,c,d\n1,2,3,4,5\n", {"label_column": 9}, r"label_column expected an index below 5 columns, got 9"),
        ("", {}, r"expected a header or data lines, got an empty file"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path: Path, text: str, kwargs: dict, match: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=r"read_csv_pixels: '.*bad.csv'.*" + match):
        read_csv_pixels(tmp_path / "bad.csv", **kwargs)


# ---- ArrayImageDataset --------------------------------------------------------------------------


def test_array_dataset_subset_and_validation() -> None:
    ds = ArrayImageDataset(np.arange(4 * 4, dtype=np.uint8).reshape(4, 2, 2), np.array([0, 1, 2, 1]))
    assert ds[1][0].shape == (2, 2, 1) and ds.classes == ["0", "1", "2"]
    sub = ds.subset([3, 0])
    assert sub.labels.tolist() == [1, 0] and sub.classes == ds.classes
    with pytest.raises(ValueError, match=r"expected \(N, H, W\[, C\]\) uint8 images, got \(4, 2, 2\) float64"):
        ArrayImageDataset(np.zeros((4, 2, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"ArrayImageDataset: expected 4 labels, got \(3,\)"):
        ArrayImageDataset(np.zeros((4, 2, 2), np.uint8), np.zeros(3))
