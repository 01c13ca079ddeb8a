"""``ImageFolder``: one class per sub-folder of images, decoded with Pillow.

    root/cat/001.png, root/cat/x.jpg, root/dog/a.webp ...  ->  classes ["cat", "dog"]

Every image is converted explicitly to ``mode`` (see ``load_image``), so palette, grey,
RGBA and 16-bit files mix in one dataset. Items are ``(image, label)``: the transform's
output, by default an ``(H, W, C)`` ``uint8`` array.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from labkit.data import folders
from labkit.data.dataset import Dataset
from labkit.data.folders import ON_ERROR, class_files, drop_unreadable, normalize_extensions
from labkit.data.vision.cache import ImageCache
from labkit.data.vision.png import PlainPNG, inflate, inflate_stack, parse_png
from labkit.data.vision.transforms import Transform, split_deterministic, to_hwc

log = logging.getLogger(__name__)

MODES = ("RGB", "L", "RGBA")  # what items hold: (H, W, 3), (H, W, 1), (H, W, 4) uint8


class ImageReadError(ValueError):
    """An image file Pillow cannot open or decode (unreadable, truncated, not an image)."""


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) that the installed Pillow can open."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer and float greyscale -> ``L``: 16-bit ranges are scaled by 255/65535, floats clipped."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # "I" almost always holds a 16-bit source (PNG/TIFF); Pillow's own convert clips instead of scaling
        values = np.asarray(image).astype(np.int64)
        return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8))
    if image.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8))
    return image


def convert_mode(
    image: Image.Image, mode: str, background: tuple[int, int, int] | None = (255, 255, 255)
) -> Image.Image:
    """``image`` in ``mode``, converted explicitly.

    - 16-bit (``I;16*``, ``I``) and float (``F``) greyscale become 8-bit first: 16-bit values are
      scaled by 255/65535 (``>> 8``), floats are rounded and clipped to [0, 255].
    - Transparency (``RGBA``, ``LA``, ``PA``, palette or RGB with a transparent colour) is
      composited on ``background`` (white by default) when ``mode`` has no alpha; with
      ``background=None`` the alpha channel is dropped instead. ``mode="RGBA"`` keeps it.
    - Palette images are expanded through their palette; CMYK/YCbCr/HSV/LAB go through RGB.
    """
    image = _to_8bit(image)
    if image.mode == mode:
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha and mode not in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        if background is None:
            image = rgba.convert("RGB")
        else:
            canvas = Image.new("RGBA", rgba.size, (*background, 255))
            image = Image.alpha_composite(canvas, rgba).convert("RGB")
        return image if image.mode == mode else image.convert(mode)
    if image.mode not in ("L", "RGB", "RGBA", "1", "P") and mode != "RGB":
        image = image.convert("RGB")
    return image.convert(mode)


_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def _read_error(path: str | Path, error: BaseException) -> ImageReadError:
    return ImageReadError(
        f"cannot read image file '{path}': expected an image Pillow can decode, got {type(error).__name__}: {error}"
    )


def read_bytes(path: str | Path) -> bytes:
    """The bytes of ``path``; ``ImageReadError`` names the file when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise _read_error(path, error) from error


def decode_bytes(
    data: bytes, path: str | Path, mode: str = "RGB", background: tuple[int, int, int] | None = (255, 255, 255)
) -> Image.Image:
    """The image file bytes ``data`` (read from ``path``, named in errors) decoded and converted to ``mode``.

    Plain 8-bit PNGs (``parse_png``) go straight to Pillow's decoder without ``Image.open``'s
    Python overhead; every other file goes through ``Image.open``.
    """
    try:
        png = parse_png(data)
    except ValueError as error:
        raise _read_error(path, error) from error
    return _decode_parsed(data, png, path, mode, background)


def _decode_parsed(
    data: bytes, png: PlainPNG | None, path: str | Path, mode: str, background: tuple[int, int, int] | None
) -> Image.Image:
    """``decode_bytes`` once ``parse_png(data)`` gave ``png``: inflate it, or ``Image.open`` when it is None."""
    try:
        if png is not None:
            return convert_mode(inflate(png), mode, background)
        try:
            opened = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:  # its own message would name an anonymous BytesIO object
            raise UnidentifiedImageError(f"no image format Pillow knows matches its {len(data)} bytes") from None
        with opened as image:
            image.load()  # decode now: a truncated file fails here, not later
            return convert_mode(image, mode, background)
    except _READ_ERRORS as error:
        raise _read_error(path, error) from error


