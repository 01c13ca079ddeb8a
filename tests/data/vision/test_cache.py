"""ImageCache: first epoch decodes into a memmap, later epochs read it; stale or partial caches are never used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import labkit
from labkit.data.loader import DataLoader
from labkit.data.vision import ImageCache, ImageFolder, make_shapes
from labkit.data.vision import folder as folder_module
from labkit.data.vision import transforms as T


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return make_shapes(tmp_path / "shapes", n_per_class=6, size=20, classes=("circle", "square"), seed=3)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts every full decode that ImageFolder does."""
    calls: list[str] = []
    original = folder_module.load_image

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(folder_module, "load_image", counting)
    return calls


def prefix() -> T.Compose:
    return T.Compose([T.Resize(16), T.CenterCrop(12)])


def test_first_epoch_fills_later_epochs_read_the_memmap(images: Path, tmp_path: Path, decodes: list[str]) -> None:
    ds = ImageFolder(images, transform=prefix(), cache=tmp_path / "cache")
    assert not ds.cache.complete
    first = [ds[i][0] for i in range(len(ds))]
    assert ds.cache.complete and len(decodes) == len(ds)  # item 0 decoded once, at attach
    assert ds.cache.array_path.is_file() and ds.cache.index_path.is_file()
    assert not list((tmp_path / "cache").glob("*.tmp-*")) and not list((tmp_path / "cache").glob("*.filled-*"))
    decodes.clear()
    again = ImageFolder(images, transform=prefix(), cache=tmp_path / "cache")
    assert again.cache.complete
    second = [again[i][0] for i in range(len(again))]
    assert decodes == [] and again.cache.hits == len(again)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    index = json.loads(again.cache.index_path.read_text())
    assert index["count"] == 12 and index["shape"] == [12, 12, 3] and len(index["files"]) == 12


def test_cached_items_equal_uncached_items_with_random_augmentation(images: Path, tmp_path: Path) -> None:
    def aug(seed: int) -> T.Compose:
        g = labkit.Generator(seed)
        return T.Compose(
            [*prefix().transforms, T.RandomCrop(10, generator=g), T.RandomHorizontalFlip(generator=g), T.ToArray()]
        )

    plain = ImageFolder(images, transform=aug(5))
    cached = ImageFolder(images, transform=aug(5), cache=tmp_path / "c")
    for _ in range(2):  # the second pass reads from the complete cache
        for i in range(len(plain)):
            x, y = plain[i]
            cx, cy = cached[i]
            assert y == cy and cx.dtype == np.float32
            np.testing.assert_array_equal(x, cx)


def test_a_changed_file_or_setting_makes_a_new_cache(images: Path, tmp_path: Path) -> None:
    a = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    a.cache.fill(num_threads=2)
    key = a.cache.key
    assert (
        ImageFolder(images, transform=T.Compose([T.Resize(14), T.CenterCrop(12)]), cache=tmp_path / "c").cache.key
        != key
    )
    assert ImageFolder(images, transform=prefix(), mode="L", cache=tmp_path / "c").cache.key != key
    path = next((images / "circle").iterdir())
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    b = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    assert b.cache.key != key and not b.cache.complete


def test_half_written_cache_is_never_used(images: Path, tmp_path: Path, decodes: list[str]) -> None:
    a = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    for i in range(5):  # an epoch interrupted after 5 of 12 images
        a[i]
    assert not a.cache.complete and not a.cache.array_path.exists() and not a.cache.index_path.exists()
    decodes.clear()
    b = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    assert not b.cache.complete and len(decodes) == 1  # started afresh, not from a's temp file
    np.testing.assert_array_equal(b[3][0], a[3][0])


def test_orphaned_temp_files_of_dead_processes_are_removed(images: Path, tmp_path: Path) -> None:
    a = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    orphan = a.cache.path / f"images-{a.cache.key}.tmp-999999999-0a1b2c3d.npy"
    orphan.write_bytes(b"partial")
    b = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    assert not orphan.exists()
    assert a.cache._tmp.exists() and b.cache._tmp != a.cache._tmp  # a live fill is left alone


@pytest.mark.parametrize("damage", ["truncate", "index_count", "index_key", "bad_json"])
def test_damaged_complete_cache_is_rebuilt(
    images: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    a.cache.fill()
    expected = [a[i][0] for i in range(len(a))]
    array_path, index_path = a.cache.array_path, a.cache.index_path
    index = json.loads(index_path.read_text())
    if damage == "truncate":
        data = array_path.read_bytes()
        array_path.write_bytes(data[: len(data) - 100])
    elif damage == "index_count":
        index_path.write_text(json.dumps(index | {"count": 11}))
    elif damage == "index_key":
        index_path.write_text(json.dumps(index | {"key": "0" * 24}))
    else:
        index_path.write_text("{not json")
    b = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    assert not b.cache.complete and "ignoring invalid cache" in caplog.text
    got = [b[i][0] for i in range(len(b))]
    assert b.cache.complete
    for x, y in zip(expected, got):
        np.testing.assert_array_equal(x, y)
    assert ImageFolder(images, transform=prefix(), cache=tmp_path / "c").cache.complete


def test_inconsistent_sizes_after_the_prefix_are_a_clear_error(tmp_path: Path) -> None:
    root = make_shapes(tmp_path / "a", 2, size=16, classes=("circle",), seed=0)
    make_shapes(tmp_path / "b", 2, size=20, classes=("circle",), seed=0)
    (tmp_path / "b" / "circle" / "00001.png").rename(root / "circle" / "00002.png")
    ds = ImageFolder(root, cache=ImageCache(tmp_path / "c"))
    with pytest.raises(
        ValueError, match=r"ImageCache: '.*00002.png' after .* has shape \(20, 20, 3\) uint8; expected \(16, 16, 3\)"
    ):
        ds.cache.fill(num_threads=1)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_cache_through_loader_workers(images: Path, tmp_path: Path, mode: str) -> None:
    ds = ImageFolder(images, transform=T.Compose([*prefix().transforms, T.ToArray()]), cache=tmp_path / "c")
    loader = DataLoader(ds, batch_size=4, num_workers=2, worker_mode=mode, seed=0)
    first = [x.numpy() for x, _ in loader]
    reopened = ImageFolder(images, transform=T.Compose([*prefix().transforms, T.ToArray()]), cache=tmp_path / "c")
    assert reopened.cache.complete  # the workers completed and published the cache
    second = [x.numpy() for x, _ in DataLoader(reopened, batch_size=4, seed=0)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_pickled_copy_reopens_the_files(images: Path, tmp_path: Path) -> None:
    """What a spawned loader worker gets: the memmaps are reopened by name, the fill is shared."""
    import pickle

    ds = ImageFolder(images, transform=prefix(), cache=tmp_path / "c")
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.cache._data is None
    items = [copy[i][0] for i in range(len(copy))]  # the copy fills every row of the shared temp file
    assert copy.cache.complete and copy.cache.array_path.is_file()
    assert all(ds.cache._filled) and ds.cache.fills == 1  # the original's mapping sees the copy's rows
    for i, item in enumerate(items):
        np.testing.assert_array_equal(ds[i][0], item)
    done = pickle.loads(pickle.dumps(copy))
    np.testing.assert_array_equal(done[7][0], copy[7][0])
    assert done.cache.complete


def test_one_dataset_per_cache_instance(images: Path, tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "c")
    ImageFolder(images, transform=prefix(), cache=cache)
    with pytest.raises(ValueError, match=r"expected one dataset per ImageCache, got a second one"):
        ImageFolder(images, cache=cache)
