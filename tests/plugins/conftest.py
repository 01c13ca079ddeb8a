"""``plugin_env``: put fake plugin distributions on sys.path for one test, and take them off again."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.plugins.registry import registry
from labkit.runner import instantiate
from tests.plugins.fakes import write_dist


class PluginEnv:
    """Install fake plugins (folders on sys.path) into the running process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.roots: list[Path] = []

    def install(self, dist: str, entry_points: dict[str, str], files: dict[str, str], root: Path | None = None) -> Path:
        root = write_dist(root or self.tmp / dist, dist, entry_points, files)
        sys.path.insert(0, str(root))
        self.roots.append(root)
        self.refresh()
        return root

    def add(self, root: Path, dist: str, entry_points: dict[str, str]) -> Path:
        """Make the package(s) already under ``root`` an installed distribution."""
        return self.install(dist, entry_points, {}, root=root)

    def refresh(self) -> None:
        importlib.invalidate_caches()
        instantiate.plugin_packages.cache_clear()
        registry.load_plugins(reload=True)

    @property
    def pythonpath(self) -> str:
        return ":".join(str(r) for r in self.roots)

    def close(self) -> None:
        for root in self.roots:
            sys.path.remove(str(root))
            for name, module in list(sys.modules.items()):
                if str(getattr(module, "__file__", "") or "").startswith(str(root)):
                    del sys.modules[name]
        self.roots.clear()
        self.refresh()


@pytest.fixture
def plugin_env(tmp_path: Path) -> Iterator[PluginEnv]:
    env = PluginEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()
