"""The catalog of named datasets: what each is, where it is looked for, how to get it.

Built-in datasets (and plugins) register a ``DatasetSpec`` under the plugin registry's
``dataset`` kind. ``labkit data list`` shows every spec with ``spec.locate(data_dir)``;
``load_dataset(name, ...)`` finds the files or raises ``DatasetNotFoundError`` saying
where it looked and how to get them, before any model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.plugins.registry import registry


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not present; the message says where we looked and how to get them."""


@dataclass(frozen=True)
class Download:
    """A public file to fetch into the data directory (``labkit data get NAME``)."""

    url: str
    filename: str
    sha256: str
    size: int | None = None  # bytes, for the progress bar when the server does not say
    extract: bool = False  # unpack a .tar.gz/.zip after the checksum matched


@dataclass(frozen=True)
class Located:
    """Where a dataset was found (``path``) or not (``None``), and every place looked at."""

    path: Path | None
    looked: tuple[str, ...]

    @property
    def found(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    ``locate(data_dir)`` returns ``Located``; ``load(path, **kwargs)`` builds the dataset
    (or a dict of splits) from the located path. ``how_to_get`` is one line a user can act on.
    """

    name: str
    domain: str  # "vision" | "text" | "sequence" | anything a plugin adds
    description: str
    locate: Callable[[Path], Located]
    load: Callable[..., Any]
    how_to_get: str
    downloads: tuple[Download, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # sizes, classes, licence ...


def default_data_dir() -> Path:
    """``~/.labkit/data``: where downloads go unless a ``data_dir`` is given."""
    return Path.home() / ".labkit" / "data"


def register_dataset(spec: DatasetSpec, owner: str = "labkit") -> DatasetSpec:
    registry.register("dataset", spec.name, spec, owner=owner)
    return spec


def dataset_names() -> list[str]:
    """Every registered dataset: labkit's own and the installed plugins' (``plugin.name``)."""
    _load_builtins()
    registry.load_plugins()
    return registry.names("dataset")


def get_spec(name: str) -> DatasetSpec:
    _load_builtins()
    try:
        return registry.get("dataset", name)
    except KeyError:
        raise ValueError(f"dataset {name!r} is unknown; known datasets: {', '.join(dataset_names())}") from None


def locate(name: str, data_dir: str | Path | None = None) -> Located:
    spec = get_spec(name)
    return spec.locate(Path(data_dir) if data_dir is not None else default_data_dir())


def require(name: str, data_dir: str | Path | None = None) -> Path:
    """The dataset's path, or ``DatasetNotFoundError`` naming where we looked and how to get it."""
    spec = get_spec(name)
    found = locate(name, data_dir)
    if found.path is None:
        looked = "\n  ".join(found.looked) or "(nowhere)"
        raise DatasetNotFoundError(
            f"dataset {name!r} is not available; looked in:\n  {looked}\nto get it: {spec.how_to_get}"
        )
    return found.path


def load_dataset(name: str, data_dir: str | Path | None = None, **kwargs: Any) -> Any:
    """Locate and build a named dataset (``kwargs`` go to its loader, e.g. ``split="train"``)."""
    return get_spec(name).load(require(name, data_dir), **kwargs)


_BUILTIN_MODULES = ("labkit.data.vision.builtin", "labkit.data.text.builtin", "labkit.data.sequence.builtin")
_loaded = False


def _load_builtins() -> None:
    """Import the modules that register labkit's own datasets (once, on first use)."""
    global _loaded
    if _loaded:
        return
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)  # a failure propagates, and the next call tries again
    _loaded = True
