"""``ImageFolder.__getitems__``: a batch decoded together gives exactly the items one by one gives."""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labkit.data.dataset import Dataset, Subset
from labkit.data.loader import DataLoader
from labkit.data.vision import ImageFolder, ImageReadError, folder
from labkit.data.vision import transforms as T
from labkit.data.vision.png import inflate_stack
from tests.data.vision.test_png import assemble, chunks


def noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Plain grey 12x10 PNGs with every other kind of file among them."""
    root = tmp_path / "data"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for k in range(6):
            noise("L", (12, 10), seed=k + 10 * (label == "b")).save(root / label / f"{k}.png")
    noise("RGB", (12, 10), 1).save(root / "a" / "rgb.png")  # plain, another mode: converted on its own
    noise("LA", (12, 10), 2).save(root / "a" / "la.png")
    noise("L", (12, 10), 3).convert("P").save(root / "b" / "palette.png")  # Image.open's path
    noise("L", (12, 10), 4).save(root / "b" / "photo.jpg")
    noise("L", (9, 7), 5).save(root / "b" / "small.png")  # plain, another size
    return root


class OneByOne(Dataset):
    """The same dataset without ``__getitems__``: the loader fetches item by item."""

    def __init__(self, dataset: ImageFolder) -> None:
        self.dataset = dataset

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)


def assert_same_items(got: list[tuple[Any, Any]], expected: list[tuple[Any, Any]]) -> None:
    assert len(got) == len(expected)
    for (x, y), (x_ref, y_ref) in zip(got, expected):
        assert y == y_ref
        np.testing.assert_array_equal(x, x_ref)
        assert x.dtype == x_ref.dtype


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_getitems_equals_getitem_for_every_kind_of_file(
    mixed: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stacked: list[int] = []

    def spy(pngs: Any) -> np.ndarray:
        stacked.append(len(pngs))
        return inflate_stack(pngs)

    monkeypatch.setattr(folder, "inflate_stack", spy)
    ds = ImageFolder(mixed, mode=mode)
    order = [3, -1, 0, 7, 12, 5, 6, 8, 13, 2, 14, 9]
    assert_same_items(ds.__getitems__(order), [ds[i] for i in order])
    paths = [ds.samples[i][0] for i in order]
    plain = [p for p in paths if p.endswith(".png") and "small" not in p and Image.open(p).mode == mode]
    assert stacked == ([len(plain)] if len(plain) > 1 else [])  # grey: the 12x10 L files; RGB: only rgb.png
    assert_same_items(ds.__getitems__([4]), [ds[4]])
    with pytest.raises(IndexError, match="out of range"):
        ds.__getitems__([0, len(ds)])


def test_target_transform_and_subset_forwarding(mixed: Path) -> None:
    ds = ImageFolder(mixed, mode="L", target_transform=lambda label: label + 100)
    subset = Subset(ds, [5, 1, 0, 9])
    assert_same_items(subset.__getitems__([0, 3, 1]), [ds[5], ds[9], ds[1]])
    assert all(label >= 100 for _, label in subset.__getitems__([0, 1]))


@pytest.mark.parametrize(("workers", "worker_mode"), [(0, "thread"), (2, "thread"), (2, "process")])
def test_augmented_loader_batches_equal_the_item_by_item_loader(mixed: Path, workers: int, worker_mode: str) -> None:
    aug = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ToArray(), T.Normalize([0.5], [0.25])])
    ds = ImageFolder(mixed, transform=aug, mode="L", classes=["a", "b"])

    def batches(dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=3, num_workers=workers, worker_mode=worker_mode)
        return [(x.numpy(), y.numpy()) for x, y in loader]

    together, one_by_one = batches(ds), batches(OneByOne(ds))
    assert len(together) == len(one_by_one) == 5  # 17 images
    for (x, y), (x_ref, y_ref) in zip(together, one_by_one):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)


def test_cache_and_deterministic_prefix_take_the_item_path(mixed: Path, tmp_path: Path) -> None:
    resized = ImageFolder(mixed, transform=T.Compose([T.Resize((6, 6)), T.ToArray()]), mode="L")
    assert_same_items(resized.__getitems__([0, 1, 13]), [resized[i] for i in (0, 1, 13)])
    cached = ImageFolder(mixed, mode="L", cache=tmp_path / "cache", transform=T.Resize((6, 6)))
    assert_same_items(cached.__getitems__([2, 0]), [cached[2], cached[0]])


def test_a_broken_png_in_a_batch_is_named(mixed: Path) -> None:
    good = (mixed / "a" / "0.png").read_bytes()
    at = good.index(b"IDAT") + 12
    (mixed / "a" / "1.png").write_bytes(good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :])  # CRC mismatch
    ds = ImageFolder(mixed, mode="L")
    with pytest.raises(ImageReadError, match=r"'.*1\.png'.*CRC mismatch"):
        ds.__getitems__([0, 1, 2])
    with pytest.raises(ImageReadError, match=r"'.*1\.png'") as info:
        next(iter(DataLoader(ds, batch_size=4)))
    assert any("failed loading dataset indices [0, 1, 2, 3]" in note for note in info.value.__notes__)


def test_an_undecodable_png_with_good_checksums_is_named(mixed: Path) -> None:
    parts = chunks((mixed / "a" / "3.png").read_bytes())
    short = [(kind, zlib.compress(b"\x00" * 11) if kind == b"IDAT" else body) for kind, body in parts]
    (mixed / "a" / "3.png").write_bytes(assemble(short))  # inflates to 1 row of 10: not enough image data
    ds = ImageFolder(mixed, mode="L")
    with pytest.raises(ImageReadError, match=r"'.*3\.png'.*not enough image data"):
        ds.__getitems__([0, 1, 2, 3, 4])


def test_getitems_returning_the_wrong_count_is_a_clear_error() -> None:
    class Short(Dataset):
        def __getitem__(self, index: int) -> Any:
            return np.zeros(2)

        def __getitems__(self, indices: list[int]) -> list[Any]:
            return [np.zeros(2)] * (len(indices) - 1)

        def __len__(self) -> int:
            return 4

    with pytest.raises(ValueError, match=r"Short.__getitems__ returned 1 items for 2 indices"):
        next(iter(DataLoader(Short(), batch_size=2)))


def test_not_an_image_in_a_batch_is_named(mixed: Path) -> None:
    (mixed / "b" / "0.png").write_bytes(io.BytesIO(b"plain text, not a PNG").getvalue())
    ds = ImageFolder(mixed, mode="L")
    index = next(i for i, (path, _) in enumerate(ds.samples) if path.endswith("b/0.png"))
    with pytest.raises(ImageReadError, match=r"'.*b/0\.png'"):
        ds.__getitems__([0, index])
