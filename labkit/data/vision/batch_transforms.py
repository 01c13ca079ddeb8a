"""Augmentation of whole batches: one numpy pass per batch instead of one Python call per image.

The per-image transforms (``labkit.data.vision.transforms``) cost tens of microseconds of
Python per image and per transform; for small images that is more than the decoding. These
work on a stacked ``(B, H, W, C)`` ``uint8`` batch: ``BatchCollate`` is a ``collate_fn`` that
stacks the dataset's ``(image, label)`` items and runs them, so a loader's workers (or its
main thread) do one vectorised pass per batch::

    ds = ImageFolder(root, mode="L")                 # uint8 HWC arrays, cacheable
    augment = BatchCollate([BatchRandomCrop(28, padding=2), BatchRandomHorizontalFlip(),
                            BatchToArray(), BatchNormalize([0.5], [0.25])])
    loader = DataLoader(ds, 64, shuffle=True, collate_fn=augment, seed=0)

Random transforms draw per-image parameters from an explicit ``generator`` or, with None,
from the DataLoader's per-batch generator (``current_generator()``), so a batch is the same
with any number of workers, threads or processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labkit.core.tensor import Tensor
from labkit.data.vision.transforms import GeneratorLike, _pair, _rng, to_hwc

BatchTransform = Callable[[np.ndarray], np.ndarray]


def _check_uint8_batch(images: Any, op: str) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.dtype != np.uint8:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}".strip()
        raise TypeError(f"{op}: expected a (B, H, W, C) uint8 batch (place it before BatchToArray), got {got}")
    return images


def crop_batch(images: np.ndarray, tops: np.ndarray, lefts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``images[b, tops[b]:tops[b]+h, lefts[b]:lefts[b]+w]`` for every ``b``: (B, H, W, C) -> (B, h, w, C)."""
    h, w = size
    windows = np.lib.stride_tricks.sliding_window_view(images, (h, w), axis=(1, 2))  # (B, H-h+1, W-w+1, C, h, w)
    picked = windows[np.arange(len(images)), tops, lefts]  # (B, C, h, w), a copy
    return np.ascontiguousarray(picked.transpose(0, 2, 3, 1))


def pad_batch(images: np.ndarray, padding: tuple[int, int, int, int], fill: int | Sequence[int]) -> np.ndarray:
    """Constant padding ``(left, top, right, bottom)`` of every image of a (B, H, W, C) batch."""
    left, top, right, bottom = padding
    b, h, w, c = images.shape
    values = np.atleast_1d(np.asarray(fill)).astype(np.uint8)
    if values.ndim != 1 or values.size not in (1, c):
        raise ValueError(f"pad_batch: fill expected one value or {c} (one per channel), got {fill!r}")
    out = np.empty((b, h + top + bottom, w + left + right, c), np.uint8)
    out[...] = values
    out[:, top : top + h, left : left + w] = images
    return out


class BatchRandomCrop:
    """Each image cropped to ``size`` at its own random position, after constant ``padding`` (like RandomCrop)."""

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        fill: int | Sequence[int] = 0,
        generator: GeneratorLike = None,
    ) -> None:
        self.size = _pair(size, "BatchRandomCrop")
        if padding is None:
            padding = 0
        if isinstance(padding, int):
            self.padding = (padding,) * 4
        elif isinstance(padding, Sequence) and len(padding) in (2, 4):
            self.padding = tuple(padding) * (2 if len(padding) == 2 else 1)
        else:
            raise TypeError(f"BatchRandomCrop: padding expected an int or a sequence of 2 or 4 ints, got {padding!r}")
        if min(self.padding) < 0:
            raise ValueError(f"BatchRandomCrop: padding expected non-negative values, got {padding!r}")
        self.fill = fill
        self.generator = generator

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = _check_uint8_batch(images, "BatchRandomCrop")
        if any(self.padding):
            images = pad_batch(images, self.padding, self.fill)
        th, tw = self.size
        b, h, w, _ = images.shape
        if h < th or w < tw:
            raise ValueError(f"BatchRandomCrop: expected images at least {th}x{tw} (after padding), got {h}x{w}")
        rng = _rng(self.generator)
        tops = rng.integers(0, h - th + 1, size=b)
        lefts = rng.integers(0, w - tw + 1, size=b)
        return crop_batch(images, tops, lefts, (th, tw))

    def __repr__(self) -> str:
        return f"BatchRandomCrop(size={self.size}, padding={self.padding})"


