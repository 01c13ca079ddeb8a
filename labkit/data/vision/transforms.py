"""Image transforms on Pillow images or HWC ``uint8`` numpy arrays.

Every transform takes what it is given and returns the same kind: a PIL Image in,
a PIL Image out; an ``(H, W, C)`` (or ``(H, W)``) ``uint8`` array in, an ``(H, W, C)``
array out. ``ToArray`` ends the image stage (CHW ``float32`` in [0, 1]) and
``Normalize`` works on its output. Random transforms take an explicit ``generator``
(``labkit.Generator`` or ``numpy.random.Generator``). With ``None`` they draw, at call
time, from the DataLoader's per-batch generator (``current_generator()``, so augmentations
do not depend on the number of workers) or, outside a loader, ``labkit.default_generator``.
The same seeded stream gives the same output.

Transforms marked ``deterministic = True`` (Resize, CenterCrop, Grayscale) may be run
once and cached (``ImageCache``); ``Compose.split_deterministic()`` separates that
leading part from the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from labkit.core.random import Generator, resolve
from labkit.data.loader_workers import current_generator

GeneratorLike = Generator | np.random.Generator | None

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


# ---- conversions ----------------------------------------------------------------------


def _rng(generator: GeneratorLike) -> np.random.Generator:
    """The numpy stream to draw from: ``generator``, else the loader's batch generator, else the default."""
    return resolve(generator if generator is not None else current_generator())


def randint(rng: np.random.Generator, n: int) -> int:
    """A uniform integer in ``[0, n)`` from one ``rng.random()`` draw (a tenth of ``rng.integers``' overhead)."""
    return min(int(rng.random() * n), n - 1)


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A uniform float in ``[low, high)`` from one ``rng.random()`` draw."""
    return low + (high - low) * rng.random()


def to_pil(image: Any, op: str = "transform") -> Image.Image:
    """A PIL Image from a PIL Image or an ``(H, W)`` / ``(H, W, 1|3|4)`` ``uint8`` array."""
    if isinstance(image, Image.Image):
        return image
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{op}: expected a PIL Image or a uint8 HWC numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{op}: expected a uint8 image array, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
        return Image.fromarray(image)  # uint8 (H, W) -> L, (H, W, 3) -> RGB, (H, W, 4) -> RGBA
    raise ValueError(f"{op}: expected an image array of shape (H, W) or (H, W, 1|3|4), got {image.shape}")


def to_hwc(image: Any, op: str = "transform") -> np.ndarray:
    """An ``(H, W, C)`` ``uint8`` array from a PIL Image or an HW/HWC array."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB", "RGBA"):
            grey = image.mode in ("1", "I", "F") or image.mode.startswith("I;16")
            image = image.convert("L" if grey else "RGB")
        array = np.asarray(image)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"{op}: expected a uint8 image array, got dtype {image.dtype}")
        array = image
    else:
        raise TypeError(f"{op}: expected a PIL Image or a uint8 HWC numpy array, got {type(image).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"{op}: expected an image array of shape (H, W) or (H, W, C), got {array.shape}")
    return array


def _checked(image: Any, op: str) -> Any:
    """A PIL Image as it is, an array as a validated HWC ``uint8`` array (errors name ``op``)."""
    return image if isinstance(image, Image.Image) else to_hwc(image, op)


def _like(result: Image.Image | np.ndarray, original: Any) -> Any:
    """``result`` as the kind of ``original`` (PIL in -> PIL out, array in -> HWC array out)."""
    if isinstance(original, Image.Image):
        return result if isinstance(result, Image.Image) else to_pil(np.ascontiguousarray(result))
    return to_hwc(result) if isinstance(result, Image.Image) else np.ascontiguousarray(result)


def _size_hw(image: Any) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[0]), int(image.shape[1])