def load_image(
    path: str | Path, mode: str = "RGB", background: tuple[int, int, int] | None = (255, 255, 255)
) -> Image.Image:
    """Decode ``path`` fully and convert it to ``mode`` (``convert_mode``); ``ImageReadError`` names the file."""
    return decode_bytes(read_bytes(path), path, mode, background)


def find_classes(root: Path, classes: Sequence[str] | None = None) -> list[str]:
    """Sub-folder names of ``root`` (sorted), or ``classes`` in the given order after checking they exist."""
    return folders.find_classes(root, classes, name="ImageFolder")


class ImageFolder(Dataset):
    """A map-style dataset of ``(image, label)`` from ``root/<class>/<file>``.

    ``classes`` (sorted folder names unless given), ``class_to_idx``, ``samples`` (``(path, label)``
    pairs, sorted by class then file name) and ``targets`` describe it. Files whose extension is
    not in ``extensions`` (default: every extension Pillow opens) and hidden files are ignored.

    ``mode``: the Pillow mode every image is converted to (``convert_mode``: RGBA and palette
    transparency are composited on white, or ``background=None`` drops the alpha; 16-bit is scaled).
    ``transform``: a labkit transform (``Compose`` of ``vision.transforms``) runs its deterministic
    leading part (Resize, CenterCrop, Grayscale) on the PIL Image and the rest on the ``(H, W, C)``
    ``uint8`` array, converting once; any other callable gets the PIL Image (or, with a cache,
    the cached array). A PIL Image a transform returns becomes an ``(H, W, C)`` ``uint8`` array;
    anything else (e.g. ToArray's CHW float32) is kept.
    ``on_error="raise"`` raises ``ImageReadError`` naming the file when an item is read;
    ``on_error="skip"`` decodes every file once up front, drops the unreadable ones, lists them in
    ``skipped`` (``(path, reason)``) and logs a warning summary. ``cache`` (an ``ImageCache`` or a
    directory) keeps the decoded output of the transform's deterministic leading part (Resize,
    CenterCrop, Grayscale) in a memory-mapped file, so later epochs skip decoding.
    ``num_threads``: threads for the up-front decoding pass of ``on_error="skip"``.

    Decoding: plain 8-bit PNGs go straight to Pillow's decoder (``png.py``), every other file
    through ``Image.open``; ``DataLoader`` fetches a batch with ``__getitems__``, which decodes
    the batch's same-size PNGs into one array (the same items as one by one, about 3x faster
    than ``Image.open`` per file for 28x28 images: benchmarks/RESULTS.md).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        extensions: Sequence[str] | None = None,
        mode: str = "RGB",
        on_error: str = "raise",
        cache: ImageCache | str | Path | None = None,
        classes: Sequence[str] | None = None,
        background: tuple[int, int, int] | None = (255, 255, 255),
        num_threads: int = 8,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"ImageFolder: on_error expected one of {ON_ERROR}, got {on_error!r}")
        if mode not in MODES:
            raise ValueError(f"ImageFolder: mode expected one of {MODES}, got {mode!r}")
        self.root = Path(root)
        self.transform, self.target_transform = transform, target_transform
        self.mode, self.background, self.on_error = mode, background, on_error
        self.num_threads = num_threads
        self.extensions = image_extensions() if extensions is None else normalize_extensions(extensions)
        self.classes = find_classes(self.root, classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = class_files(self.root, self.classes, self.extensions, name="ImageFolder")
        self.skipped: list[tuple[str, str]] = []
        if on_error == "skip":
            self._drop_unreadable()
        self.targets = [label for _, label in self.samples]
        self._prefix, self._rest = split_deterministic(transform)
        self.cache: ImageCache | None = None
        if cache is not None:
            self.cache = cache if isinstance(cache, ImageCache) else ImageCache(cache)
            self.cache.attach(self)

    def _drop_unreadable(self) -> None:
        self.samples, self.skipped = drop_unreadable(
            self.samples,
            lambda path: load_image(path, self.mode, self.background),
            self.root,
            name="ImageFolder",
            errors=(ImageReadError,),
            num_threads=self.num_threads,
            logger=log,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        """The decoded image ``index`` in ``mode``, before any transform."""
        return load_image(self.samples[index][0], self.mode, self.background)

    def decode_prefix(self, index: int) -> np.ndarray:
        """Image ``index`` through the transform's deterministic prefix, as an ``(H, W, C)`` ``uint8`` array."""
        return to_hwc(self._prefix(self.load(index)), "ImageFolder")

    def _position(self, index: int) -> int:
        """``index`` as a position in ``samples`` (negative counts from the end); ``IndexError`` outside."""
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"ImageFolder: index {index} out of range for {n} images")
        return index % n

    def _item(self, image: Any, label: int) -> tuple[Any, Any]:
        """``(image, label)`` as items hand them out: arrays, never PIL Images; the target transformed."""
        if isinstance(image, Image.Image):
            image = to_hwc(image, "ImageFolder")
        return image, (self.target_transform(label) if self.target_transform is not None else label)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        index = self._position(index)
        label = self.samples[index][1]
        if self.cache is not None:
            image = self._rest(self.cache.get(index))
        elif self.transform is None or isinstance(self.transform, Transform):
            image = self._rest(self.decode_prefix(index))  # one PIL -> array conversion, then array ops
        else:
            image = self.transform(self.load(index))
        return self._item(image, label)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, Any]]:
        """``[self[i] for i in indices]``, with the batch's plain PNGs decoded together.

        ``DataLoader`` calls this once per batch (PyTorch's protocol). Without a cache and
        without a deterministic transform prefix, the plain PNGs (``png.parse_png``) that are
        already in ``mode`` and share the first one's size are decoded into one array
        (``png.inflate_stack``); the other files are decoded one by one. The items and the
        transforms' random draws are the same as item by item.
        """
        plain = self.transform is None or isinstance(self.transform, Transform)
        if self.cache is not None or self._prefix.transforms or not plain:
            return [self[i] for i in indices]
        samples = [self.samples[self._position(i)] for i in indices]
        datas = [read_bytes(path) for path, _ in samples]
        pngs: list[PlainPNG | None] = []
        for (path, _), data in zip(samples, datas):
            try:
                pngs.append(parse_png(data))
            except ValueError as error:
                raise _read_error(path, error) from error
        first = next((p for p in pngs if p is not None and p.mode == self.mode), None)
        members = [j for j, p in enumerate(pngs) if first is not None and p is not None and p[:2] == first[:2]]
        arrays: dict[int, np.ndarray] = {}
        if len(members) > 1:
            try:
                arrays = dict(zip(members, inflate_stack([pngs[j] for j in members])))
            except ValueError:
                pass  # a broken file among them: decoded one by one below, so that the error names it
        items = []
        for j, ((path, label), data) in enumerate(zip(samples, datas)):
            array = arrays.get(j)
            if array is None:
                decoded = _decode_parsed(data, pngs[j], path, self.mode, self.background)
                array = to_hwc(decoded, "ImageFolder")
            items.append(self._item(self._rest(array), label))
        return items

    def check_sizes(self) -> tuple[int, int]:
        """``(height, width)`` shared by every file (headers only, no decoding), or a ValueError listing the sizes."""
        sizes: dict[tuple[int, int], list[str]] = {}
        for path, _ in self.samples:
            try:
                with Image.open(path) as image:
                    sizes.setdefault((image.height, image.width), []).append(path)
            except (UnidentifiedImageError, OSError) as error:
                raise ImageReadError(f"cannot read image file '{path}': {type(error).__name__}: {error}") from error
        if len(sizes) > 1:
            listing = "; ".join(f"{h}x{w}: {len(p)} file(s), e.g. '{p[0]}'" for (h, w), p in sorted(sizes.items()))
            raise ValueError(
                f"ImageFolder '{self.root}': expected one image size to stack batches, got {len(sizes)}: {listing}; "
                "add a Resize (and CenterCrop) transform"
            )
        return next(iter(sizes))

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root='{self.root}', {len(self)} images, {len(self.classes)} classes, mode={self.mode!r}, "
            f"transform={self.transform!r}, skipped={len(self.skipped)}, cache={self.cache is not None})"
        )
