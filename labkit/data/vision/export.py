"""``export_image_folder``: write any image dataset as an ImageFolder of PNGs.

    export_image_folder(load_dataset("fashion_mnist")["test"], "fmnist-png")
    ImageFolder("fmnist-png", classes=<the returned folder names>)   # same labels, same order

Folder names are the class names made safe for file systems (``/``, ``\\``, ``:`` and other
characters outside ``[A-Za-z0-9 ._+-]`` become ``_``). ImageFolder sorts folders by name, so
pass the returned list as its ``classes`` to keep the original label order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from labkit.data.progress import threaded_map
from labkit.data.vision.transforms import to_pil

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._+-]")


def safe_folder_name(name: str) -> str:
    """``name`` with characters that are unsafe in file names replaced by ``_`` (never empty, never a dot name)."""
    cleaned = _UNSAFE.sub("_", str(name)).strip()
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned}_"


def export_image_folder(
    dataset: Any,
    root: str | Path,
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    num_threads: int = 8,
) -> list[str]:
    """Write item ``i`` of ``dataset`` (``(image, label)``) to ``root/<class folder>/<i:06d>.png``.

    ``image``: a PIL Image or an ``(H, W)`` / ``(H, W, 1|3|4)`` ``uint8`` array; ``label``: an int
    index into ``classes`` (default ``dataset.classes``). Refuses a non-empty ``root`` unless
    ``overwrite``. Returns the folder names in label order.
    """
    if classes is None:
        classes = getattr(dataset, "classes", None)
        if classes is None:
            raise TypeError(
                "export_image_folder: expected classes=... or a dataset with a .classes attribute, got neither"
            )
    folders = [safe_folder_name(c) for c in classes]
    if len(set(folders)) != len(folders):
        raise ValueError(f"export_image_folder: class names {list(classes)} map to clashing folder names {folders}")
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(
            f"export_image_folder: '{root}' is not empty; expected an empty or new folder (or overwrite=True)"
        )
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(len(dataset) - 1)))

    def write(index: int) -> None:
        image, label = dataset[index]
        label = int(label)
        if not 0 <= label < len(folders):
            raise ValueError(f"export_image_folder: item {index} expected a label in [0, {len(folders)}), got {label}")
        pil = image if isinstance(image, Image.Image) else to_pil(image, f"export_image_folder (item {index})")
        pil.save(root / folders[label] / f"{index:0{width}d}.png")

    threaded_map(write, range(len(dataset)), num_threads, f"export {Path(root).name}")
    return folders