class BatchRandomHorizontalFlip:
    """Each image mirrored left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: GeneratorLike = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"BatchRandomHorizontalFlip: p expected a probability in [0, 1], got {p!r}")
        self.p = p
        self.generator = generator

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = _check_uint8_batch(images, "BatchRandomHorizontalFlip")
        flip = _rng(self.generator).random(len(images)) < self.p
        if flip.any():
            images = images.copy()
            images[flip] = images[flip, :, ::-1]
        return images

    def __repr__(self) -> str:
        return f"BatchRandomHorizontalFlip(p={self.p})"


class BatchToArray:
    """(B, H, W, C) ``uint8`` -> (B, C, H, W) ``float32`` in [0, 1] (``ToArray`` for a batch)."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = _check_uint8_batch(images, "BatchToArray")
        out = np.empty((images.shape[0], images.shape[3], images.shape[1], images.shape[2]), np.float32)
        np.multiply(images.transpose(0, 3, 1, 2), np.float32(1 / 255), out=out)
        return out

    def __repr__(self) -> str:
        return "BatchToArray()"


class BatchNormalize:
    """``(x - mean) / std`` per channel of a (B, C, H, W) float batch (after ``BatchToArray``)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"BatchNormalize: mean and std expected the same length, got {list(mean)} and {list(std)}")
        if np.any(self.std <= 0):
            raise ValueError(f"BatchNormalize: std expected positive values, got {list(std)}")
        self._scale = 1 / self.std

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.dtype.kind != "f":
            raise TypeError(
                f"BatchNormalize: expected a (B, C, H, W) float batch (after BatchToArray), got "
                f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
            )
        if images.shape[1] != self.mean.shape[1] and self.mean.shape[1] != 1:
            raise ValueError(
                f"BatchNormalize: expected {self.mean.shape[1]} channel(s) to match mean/std, got {images.shape[1]}"
            )
        images -= self.mean
        images *= self._scale
        return images

    def __repr__(self) -> str:
        return f"BatchNormalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class BatchCollate:
    """A ``collate_fn``: stack ``(image, label)`` items into a uint8 batch, run ``transforms``, return
    ``(images, labels)`` Tensors like ``default_collate``."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        for t in transforms:
            if not callable(t):
                raise TypeError(f"BatchCollate: expected callables on (B, H, W, C) batches, got {t!r}")
        self.transforms = list(transforms)

    def __call__(self, items: Sequence[Any]) -> tuple[Tensor, Tensor]:
        if not items:
            raise ValueError("BatchCollate: expected a non-empty batch of (image, label) items")
        try:
            images = [item[0] for item in items]
            labels = np.asarray([item[1] for item in items])
        except (TypeError, IndexError):
            raise TypeError(f"BatchCollate: expected (image, label) items, got {type(items[0]).__name__}") from None
        first = images[0]
        if not (isinstance(first, np.ndarray) and first.dtype == np.uint8 and first.ndim == 3):
            images = [to_hwc(im, "BatchCollate") for im in images]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"BatchCollate: expected images of one size to stack, got {sorted(shapes)}; add a Resize")
        batch = np.stack(images)
        for t in self.transforms:
            batch = t(batch)
        return Tensor._wrap(batch), Tensor._wrap(labels)

    def __repr__(self) -> str:
        return f"BatchCollate({self.transforms})"
