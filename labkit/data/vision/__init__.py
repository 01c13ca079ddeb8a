"""``labkit.data.vision``: image datasets and transforms on Pillow and numpy (no torchvision).

- ``ImageFolder`` (folder.py): one class per sub-folder, any format Pillow opens;
- ``transforms``: Compose, Resize, CenterCrop, RandomCrop, RandomResizedCrop,
  RandomHorizontalFlip, ColorJitter, Grayscale, ToArray, Normalize;
- readers (formats.py): ``read_idx``/``MNISTLike``, ``read_cifar_batch``/``CIFAR``,
  ``read_csv_pixels``/``CSVPixels``, all giving ``ArrayImageDataset``s;
- ``batch_transforms``: BatchCollate with BatchRandomCrop, BatchRandomHorizontalFlip, BatchToArray,
  BatchNormalize (one numpy pass per batch; the fast path for small images);
- ``make_shapes`` (shapes.py), ``export_image_folder`` (export.py), ``ImageCache`` (cache.py).

The named datasets (digits, mnist5k, fashion_mnist, cifar10, shapes) live in builtin.py
and are loaded through ``labkit.data.load_dataset``.
"""

from labkit.data.vision import batch_transforms, transforms
from labkit.data.vision.cache import ImageCache
from labkit.data.vision.export import export_image_folder
from labkit.data.vision.folder import ImageFolder, ImageReadError, convert_mode, load_image
from labkit.data.vision.formats import (
    CIFAR,
    ArrayImageDataset,
    CSVPixels,
    MNISTLike,
    read_cifar_batch,
    read_csv_pixels,
    read_idx,
)
from labkit.data.vision.shapes import SHAPES, draw_shape, make_shapes

__all__ = [
    "batch_transforms",
    "CIFAR",
    "SHAPES",
    "ArrayImageDataset",
    "CSVPixels",
    "ImageCache",
    "ImageFolder",
    "ImageReadError",
    "MNISTLike",
    "convert_mode",
    "draw_shape",
    "export_image_folder",
    "load_image",
    "make_shapes",
    "read_cifar_batch",
    "read_csv_pixels",
    "read_idx",
    "transforms",
]