def _pair(size: int | Sequence[int], op: str, name: str = "size") -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int means a square."""
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int | np.integer) for s in size):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{op}: {name} expected an int or a (height, width) pair of ints, got {size!r}")
    if min(pair) <= 0:
        raise ValueError(f"{op}: {name} expected positive sizes, got {size!r}")
    return pair


def _interpolation(name: str, op: str) -> Image.Resampling:
    if name not in INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation expected one of {sorted(INTERPOLATIONS)}, got {name!r}")
    return INTERPOLATIONS[name]


def _crop(image: Any, top: int, left: int, height: int, width: int) -> Any:
    """The window ``[top, top + height) x [left, left + width)``, which must lie inside the image."""
    if isinstance(image, Image.Image):
        return image.crop((left, top, left + width, top + height))
    return np.ascontiguousarray(to_hwc(image)[top : top + height, left : left + width])


def _pad(image: Any, left: int, top: int, right: int, bottom: int, fill: int | Sequence[int]) -> Any:
    """Constant padding by the given number of pixels on each side (``fill``: one value or one per channel)."""
    array = to_hwc(image, "pad")
    h, w, c = array.shape
    values = np.atleast_1d(np.asarray(fill)).astype(np.uint8)
    if values.ndim != 1 or values.size not in (1, c):
        raise ValueError(f"pad: fill expected one value or {c} (one per channel), got {fill!r}")
    out = np.empty((h + top + bottom, w + left + right, c), np.uint8)
    out[...] = values
    out[top : top + h, left : left + w] = array
    return _like(out, image)


class Transform:
    """Base class: ``deterministic`` transforms give the same output for the same input every call."""

    deterministic = False

    def __call__(self, image: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "generator")
        return f"{type(self).__name__}({args})"


# ---- composition ----------------------------------------------------------------------


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: expected callables, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        for t in self.transforms:
            image = t(image)
        return image

    def split_deterministic(self) -> tuple[Compose, Compose]:
        """``(prefix, rest)``: the leading deterministic image-to-image transforms, and the others."""
        n = 0
        while n < len(self.transforms) and getattr(self.transforms[n], "deterministic", False):
            n += 1
        return Compose(self.transforms[:n]), Compose(self.transforms[n:])

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def split_deterministic(transform: Callable[[Any], Any] | None) -> tuple[Compose, Compose]:
    """``(prefix, rest)`` of any transform: a Compose is split, a lone deterministic transform is all prefix."""
    if transform is None:
        return Compose([]), Compose([])
    if isinstance(transform, Compose):
        return transform.split_deterministic()
    if getattr(transform, "deterministic", False):
        return Compose([transform]), Compose([])
    return Compose([]), Compose([transform])


# ---- geometric ------------------------------------------------------------------------


class Resize(Transform):
    """Resize to ``size``: an int matches the shorter edge (keeping the aspect ratio), a pair is ``(h, w)``.

    The shorter edge rule follows torchvision: the longer edge becomes ``int(size * long / short)``.
    """

    deterministic = True

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear") -> None:
        self.size = size if isinstance(size, int) else _pair(size, "Resize")
        _pair(size, "Resize")
        self.interpolation = interpolation
        self._resample = _interpolation(interpolation, "Resize")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if isinstance(self.size, tuple):
            return self.size
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(self.size * long / short)
        return (self.size, new_long) if height <= width else (new_long, self.size)

    def __call__(self, image: Any) -> Any:
        pil = to_pil(image, "Resize")
        h, w = self.output_size(pil.height, pil.width)
        if (h, w) == (pil.height, pil.width):
            return image
        return _like(pil.resize((w, h), self._resample), image)


class CenterCrop(Transform):
    """Crop the centre ``size`` window (``top = round((H - h) / 2)``); pads with 0 if the image is smaller."""

    deterministic = True

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, image: Any) -> Any:
        image = _checked(image, "CenterCrop")
        th, tw = self.size
        h, w = _size_hw(image)
        if th > h or tw > w:
            ph, pw = max(th - h, 0), max(tw - w, 0)
            image = _pad(image, pw // 2, ph // 2, (pw + 1) // 2, (ph + 1) // 2, 0)
            h, w = _size_hw(image)
        top, left = round((h - th) / 2.0), round((w - tw) / 2.0)
        return _crop(image, top, left, th, tw)


class RandomCrop(Transform):
    """Crop a ``size`` window at a uniformly random position.

    ``padding``: an int (all sides), ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``
    pixels of constant ``fill`` added first; ``pad_if_needed`` pads an image smaller than ``size``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: int | Sequence[int] = 0,
        generator: GeneratorLike = None,
    ) -> None:
        self.size = _pair(size, "RandomCrop")
        if padding is None:
            self.padding = (0, 0, 0, 0)
        elif isinstance(padding, int):
            self.padding = (padding,) * 4
        elif isinstance(padding, Sequence) and len(padding) in (2, 4):
            self.padding = tuple(padding) * (2 if len(padding) == 2 else 1)
        else:
            raise TypeError(f"RandomCrop: padding expected an int or a sequence of 2 or 4 ints, got {padding!r}")
        if min(self.padding) < 0:
            raise ValueError(f"RandomCrop: padding expected non-negative values, got {padding!r}")
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.generator = generator

    def __call__(self, image: Any) -> Any:
        image = _checked(image, "RandomCrop")
        if any(self.padding):
            image = _pad(image, *self.padding, self.fill)
        th, tw = self.size
        h, w = _size_hw(image)
        if self.pad_if_needed and (h < th or w < tw):
            ph, pw = max(th - h, 0), max(tw - w, 0)
            image = _pad(image, pw, ph, pw, ph, self.fill)
            h, w = _size_hw(image)
        if h < th or w < tw:
            raise ValueError(
                f"RandomCrop: expected an image at least {th}x{tw} (after padding), got {h}x{w}; "
                "pass pad_if_needed=True or a larger padding"
            )
        rng = _rng(self.generator)
        top, left = randint(rng, h - th + 1), randint(rng, w - tw + 1)
        return _crop(image, top, left, th, tw)


