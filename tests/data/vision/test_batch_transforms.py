"""Batch augmentation: equal to the per-image transforms, seeded by the loader, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.data import DataLoader
from labkit.data.vision import transforms as T
from labkit.data.vision.batch_transforms import (
    BatchCollate,
    BatchNormalize,
    BatchRandomCrop,
    BatchRandomHorizontalFlip,
    BatchToArray,
    crop_batch,
    pad_batch,
)
from labkit.data.vision.transforms import _crop, _pad


def _images(b: int = 6, h: int = 9, w: int = 7, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(b, h, w, c), dtype=np.uint8)


def test_pad_and_crop_equal_the_per_image_ops():
    images = _images()
    padded = pad_batch(images, (1, 2, 3, 4), fill=(10, 20, 30))
    rng = np.random.default_rng(1)
    tops, lefts = rng.integers(0, padded.shape[1] - 5 + 1, 6), rng.integers(0, padded.shape[2] - 4 + 1, 6)
    out = crop_batch(padded, tops, lefts, (5, 4))
    assert out.shape == (6, 5, 4, 3) and out.flags.c_contiguous
    for b in range(6):
        one = _pad(images[b], 1, 2, 3, 4, (10, 20, 30))
        np.testing.assert_array_equal(padded[b], one)
        np.testing.assert_array_equal(out[b], _crop(one, int(tops[b]), int(lefts[b]), 5, 4))


def test_random_crop_covers_every_offset_and_keeps_pixels():
    images = np.arange(4 * 4, dtype=np.uint8).reshape(1, 4, 4, 1).repeat(400, axis=0)
    out = BatchRandomCrop(4, padding=1, generator=np.random.default_rng(0))(images)
    assert out.shape == (400, 4, 4, 1)
    # each crop is the 6x6 padded image at some offset in [0, 2]^2; all 9 offsets occur
    padded = pad_batch(images[:1], (1, 1, 1, 1), 0)[0]
    seen = set()
    for crop in out:
        hits = [(t, s) for t in range(3) for s in range(3) if np.array_equal(padded[t : t + 4, s : s + 4], crop)]
        assert hits, "a crop that is no window of the padded image"
        seen.update(hits)
    assert seen == {(t, s) for t in range(3) for s in range(3)}


def test_flip_mirrors_about_half_of_the_images():
    images = _images(b=2000, h=2, w=3, c=1)
    out = BatchRandomHorizontalFlip(0.5, generator=np.random.default_rng(0))(images)
    flipped = np.array([np.array_equal(o, i[:, ::-1]) and not np.array_equal(o, i) for o, i in zip(out, images)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped | same)
    assert 0.45 < flipped.mean() < 0.55
    assert np.array_equal(BatchRandomHorizontalFlip(0.0)(images), images)


def test_to_array_and_normalize_equal_the_per_image_transforms():
    images = _images(b=4, c=3)
    batch = BatchNormalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])(BatchToArray()(images))
    per_image = T.Compose([T.ToArray(), T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])])
    assert batch.dtype == np.float32 and batch.shape == (4, 3, 9, 7)
    for b in range(4):
        np.testing.assert_allclose(batch[b], per_image(images[b]), rtol=1e-6, atol=1e-6)


class _Items(labkit.data.Dataset):
    def __init__(self, n: int = 50) -> None:
        self.images = _images(b=n, h=8, w=8, c=1, seed=3)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], i % 5


def _loader(workers: int, mode: str = "thread") -> DataLoader:
    collate = BatchCollate([BatchRandomCrop(8, padding=2), BatchRandomHorizontalFlip(), BatchToArray()])
    return DataLoader(_Items(), 16, shuffle=True, collate_fn=collate, seed=7, num_workers=workers, worker_mode=mode)


def _epoch(loader: DataLoader) -> list[np.ndarray]:
    return [x.numpy().copy() for x, _ in loader]


def test_loader_batches_are_seeded_per_batch_and_independent_of_workers():
    a, b = _epoch(_loader(0)), _epoch(_loader(2))
    assert len(a) == 4 and a[0].shape == (16, 1, 8, 8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    images, labels = next(iter(_loader(0)))
    assert isinstance(images, labkit.Tensor) and labels.numpy().dtype.kind == "i"


def test_bad_inputs_name_the_transform_and_what_was_expected():
    with pytest.raises(TypeError, match=r"BatchRandomCrop: expected a \(B, H, W, C\) uint8 batch"):
        BatchRandomCrop(4)(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="at least 9x9"):
        BatchRandomCrop(9)(_images(h=4, w=4))
    with pytest.raises(ValueError, match="expected images of one size"):
        BatchCollate([])([(np.zeros((4, 4, 1), np.uint8), 0), (np.zeros((5, 4, 1), np.uint8), 1)])
    with pytest.raises(TypeError, match=r"BatchNormalize: expected a \(B, C, H, W\) float batch"):
        BatchNormalize([0.5], [0.5])(_images())
    with pytest.raises(ValueError, match="std expected positive"):
        BatchNormalize([0.5], [0.0])
    with pytest.raises(ValueError, match="p expected a probability"):
        BatchRandomHorizontalFlip(1.5)
