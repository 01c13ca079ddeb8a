"""Tiny datasets registered in the catalog for the task tests, and a model that returns fixed scores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labkit.data.catalog import DatasetSpec, Located, register_dataset
from labkit.plugins.registry import registry


@pytest.fixture
def register() -> Iterator[Callable[[str, Callable[..., Any]], str]]:
    """``register(name, load)``: a catalog dataset found everywhere whose ``load(path, **kwargs)`` is given."""
    names: list[str] = []

    def add(name: str, load: Callable[..., Any]) -> str:
        spec = DatasetSpec(
            name=name,
            domain="test",
            description="a dataset made by the test",
            locate=lambda data_dir: Located(Path("<test>"), ("<test>",)),
            load=lambda path, **kwargs: load(**kwargs),
            how_to_get="nothing to get",
        )
        register_dataset(spec, owner="tests")
        names.append(name)
        return name

    yield add
    for name in names:
        registry.unregister("dataset", name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