class RandomResizedCrop(Transform):
    """Crop a random area fraction ``scale`` with aspect ratio in ``ratio`` (log-uniform), resize to ``size``.

    Follows torchvision: up to 10 draws of (area, log-ratio); if none fits, a centre crop
    with the ratio clamped to ``ratio``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        generator: GeneratorLike = None,
    ) -> None:
        self.size = _pair(size, "RandomResizedCrop")
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomResizedCrop: scale expected 0 < min <= max <= 1, got {scale!r}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop: ratio expected 0 < min <= max, got {ratio!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = interpolation
        self._resample = _interpolation(interpolation, "RandomResizedCrop")
        self.generator = generator

    def window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the crop for an image of ``height x width``."""
        rng = _rng(self.generator)
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * uniform(rng, self.scale[0], self.scale[1])
            aspect = math.exp(uniform(rng, log_lo, log_hi))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return randint(rng, height - h + 1), randint(rng, width - w + 1), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: Any) -> Any:
        pil = to_pil(image, "RandomResizedCrop")
        top, left, h, w = self.window(pil.height, pil.width)
        out = pil.crop((left, top, left + w, top + h)).resize((self.size[1], self.size[0]), self._resample)
        return _like(out, image)


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: GeneratorLike = None) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p expected a probability in [0, 1], got {p!r}")
        self.p = p
        self.generator = generator

    def __call__(self, image: Any) -> Any:
        if _rng(self.generator).random() >= self.p:
            return image
        if isinstance(image, Image.Image):
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.ascontiguousarray(to_hwc(image, "RandomHorizontalFlip")[:, ::-1])


# colour transforms and the array stage live in transforms_color (kept apart for size)
from labkit.data.vision.transforms_color import ColorJitter, Grayscale, Normalize, ToArray  # noqa: E402

__all__ = [
    "ColorJitter", "Compose", "CenterCrop", "Grayscale", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "RandomResizedCrop", "Resize", "ToArray", "Transform", "split_deterministic", "to_hwc", "to_pil",
]  # fmt: skip
