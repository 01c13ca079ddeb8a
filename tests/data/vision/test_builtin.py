"""The named vision datasets: digits, mnist5k, fashion_mnist, cifar10, shapes."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from labkit.data import DatasetNotFoundError, load_dataset
from labkit.data.catalog import get_spec, require
from labkit.data.vision import builtin
from labkit.data.vision import transforms as T

from .test_formats import cifar_bytes, write_mnist

VISION = ("cifar10", "digits", "fashion_mnist", "mnist5k", "shapes")


def test_every_vision_dataset_is_registered_with_a_usable_spec() -> None:
    for name in VISION:
        spec = get_spec(name)
        assert spec.domain == "vision" and spec.description and spec.how_to_get
    (download,) = get_spec("cifar10").downloads
    assert download.url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert len(download.sha256) == 64 and download.extract and download.filename == "cifar-10-binary.tar.gz"


def test_digits_read_from_the_scikit_learn_csv(tmp_path: Path) -> None:
    located = builtin.locate_digits(tmp_path)
    assert located.path is not None and located.path.name == "digits.csv.gz"
    assert located.looked[0] == str(tmp_path / "digits" / "digits.csv.gz")
    splits = load_dataset("digits", data_dir=tmp_path)
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 1797 and len(test) == round(1797 * 0.2)
    assert train.classes == [str(i) for i in range(10)]
    first_row = [int(v) for v in gzip.open(located.path, "rt").readline().split(",")]
    all_images = np.concatenate([train.images, test.images])
    raw = np.rint(np.array(first_row[:64]) * 255 / 16).astype(np.uint8).reshape(8, 8, 1)
    assert any(np.array_equal(raw, im) for im in all_images)
    image, label = train[0]
    assert image.shape == (8, 8, 1) and image.dtype == np.uint8 and 0 <= label < 10 and image.max() <= 255


def test_splits_are_deterministic_and_disjoint(tmp_path: Path) -> None:
    a = load_dataset("digits", data_dir=tmp_path, seed=1)
    b = load_dataset("digits", data_dir=tmp_path, seed=1)
    c = load_dataset("digits", data_dir=tmp_path, seed=2)
    np.testing.assert_array_equal(a["test"].images, b["test"].images)
    assert not np.array_equal(a["test"].labels, c["test"].labels)
    test_only = load_dataset("digits", data_dir=tmp_path, seed=1, split="test", transform=T.ToArray())
    np.testing.assert_array_equal(test_only.labels, a["test"].labels)
    assert test_only[0][0].dtype == np.float32
    with pytest.raises(ValueError, match=r"split: expected one of \('train', 'test'\) or None \(all\), got 'val'"):
        load_dataset("digits", data_dir=tmp_path, split="val")


def test_mnist5k_is_shuffled_before_splitting(tmp_path: Path) -> None:
    splits = load_dataset("mnist5k", data_dir=tmp_path)
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (4000, 1000)
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() > 50  # the file is sorted by label; an unshuffled split would hold only 8s and 9s
    image, _ = train[0]
    assert image.shape == (28, 28, 1) and train.images.max() == 255


def test_fashion_mnist_from_the_data_dir(tmp_path: Path) -> None:
    written = write_mnist(tmp_path / "fashion_mnist", n_train=5, n_test=3)
    located = builtin.locate_fashion_mnist(tmp_path)
    assert located.path == tmp_path / "fashion_mnist"
    splits = load_dataset("fashion_mnist", data_dir=tmp_path)
    assert len(splits["train"]) == 5 and len(splits["test"]) == 3
    assert splits["train"].classes[0] == "T-shirt/top" and splits["train"].classes[9] == "Ankle boot"
    np.testing.assert_array_equal(splits["test"][1][0][:, :, 0], written["test"][0][1])
    assert len(load_dataset("fashion_mnist", data_dir=tmp_path, split="test")) == 3


def test_fashion_mnist_looks_in_the_debian_package_last(tmp_path: Path) -> None:
    located = builtin.locate_fashion_mnist(tmp_path)
    assert located.looked == (
        str(tmp_path / "fashion_mnist"),
        str(tmp_path / "fashion-mnist"),
        str(builtin.FASHION_SYSTEM_DIR),
    )
    assert located.path == (builtin.FASHION_SYSTEM_DIR if builtin._has_idx(builtin.FASHION_SYSTEM_DIR) else None)


@pytest.mark.skipif(
    not builtin._has_idx(builtin.FASHION_SYSTEM_DIR), reason="Debian dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    test = load_dataset("fashion_mnist", data_dir=tmp_path, split="test")
    assert len(test) == 10000 and np.bincount(test.labels).tolist() == [1000] * 10
    assert test.images.shape == (10000, 28, 28, 1)


def write_cifar10(folder: Path) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(
            cifar_bytes(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 2))
        )


def test_cifar10_found_in_the_data_dir_or_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        require("cifar10", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-bin") in message and "cifar-10-binary.tar.gz" in message
    write_cifar10(tmp_path / "cifar-10-batches-bin")
    splits = load_dataset("cifar10", data_dir=tmp_path)
    assert len(splits["train"]) == 10 and len(splits["test"]) == 2
    assert splits["train"].classes == builtin.CIFAR10_CLASSES and splits["train"][0][0].shape == (32, 32, 3)


def test_shapes_are_generated_once_per_setting(tmp_path: Path) -> None:
    kwargs = {"n_per_class": 3, "n_test_per_class": 2, "size": 16, "classes": ("triangle", "circle")}
    splits = load_dataset("shapes", data_dir=tmp_path, **kwargs)
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (6, 4) and train.classes == ["triangle", "circle"]
    assert train[0][1] == 0 and train[0][0].shape == (16, 16, 3)
    first = Path(train.samples[0][0])
    stamp = first.stat().st_mtime_ns
    again = load_dataset("shapes", data_dir=tmp_path, split="train", **kwargs)
    assert first.stat().st_mtime_ns == stamp and again.samples == train.samples
    assert not np.array_equal(train[0][0], test[0][0])  # train and test use different streams
    assert not [p for p in (tmp_path / "shapes").rglob("*") if ".tmp-" in p.name]


def test_shapes_with_cache_directory(tmp_path: Path) -> None:
    ds = load_dataset("shapes", data_dir=tmp_path, split="test", n_test_per_class=2, size=12, cache=tmp_path / "cache")
    items = [ds[i][0] for i in range(len(ds))]
    assert ds.cache.complete and (tmp_path / "cache" / "test").is_dir() and len(items) == 8


def test_an_incomplete_generated_folder_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "shapes" / "12px-RGB-circle-seed0" / "train-n2"
    (folder / "circle").mkdir(parents=True)
    (folder / "circle" / "00000.png").write_bytes(b"half")  # a crash mid-generation: no .complete marker
    ds = load_dataset("shapes", data_dir=tmp_path, split="train", n_per_class=2, size=12, classes=("circle",))
    assert len(ds) == 2 and ds[0][0].shape == (12, 12, 3) and os.path.exists(folder / ".complete")
